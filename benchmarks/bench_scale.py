"""lk.scale checked on the lab itself: CPU cost per byte measured on one core count predicts the other.

    python benchmarks/bench_scale.py [--image-mib 128] [--reps 3]

sregistry's https setup on this machine's CPU (nginx CPU-bound: TLS and its temp-file spooling), 2 nginx
workers. Two setups of the same lab, each surveyed (the whole path, 1 pull and 2 at once):
  1 core   nginx, uwsgi and docker-proxy pinned to CPU 0 (cpuset), the pulling client on CPU 1
  2 cores  nothing pinned: the servers and the client share both CPUs
The costs per GB measured in each predict the other's throughput (lk.scale, with the client counted
where it shares the servers' cores). Target: every prediction within 20% of what was measured.
"""
from __future__ import annotations

import argparse
import os

from labkit.analyze.scale import scale
from labkit.config.presets import preset
from labkit.lab.lab import Lab
from labkit.measure.survey import run_survey

MiB = 2**20
BASE = preset("sregistry-2018-10-https").changed(nginx={"worker_processes": 2})
PINNED = BASE.changed(cpu={"nginx_cpuset": "0", "uwsgi_cpuset": "0", "proxy_cpuset": "0"})
SETUPS = {1: (PINNED, {1}), 2: (BASE, None)}       # cores: (settings, the client's CPUs)


def survey(lab: Lab, s, client_cpus, reps: int):
    lab.apply(s)
    before = os.sched_getaffinity(0)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)           # this process's pulling threads: the client
    try:
        return run_survey(lab, parallel=2, repeats=reps, hops=[], vantages=[lab.plan.path.client_vantage.name],
                          verify="length", progress=False, tcp=False)
    finally:
        os.sched_setaffinity(0, before)


def measured(sv, n: int) -> float:
    t = sv.table
    return float(t[(t.kind == "pull") & (t.parallel == n)].MBps.iloc[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-mib", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 CPUs")
    with Lab("bench-scale", BASE, image_size=a.image_mib * MiB, quiet=True) as lab:
        surveys = {cores: survey(lab, s, cpus, a.reps) for cores, (s, cpus) in SETUPS.items()}
    print(f"lk.scale on the lab: sregistry-2018-10-https, this CPU, 2 nginx workers, {a.image_mib} MiB, "
          f"whole path, median of {a.reps} runs")
    worst = 0.0
    for src, dst in ((2, 1), (1, 2)):
        sv = surveys[src]
        for n in (1, 2):
            p = scale(sv, cores=dst, model="host", pulls=n, with_client=dst == 2)
            pred = p.one_MBps if n == 1 else p.many_MBps
            got = measured(surveys[dst], n)
            err = pred / got - 1
            worst = max(worst, abs(err))
            print(f"  costs on {src} core(s) -> {dst} core(s), {n} pull(s): predicted {pred:7.1f} MB/s "
                  f"({p.one_by if n == 1 else p.many_by}), measured {got:7.1f} MB/s: {err:+.0%}")
    for cores, sv in surveys.items():
        row = sv.table[sv.table.parallel == 1].iloc[0]
        print(f"  CPU per GB on {cores} core(s): " + ", ".join(
            f"{c.removeprefix('cpu_s_per_GB_')} {row[c]:.2f}" for c in sv.table.columns
            if c.startswith("cpu_s_per_GB_") and row[c] == row[c] and row[c] is not None))
    print(f"target: every prediction within 20%: {'met' if worst <= 0.20 else 'NOT met'} (worst {worst:.0%}); "
          "provisional on a shared 2-core machine")


if __name__ == "__main__":
    main()
