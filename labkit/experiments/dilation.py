"""The dilation check (issue 25): one case at k = 1, 2 and 4 (a lab each: machine.* is set when a lab starts),
a survey of the client's vantage point in each, its table read back into real time (labkit.measure.dilated),
and each k's rates against k = 1's with its verdict. A time-dilated model that holds reads the same rates and
the same verdict at every k (DieCast: Gupta, Vishwanath, Vahdat, NSDI 2008); benchmarks/bench_dilation.py
runs it over the cases that fit this machine in real time.

    outcome = run(DILATION.with_(overrides=("cpu.model=opteron-6174", "machine.vcpus=2"), options={"ks": (1, 2)}))
    print(outcome.experiment.text(outcome))
"""
from __future__ import annotations

import pandas as pd

from ..analyze.verdict import verdict
from ..measure.survey import run_survey
from ..units import MiB
from .declare import Experiment, Outcome, Progress


def _labs(exp: Experiment) -> list[Experiment]:
    return [exp.with_(overrides=(*exp.overrides, f"machine.dilation={k:g}")) for k in exp.options["ks"]]


def _measure(lab, exp: Experiment, progress: Progress) -> dict:
    sv = run_survey(lab, parallel=exp.parallel, hops=[], vantages=list(exp.vantages or (lab.plan.path.client_vantage.name,)),
                    repeats=exp.repeats, verify="length", progress=progress.on, tcp=False)
    v = verdict(sv)
    progress.step(f"k = {lab.k:g}")
    return {"k": lab.k, "survey": sv, "verdict": f"{v.cause or '?'} at {v.hop or '?'}"}


def _aggregate(exp: Experiment, parts: list[dict]) -> pd.DataFrame:
    """One row per k and pull count: read-back MB/s (slowest-fastest), its ratio to the first k's, the verdict."""
    rows = []
    for p in parts:
        t = p["survey"].table
        for _, r in t[t.kind == "pull"].iterrows():
            rows.append({"k": p["k"], "point": r.point, "parallel": int(r.parallel), "MBps": r.MBps,
                         "MBps_lo": r.MBps_lo, "MBps_hi": r.MBps_hi, "failures": int(r.failures),
                         "verdict": p["verdict"]})
    out = pd.DataFrame(rows)
    base = out[out.k == out.k.iloc[0]].set_index(["point", "parallel"])
    out["vs_first_k"] = [round(r.MBps / base.loc[(r.point, r.parallel), "MBps"], 3) for r in out.itertuples()]
    out["same_verdict"] = out.verdict == base.verdict.iloc[0]
    return out


def _text(out: Outcome) -> str:
    return out.result.to_string(index=False)


DILATION = Experiment(
    "dilation", "one case at k = 1, 2 and 4 read back into real time: the same rates (within the spread) and the "
    "same verdict at every k, or the case and the reason said", _measure,
    settings="sregistry-2018-10-https", overrides=("cpu.model=opteron-6174", "machine.vcpus=1"),
    parallels=(1, 2), repeats=3, image_size=32 * MiB, lab_name="dilation",
    options={"ks": (1, 2, 4)}, labs=_labs, steps=lambda e: len(e.options["ks"]), aggregate=_aggregate, text=_text)
