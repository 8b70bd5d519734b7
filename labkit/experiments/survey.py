"""The survey (`labkit survey`): every hop's iperf3, pulls from every vantage point, the verdict; with
`fix`, the remedies for what binds tried on the same lab and the winner written as a checked bundle.

    outcome = run(SURVEY.with_(parallels=(1, 40), options={"fix": True}))
    outcome.result.survey, outcome.result.fix, outcome.saved
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analyze.noise import Rate
from ..analyze.remedies import Fix, Remedy, Trial, winner
from ..analyze.verdict import verdict
from ..analyze.words import headline, verdict_text
from ..present.terminal import brief, wide
from ..bundle.export import WHY
from ..config.overrides import apply_overrides, parse_override
from ..config.settings import LabSettings, as_text
from ..errors import SettingsError
from ..lab.lab import DATA, Lab
from ..measure.pull_at import pull_at
from ..measure.survey import run_survey
from ..progress import bar
from ..records import Survey
from .bundles import export_bundle
from .declare import Experiment, Outcome


@dataclass
class Surveyed:
    survey: Survey
    fix: Fix | None = None


def measure(lab: Lab, exp: Experiment, progress) -> Surveyed:
    o = exp.options
    s = run_survey(lab, parallel=exp.parallel, iperf_seconds=o["iperf_seconds"], verify=o["verify"],
                   repeats=exp.repeats, progress=progress.on,
                   vantages=list(exp.vantages) if exp.vantages else None)
    found = None
    if o["fix"]:                       # the remedies for what binds, tried on this lab before it ends
        found = fix(lab, verdict(s), parallel=exp.parallel, repeats=exp.repeats, verify=o["verify"],
                    label=f"fix-{exp.label}", progress=progress.on)
    return Surveyed(s, found)


def record(out: Outcome, where: Path) -> Path:
    """`<time>-survey-<label>.csv`, its settings and path in the `.json`, per-pull detail in `-detail.csv`."""
    return out.result.survey.save(where, f"survey-{out.experiment.label}")


def text(out: Outcome) -> str:
    """The table, its notes, the verdict in words and where it was saved."""
    s, found = out.result.survey, out.result.fix
    # the brief table: the columns a person needs on a 100-column terminal (all with --wide; CSV and JSON keep all)
    table = wide(s.table) if out.experiment.options.get("wide") else brief(s.table)
    return "\n".join([table, *(f"note: {n}" for n in s.notes), "", verdict_text(verdict(s), found), "",
                      f"saved {out.saved} (+ .json with the settings); survey took {s.meta['wall_s']} s"])


def survey_json(s: Survey, saved: Path | None = None, found: Fix | None = None) -> dict:
    """The survey's table and its verdict (headline, hop, cause, evidence, next, and `fix` when remedies
    were tried: the settings changed, before_MBps, after_MBps, the bundle) as plain JSON values."""
    v = verdict(s)
    out = v.to_dict()
    if found is not None:
        out["headline"] = headline(v, found)
        out["fix"] = found.to_dict()
    return {"verdict": out, "table": json.loads(s.table.to_json(orient="records")),
            "settings": s.settings, "notes": s.notes, "meta": s.meta, "saved": str(saved) if saved else None}


SURVEY = Experiment(
    "survey", "iperf3 on every hop, one pull and N at once from every vantage point, the verdict",
    measure, parallels=(1, 5), repeats=3, records="results", record=record, text=text,
    options={"iperf_seconds": 2, "verify": "sha256", "fix": False})


# --- what to change, measured ---------------------------------------------------------------------------------
# The remedies for a verdict's constraint (labkit.analyze.remedies: pure data) tried on the running lab, each
# round by round beside the settings as they were, so a slow moment of the machine falls on every candidate
# alike; the winner by labkit.analyze.remedies.WIN_RULE (beyond the runs' spread, not just the median), written
# as a checked bundle. The lab gets its settings back at the end, even after an error.

AS_IT_WAS = "settings as they were"


def fix(lab: Lab, v, parallel: int = 5, repeats: int = 3, verify: str = "sha256",
        out_dir: Path | None = None, label: str | None = None, remedies: list[Remedy] | None = None,
        deadline: float = 120, progress: bool = False) -> Fix:
    """Try every remedy for verdict `v` on `lab`; return the trials, the winner and its bundle."""
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
        with bar(total=repeats * len(trial_order), desc="fix", unit="trial", disable=not progress, leave=False) as b:
            for _ in range(repeats if cands else 0):
                for name, s in trial_order:
                    lab.apply(s)
                    for n in dict.fromkeys((1, parallel)):
                        run = pull_at(lab, parallel=n, verify=verify, deadline=deadline)
                        runs.setdefault(name, {}).setdefault(n, []).append(run.mbps)
                        fails[name] = fails.get(name, 0) + run.failures
                    b.update()
    finally:
        if lab.settings != base:
            lab.apply(base)
    if not cands:
        return Fix(v.hop, v.cause, None, [], None, notes=notes)
    trials = {name: Trial(name, () if name == AS_IT_WAS else next(r.set for r in cands if r.name == name),
                          Rate.of_runs(by[1]), Rate.of_runs(by[parallel]), parallel, fails.get(name, 0))
              for name, by in runs.items()}
    before = trials.pop(AS_IT_WAS)
    tried = list(trials.values())
    best = winner(before, tried)
    f = Fix(v.hop, v.cause, before, tried, best, notes=notes)
    if best is not None:
        new = options[best.name]
        f.changes = remedy_changes(next(r for r in cands if r.name == best.name), base, new)
        bundle, _ = export_bundle(new, out_dir or DATA / "bundles", f"{label or 'fix'}-{_slug(best.name)}",
                                  measurements=_table(f), notes=[f"{best.name}: {r.why}" for r in cands
                                                                  if r.name == best.name])
        f.bundle = str(bundle)
    return f


def remedy_changes(r: Remedy, base: LabSettings, new: LabSettings) -> list[dict]:
    """The settings a remedy changed, as the bundle lists changes: path, old, new, why (every group, the client's too)."""
    out = []
    for text_ in r.set:
        group, field, _ = parse_override(text_)
        old, now = (getattr(getattr(x, group), field, None) for x in (base, new))
        if old != now:
            out.append({"path": f"{group}.{field}", "old": as_text(old) or "(default)", "new": as_text(now) or "(default)",
                        "why": WHY.get(f"{group}.{field}") or r.why})
    return out


def _slug(text_: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text_.lower()).strip("-")


def _table(f: Fix) -> pd.DataFrame:
    return pd.DataFrame([t.to_dict() for t in [f.before, *f.trials]]).drop(columns=["set"])
