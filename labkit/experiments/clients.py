"""Each client kind's one pull on the same path (`labkit run clients`): the kinds round by round, so a slow
moment of the machine falls on every kind alike; MB/s and the client's CPU per kind, beside labkit's own."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..clients.kinds import KINDS as TABLE
from ..lab.lab import Lab
from ..measure.pull_at import pull_at
from .declare import Experiment, Outcome, Progress

# every kind of sregistry's API, but `command` (it needs an operator's command template); the OCI kinds pull
# from a distribution lab (benchmarks/bench_oci.py)
KINDS = [k for k, c in TABLE.items() if k != "command" and "sregistry" in c.apis]


def _measure(lab: Lab, exp: Experiment, progress: Progress) -> pd.DataFrame:
    base, rows = lab.settings, []
    try:
        for round_ in range(exp.repeats):
            for kind in exp.options.get("kinds") or KINDS:
                lab.apply(base.changed(client={"kind": kind}))
                run = pull_at(lab, verify="length", deadline=exp.options["deadline"])
                rows.append({"kind": kind, "round": round_ + 1, "MBps": round(run.mbps, 1), "failures": run.failures,
                             "client_cpu": run.client_cpu, "busiest": run.busiest})
                progress.step(kind)
    finally:
        lab.apply(base)
    return pd.DataFrame(rows)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per kind: the median MB/s, slowest and fastest, failures, the client's CPU, and the ratio to labkit's."""
    t = runs.groupby("kind", sort=False).agg(MBps=("MBps", "median"), lo=("MBps", "min"), hi=("MBps", "max"),
                                              failures=("failures", "sum"), client_cpu=("client_cpu", "median"))
    if "labkit" in t.index:
        t["x_labkit"] = (t.MBps / t.loc["labkit", "MBps"]).round(2)
    return t.reset_index()


def _record(out: Outcome, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{time.strftime('%Y%m%d-%H%M%S')}-clients-{out.experiment.label}.csv"
    out.result.to_csv(path, index=False)
    return path


CLIENTS = Experiment(
    "clients", "each client kind's one pull on the same path, round by round", _measure, repeats=3, parallels=(1,),
    steps=lambda exp: exp.repeats * len(exp.options.get("kinds") or KINDS), record=_record,
    text=lambda out: f"{table(out.result).to_string(index=False)}\n\nsaved {out.saved}",
    options={"deadline": 300, "kinds": None})
