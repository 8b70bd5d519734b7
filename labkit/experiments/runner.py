"""The one runner: bring the lab up, check it, measure with progress, record, and end the lab even when the
measurement fails or is interrupted (Ctrl-C, SIGTERM from `labkit`'s handler).

    outcome = run(SURVEY.with_(parallels=(1, 40), image_size=parse_size("1.5GiB")))
    outcome = run(SWEEP, on=lab)          # on a lab that is already up (a notebook's): not ended here
"""
from __future__ import annotations

import logging
import time

from ..errors import LabError, LabkitError
from ..lab.conditions.speed_meter import session
from ..lab.lab import DATA, Lab
from ..progress import bar
from .declare import Experiment, Outcome, Progress

log = logging.getLogger("labkit")


def run(exp: Experiment, *, on: Lab | None = None, keep: bool = False, progress: bool = True) -> Outcome:
    """Run `exp` (each of its labs in turn, or its one part on the running lab `on`), aggregate, record. A CPU
    model's speed is measured once for the whole run (its first lab's start, or the contest's choice of k) and
    every lab of the run uses that figure: one ratio per run (labkit.lab.conditions.speed_meter.session)."""
    if exp.measure is None:
        raise LabkitError(f"experiment {exp.name!r} is declared but not built yet: {exp.about}")
    with session(getattr(getattr(on, "machine", None), "meter", None)):     # on a lab: its own figure
        return _run(exp, on, keep, progress)


def _run(exp: Experiment, on: Lab | None, keep: bool, progress: bool) -> Outcome:
    parts_of = [exp] if on is not None or exp.labs is None else exp.labs(exp)
    for part in parts_of:
        part.lab_settings()                        # every part's settings checked before any lab starts
    t0 = time.perf_counter()
    # the runner's own bar counts the declaration's steps; a kind without steps draws its own (a survey's)
    with bar(total=exp.steps(exp) if exp.steps else None, desc=exp.name, unit="step", leave=False,
             disable=not progress or exp.steps is None) as b:
        shown = Progress(progress, b)
        parts = [measure(part, shown, on=on, keep=keep) for part in parts_of]
    result = exp.aggregate(exp, parts) if exp.aggregate else parts[0]
    out = Outcome(exp, result, None, round(time.perf_counter() - t0, 1))
    if exp.record:
        out.saved = exp.record(out, DATA / exp.records)
    return out


def measure(exp: Experiment, progress: Progress, on: Lab | None = None, keep: bool = False):
    """One part: on `on`, or on a lab of its own brought up here and ended here (unless `keep`)."""
    if on is not None:
        return exp.measure(on, exp, progress)
    lab = lab_for(exp, keep=keep, quiet=not progress.on).up()
    try:
        if exp.health:
            healthy(lab)
        return exp.measure(lab, exp, progress)
    finally:
        if not keep:
            lab.down()
        else:
            log.info(f"lab '{lab.name}' left up: `labkit down --name {lab.name}` ends it")


def lab_for(exp: Experiment, keep: bool = False, quiet: bool = False) -> Lab:
    """The lab `exp` declares (name, settings, path, image), not yet up."""
    return Lab(exp.lab_name, exp.lab_settings(), image_size=exp.image_size, namespaced=exp.namespaced, keep=keep,
               quiet=quiet, compute_nodes=exp.compute_nodes)


def healthy(lab: Lab) -> None:
    """Every service running and a manifest served at every vantage point, or LabError naming what is not."""
    bad = {k: v for k, v in lab.health().items() if v != "ok"}
    if bad:
        raise LabError("health check failed: " + "; ".join(f"{k}: {v}" for k, v in bad.items()))
