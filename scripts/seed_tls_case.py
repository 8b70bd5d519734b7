"""The seed case under its lead suspect: sregistry's https setup on the Opteron 6174, measured and scaled.

    python scripts/seed_tls_case.py [--image-mib 1536] [--out data/recorded/...csv]

From `sregistry-2018-10-https` with cpu.model opteron-6174 and the WAN at 6 Gbit (the seed's uplink): one
pull (against the seed's ~32 MB/s) and 5 at once, each program's CPU (% of one emulated core) and the whole
machine's (share of the seed VM's 8 vCPUs, by the cost model: labkit.analyze.scale.machine_view); then
`seed-poster-https` (worker_processes 32: the settings in force for the seed's 40-pull observation) surveyed
at 1 and 2 pulls, and lk.scale's prediction for 40 pulls on 8 vCPUs against the seed's 230-240 MB/s. Writes
one CSV (measured and predicted rows) and a .txt beside it with the summary and the wall time. Long at the
seed's size (about 10 minutes): run it under the lab lock, once.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from labkit.analyze.scale import machine_view, scale
from labkit.config.presets import preset
from labkit.lab.lab import DATA, Lab
from labkit.measure import iperf
from labkit.measure.pull_at import pull_at
from labkit.measure.survey import run_survey

MiB = 2**20
SEED = {"one_pull_MBps": 32.0, "many_MBps": (230.0, 240.0), "many_pulls": 40, "vcpus": 8}
EXTRA = {"cpu": {"model": "opteron-6174"}, "links": {"wan": "6gbit"}}


def row(label: str, run, ratio: float, path) -> dict:
    r = run.row()
    view = machine_view(r, path, ratio, SEED["vcpus"])
    return {"kind": "measured", "preset": label, "parallel": run.parallel, "MBps": r["MBps"],
            "per_pull_min": r["per_pull_min"], "per_pull_max": r["per_pull_max"], "failures": r["failures"],
            "busiest": r["busiest"], "busiest_cpu_pct_here": r["busiest_cpu"],
            "nginx_pct_of_a_K10_core": view.get("nginx_pct_of_a_core"),
            "machine_pct_of_8_vCPUs": view["machine_pct"],
            **{k: r[k] for k in r if k.startswith("cpu_s_per_GB_")}, "error": r["error"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-mib", type=int, default=1536)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    out = a.out or DATA / "recorded" / f"seed-case-2018-10-https-opteron-{a.image_mib}MiB-6gbit.csv"
    t0 = time.perf_counter()
    https, poster = preset("sregistry-2018-10-https").changed(**EXTRA), preset("seed-poster-https").changed(**EXTRA)
    rows, lines = [], []
    with Lab("seed-tls", https, image_size=a.image_mib * MiB, quiet=True) as lab:
        hop = lab.plan.path.hop(lab.plan.path.client_stage.hop)
        capacity = iperf.run(*lab.plan.endpoint(hop), 3).MBps
        emu = lab.core.emu
        lines += [f"link (iperf3 {hop.name}): {capacity:.0f} MB/s", emu.note()]
        for n in (1, 5):
            rows.append(row("sregistry-2018-10-https", pull_at(lab, parallel=n, verify="length", deadline=1800),
                            emu.ratio, lab.plan.path))
        lab.apply(poster)
        sv = run_survey(lab, parallel=2, repeats=1, hops=[], vantages=[lab.plan.path.client_vantage.name],
                        verify="length", progress=False, tcp=False, pull_deadline=1800)
        sv.save(DATA / "results", "seed-tls-poster")
        for n in (1, 2):
            m = sv.table[(sv.table.kind == "pull") & (sv.table.parallel == n)].iloc[0]
            rows.append({"kind": "measured", "preset": "seed-poster-https", "parallel": n, "MBps": m.MBps,
                         "per_pull_min": m.per_pull_min, "per_pull_max": m.per_pull_max, "failures": m.failures,
                         "busiest": m.busiest, "busiest_cpu_pct_here": m.busiest_cpu,
                         "machine_pct_of_8_vCPUs": machine_view(m, sv.path, emu.ratio, SEED["vcpus"])["machine_pct"]})
        n = SEED["many_pulls"]
        p = scale(sv, cores=SEED["vcpus"], model="opteron-6174", pulls=n, link_MBps=capacity)
        rows += [{"kind": "predicted (lk.scale, 8 vCPUs)", "preset": "seed-poster-https", "parallel": 1,
                  "MBps": p.one_MBps, "busiest": p.one_by, "machine_pct_of_8_vCPUs": p.machine_pct(p.one_MBps)},
                 {"kind": "predicted (lk.scale, 8 vCPUs)", "preset": "seed-poster-https", "parallel": n,
                  "MBps": p.many_MBps, "busiest": p.many_by, "machine_pct_of_8_vCPUs": p.machine_pct(p.many_MBps)}]
        lines += [str(p), *p.notes]
    wall = time.perf_counter() - t0
    df = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    seed = (f"the seed: one pull ~{SEED['one_pull_MBps']:.0f} MB/s, {SEED['many_pulls']}+ pulls "
            f"{SEED['many_MBps'][0]:.0f}-{SEED['many_MBps'][1]:.0f} MB/s, the server 'almost' idle (dstat)")
    m1 = rows[0]["MBps"]
    lines += [seed, f"one pull here {m1:.1f} MB/s = {m1 / SEED['one_pull_MBps']:.2f}x the seed's; "
              f"whole machine {rows[0]['machine_pct_of_8_vCPUs']:.0f}% of 8 vCPUs",
              f"wall time {wall:.0f} s ({a.image_mib} MiB image); a shared 2-core machine: provisional"]
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df.to_string(index=False))
    print("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
