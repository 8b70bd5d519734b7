"""What to change, measured: the remedies for a verdict's constraint tried on the lab, the winner as a bundle.

    v = lk.verdict(lk.run_survey(lab))
    f = lk.fix(lab, v)          # each remedy vs the settings as they were: one pull and N, repeated
    f.best, f.to_dict()         # the winner (or None), before/after MB/s, the bundle's path

The candidates come from the verdict (`v.remedies`, labkit.analyze.remedies: pure data). Each is
applied to the running lab and measured round by round beside the settings as they were, so a
slow moment of the machine falls on every candidate alike. The winner rule is
labkit.analyze.remedies.WIN_RULE: a remedy must beat the runs' spread, not just the median. The
winner's settings are written as a checked bundle (labkit.bundle.export); the lab gets its
settings back at the end, even after an error.
"""
from __future__ import annotations

from pathlib import Path

from .analyze.noise import Rate
from .analyze.remedies import Fix, Remedy, Trial, winner
from .bundle.export import changes, export_bundle
from .config.overrides import apply_overrides
from .errors import SettingsError
from .lab.lab import DATA, Lab
from .measure.pulls import pull_at

AS_IT_WAS = "settings as they were"


def _rate(values: list[float]) -> Rate:
    return Rate.of_runs(values)


def fix(lab: Lab, v, parallel: int = 5, repeats: int = 3, verify: str = "sha256",
        out_dir: Path | None = None, label: str | None = None, remedies: list[Remedy] | None = None,
        deadline: float = 120, progress: bool = False) -> Fix:
    """Try every remedy for verdict `v` on `lab`; return the trials, the winner and its bundle."""
    from tqdm.auto import tqdm
    if not 1 <= repeats <= 20:
        raise SettingsError(f"repeats {repeats}: 1..20 (3 or more give a spread)")
    base = lab.settings
    cands, notes, options = [], [], {}
    for r in v.remedies if remedies is None else remedies:
        try:
            s = apply_overrides(base, list(r.set))
            lab.check(s)
        except SettingsError as exc:
            notes.append(f"{r.name} not tried: {exc}")
            continue
        cands.append(r)
        options[r.name] = s
    if not cands:
        notes.append(v.no_remedy or "no remedy to try for this verdict")
    runs: dict[str, dict[int, list[float]]] = {}
    fails: dict[str, int] = {}
    trial_order = [(AS_IT_WAS, base), *((r.name, options[r.name]) for r in cands)]
    try:
        with tqdm(total=repeats * len(trial_order), desc="fix", unit="trial", disable=not progress, leave=False) as bar:
            for _ in range(repeats if cands else 0):
                for name, s in trial_order:
                    lab.apply(s)
                    for n in (1, parallel):
                        run = pull_at(lab, parallel=n, verify=verify, deadline=deadline)
                        runs.setdefault(name, {}).setdefault(n, []).append(run.mbps)
                        fails[name] = fails.get(name, 0) + run.failures
                    bar.update()
    finally:
        if lab.settings != base:
            lab.apply(base)
    if not cands:
        return Fix(v.hop, v.cause, None, [], None, notes=notes)
    trials = {name: Trial(name, () if name == AS_IT_WAS else next(r.set for r in cands if r.name == name),
                          _rate(by[1]), _rate(by[parallel]), parallel, fails.get(name, 0))
              for name, by in runs.items()}
    before = trials.pop(AS_IT_WAS)
    tried = list(trials.values())
    best = winner(before, tried)
    f = Fix(v.hop, v.cause, before, tried, best, notes=notes)
    if best is not None:
        new = options[best.name]
        f.changes = changes(new, base)
        bundle, _ = export_bundle(new, out_dir or DATA / "bundles", f"{label or 'fix'}-{_slug(best.name)}",
                                  measurements=_table(f), notes=[f"{best.name}: {r.why}" for r in cands
                                                                  if r.name == best.name])
        f.bundle = str(bundle)
    return f


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _table(f: Fix):
    import pandas as pd
    return pd.DataFrame([t.to_dict() for t in [f.before, *f.trials]]).drop(columns=["set"])
