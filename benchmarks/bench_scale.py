"""lk.scale checked on the lab itself: CPU cost per byte measured in one setup predicts the other's throughput.

    python benchmarks/bench_scale.py [--image-size 64MiB] [--reps 2]

sregistry's https setup, published as Docker does for a compute node (DNAT), the whole path, 1 pull and 2
at once, each setup surveyed (median of --reps runs):
  this CPU, 1 core    nginx, uwsgi pinned to CPU 0 (cpuset), the pulling client on CPU 1
  this CPU, 2 cores   nothing pinned: the servers and the client share both CPUs
  Opteron, 1 worker   cpu.model opteron-6174 (each process held to one emulated core), nginx 1 worker
  Opteron, 2 workers  the same with 2 nginx workers
The costs per GB of each setup predict its partner's throughput (lk.scale; the client counted where it
shares the servers' cores; the Opteron pair carried between worker counts). Target: within 20%.
nginx puts each connection on the worker whose accept wins, so 2 pulls started together sometimes share
one worker: the 2-pull prediction is made for the placement each run had (lk.scale's `placed`, read off
the nginx workers' CPU run by run), beside the ceiling with the pulls spread evenly.
"""
from __future__ import annotations

import argparse
import os

import statistics

from labkit.units import SIZE_HELP, format_size, parse_size
from labkit.analyze.scale import placed, scale
from labkit.config.presets import preset
from labkit.lab.lab import Lab
from labkit.measure.survey import run_survey
from targets import check, finish

BASE = preset("sregistry-2018-10-https").changed(nginx={"worker_processes": 2})   # Docker's defaults: the client DNATed
K10 = {"model": "opteron-6174"}
SETUPS = {  # name: (settings, the client's CPUs, cores there, model, with the client)
    "host 1 core": (BASE.changed(cpu={"nginx_cpuset": "0", "uwsgi_cpuset": "0"}), {1}, 1, "host", False),
    "host 2 cores": (BASE, None, 2, "host", True),
    "opteron 1 worker": (BASE.changed(cpu=K10, nginx={"worker_processes": 1}), None, 8, "opteron-6174", False),
    "opteron 2 workers": (BASE.changed(cpu=K10), None, 8, "opteron-6174", False),
}
PAIRS = (("host 2 cores", "host 1 core"), ("host 1 core", "host 2 cores"),
         ("opteron 1 worker", "opteron 2 workers"), ("opteron 2 workers", "opteron 1 worker"))


def survey(lab: Lab, s, client_cpus, reps: int):
    lab.apply(s)
    before = os.sched_getaffinity(0)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)           # this process's pulling threads: the client
    try:
        return run_survey(lab, parallel=2, repeats=reps, hops=[], vantages=[lab.path.client_vantage.name],
                          verify="length", progress=False, tcp=False)
    finally:
        os.sched_setaffinity(0, before)


def measured(sv, n: int) -> float:
    t = sv.table
    return float(t[(t.kind == "pull") & (t.parallel == n)].MBps.iloc[0])


def by_placement(sv, n: int) -> dict[int, list[float]]:
    """The runs' MB/s of `n` pulls, grouped by over how many nginx workers they went."""
    point = sv.path.client_vantage.name
    d = sv.detail[(sv.detail.point == point) & (sv.detail.parallel == n)]
    rate = d.groupby("run").MBps.first()
    out: dict[int, list[float]] = {}
    for run, workers in placed(sv.detail, "nginx", point, n).items():
        out.setdefault(int(workers), []).append(float(rate[run]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="64MiB", help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 CPUs")
    with Lab("bench-scale", BASE, image_size=a.image_size, quiet=True) as lab:
        surveys = {name: survey(lab, s, cpus, a.reps) for name, (s, cpus, *_) in SETUPS.items()}
    print(f"lk.scale on the lab: sregistry-2018-10-https published by DNAT, {format_size(a.image_size)}, whole path, "
          f"median of {a.reps} runs")
    worst = 0.0

    def line(src, dst, what, pred, got, by):
        nonlocal worst
        err = pred / got - 1
        worst = max(worst, abs(err))
        print(f"  costs of {src:18} -> {dst:18} {what:22}: predicted {pred:7.1f} MB/s, measured {got:7.1f} "
              f"MB/s: {err:+4.0%}  ({by})")
    for src, dst in PAIRS:
        s_dst, _, cores, model, client = SETUPS[dst]
        kw = dict(cores=cores, model=model, with_client=client, settings=s_dst)
        p = scale(surveys[src], pulls=1, **kw)
        line(src, dst, "1 pull", p.one_MBps, measured(surveys[dst], 1), p.one_by)
        even = scale(surveys[src], pulls=2, **kw).many_MBps
        for workers, rates in sorted(by_placement(surveys[dst], 2).items()):
            p = scale(surveys[src], pulls=2, placed={"nginx": workers}, **kw)
            line(src, dst, f"2 pulls, {workers} worker(s) x{len(rates)}", p.many_MBps, statistics.median(rates),
                 p.many_by + ("" if p.many_MBps == even else f"; spread evenly: {even:.0f}"))
    for name, sv in surveys.items():
        row = sv.table[sv.table.parallel == 1].iloc[0]
        print(f"  CPU s per GB, {name:18}: " + ", ".join(
            f"{c.removeprefix('cpu_s_per_GB_')} {row[c]:.2f}" for c in sv.table.columns
            if c.startswith("cpu_s_per_GB_") and row[c] == row[c] and row[c] is not None))
    print(f"target: every prediction within 20%: {check(f'every prediction within 20% (worst {worst:.0%})', worst <= 0.20)} (worst {worst:.0%}); "
          "provisional on a shared 2-core machine")
    finish()


if __name__ == "__main__":
    main()
