"""Today's slow pulls on the OCI path (`labkit run oci-hypotheses`): each hypothesis of
labkit.analyze.oci_hypotheses made real on a distribution lab and measured beside its fix, round by round (the
hypothesis, then its fix, each at 1 pull and N at once, through pull_at from the compute node), then judged:
a hypothesis binds where its fix is faster beyond the runs' noise or its pulls fail and the fix's do not.

    outcome = run(OCI_HYPOTHESES.with_(image_size=16 * MiB, parallels=(1, 4), repeats=2))
    judged = outcome.result["judged"]; outcome.result["runs"]      # the judged table; every run
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..analyze.oci_hypotheses import COMMON, HYPOTHESES, binding, by_name, judge
from ..config.overrides import apply_overrides
from ..config.presets import preset
from ..lab.lab import Lab
from ..measure.pull_at import pull_at
from ..units import MiB
from .declare import Experiment, Outcome, Progress
from .runner import run

VARIANTS = (("as is", False), ("fixed", True))


def chosen(exp: Experiment) -> list:
    """The hypotheses the declaration names (options `hypotheses`: names; None: every one), measurable ones only."""
    names = exp.options.get("hypotheses")
    hs = [by_name(n) for n in names] if names else list(HYPOTHESES)
    return [h for h in hs if not h.unmeasurable]


def _measure(lab: Lab, exp: Experiment, progress: Progress) -> dict:
    base, rows = lab.settings, []
    try:
        for h in chosen(exp):
            for round_ in range(exp.repeats):
                for variant, fixed in VARIANTS:
                    lab.apply(h.settings(*COMMON, *exp.overrides, fixed=fixed))
                    for n in exp.parallels:
                        r = pull_at(lab, parallel=n, deadline=exp.options["deadline"])
                        rows.append({"hypothesis": h.name, "variant": variant, "round": round_ + 1, "parallel": n,
                                     "MBps": round(r.mbps, 1), "failures": r.failures, "busiest": r.busiest,
                                     "busiest_cpu": round(r.busiest_cpu), "client": r.client,
                                     "error": next((x.error for x in r.results if x.error), "")})
                    progress.step(f"{h.name}: {variant}")
    finally:
        lab.apply(base)
    runs = pd.DataFrame(rows)
    return {"runs": runs, "judged": judge(runs)}


def _record(out: Outcome, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{time.strftime('%Y%m%d-%H%M%S')}-oci-hypotheses.csv"
    out.result["judged"].to_csv(path, index=False)
    out.result["runs"].to_csv(path.with_name(path.stem + "-runs.csv"), index=False)
    return path


def text(out: Outcome) -> str:
    j = out.result["judged"]
    cols = ["hypothesis", "parallel", "MBps", "fix_MBps", "failures", "fix_failures", "judged"]
    binds = binding(j)
    return (f"{j[cols].to_string(index=False)}\n\nbinds here: {', '.join(binds) or 'none'}; wall {out.wall_s} s"
            + (f"\nsaved {out.saved}" if out.saved else ""))


def base_settings(*overrides: str):
    """The lab the experiment runs on: distribution-2.8 (the registry's shipped config behind its nginx recipe)
    with the experiment's COMMON changes and `overrides`."""
    return apply_overrides(preset("distribution-2.8"), [*COMMON, *overrides])


OCI_HYPOTHESES = Experiment(
    "oci-hypotheses", "today's slow pulls on the OCI path: each hypothesis beside its fix, at 1 and N pulls, judged",
    _measure, settings=base_settings(), parallels=(1, 4), repeats=2, image_size=16 * MiB, lab_name="ocihyp",
    steps=lambda e: len(chosen(e)) * e.repeats * len(VARIANTS), record=_record, text=text,
    options={"deadline": 120, "hypotheses": None, "label": "oci-hypotheses"})


def run_oci_hypotheses(lab: Lab | None = None, parallels=(1, 4), repeats: int = 2, image_mib: int = 16,
                       hypotheses=None, progress: bool = True, lab_name: str = "ocihyp") -> dict:
    """Each measurable OCI hypothesis beside its fix at `parallels`, `repeats` rounds: on `lab` (left up, its
    settings restored) or on a lab of its own. Returns {"runs": every pull run, "judged": one row a hypothesis
    and pull count (labkit.analyze.oci_hypotheses.judge)}."""
    exp = OCI_HYPOTHESES.with_(parallels=tuple(parallels), repeats=repeats, image_size=image_mib * MiB,
                               lab_name=lab_name, record=None, options={"hypotheses": hypotheses})
    return run(exp, on=lab, progress=progress).result
