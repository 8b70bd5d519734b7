"""The time-dilated scale model checked against itself: each case at k = 1, 2 and 4, read back into real time.

    python benchmarks/bench_dilation.py [--image-size 32MiB] [--reps 3] [--ks 1,2,4] [--cases all]

DieCast (Gupta, Vishwanath, Vahdat, NSDI 2008): slow every resource by k (CPU shares, link rates, disk
bandwidth, timeouts; labkit.config.dilation) and read every rate back x k. Cases that fit this machine in
real time (k = 1):
- sregistry-2018-10-https on the opteron-6174 with 1 and with 2 vCPUs, 1 and 2 pulls;
- a shaped link (plain http, the WAN at 400 mbit);
- a disk-bound case (a cold loop disk read at 40 MB/s).
Each case at each k is one lab (machine.* is set when a lab starts) and one survey: every vantage point (one
pull each, for the verdict) and the client's also 2 at once (`--client-only`: the client's alone, faster, but
the verdict then sees one stage and names the client); the survey reads its table back and says k.
Targets: every read-back rate within +-15% of k = 1's and the same verdict (cause at stage); a miss names
the case, k, the rates and the reasons the notes give. Exits 1 on a miss (benchmarks/targets.py).
"""
from __future__ import annotations

import argparse
import time

from targets import check, finish

from labkit.analyze.verdict import verdict
from labkit.config.presets import preset
from labkit.lab.conditions.speed_meter import IN_SESSION, Meter, session
from labkit.lab.lab import Lab
from labkit.measure.survey import run_survey
from labkit.units import SIZE_HELP, format_size, parse_size

HTTPS, HTTP = preset("sregistry-2018-10-https"), preset("sregistry-2018-10")
OPTERON = {"model": "opteron-6174"}
CASES = {
    "2018-10-https opteron 1 vCPU": HTTPS.changed(cpu=OPTERON, machine={"vcpus": 1}),
    "2018-10-https opteron 2 vCPUs": HTTPS.changed(cpu=OPTERON, machine={"vcpus": 2}),
    "shaped link (wan 400mbit)": HTTP.changed(links={"wan": "400mbit"}),
    "disk-bound (cold loop disk, 40 MB/s)": HTTP.changed(storage={"disk": "loop", "cache": "cold", "read_mbps": 40}),
}
TOLERANCE = 0.15
SPEED = Meter(source=IN_SESSION)      # one CPU ratio for every lab of this run: each k compared on the same figure


def one(s, k: float, image_size: int, reps: int, every_vantage: bool) -> dict:
    """One case at dilation k: a lab, a survey (the client's vantage point, or every one for the verdict), read back."""
    with session(SPEED), Lab("dilate-bench", s.changed(machine={"dilation": k}), image_size=image_size, quiet=True) as lab:
        client = lab.plan.path.client_vantage.name
        sv = run_survey(lab, parallel=2, hops=None if every_vantage else [], vantages=None if every_vantage else [client],
                        parallel_at=[client], repeats=reps, verify="length", progress=False, tcp=every_vantage)
    t = sv.table
    pulls = t[(t.kind == "pull") & (t.point == client)].set_index("parallel")
    v = verdict(sv)
    return {"rates": {int(n): (float(r.MBps), float(r.MBps_lo), float(r.MBps_hi)) for n, r in pulls.iterrows()},
            "failures": int(pulls.failures.sum()), "verdict": f"{v.cause or '?'} at {v.hop or '?'}",
            "k": float(t.k.iloc[0]), "notes": [n for n in sv.notes if n.startswith(("not dilated: the kernel", "machine:", "client binds"))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="32MiB", help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--cases", default="all", help="comma-separated case numbers (1-based) or all")
    ap.add_argument("--client-only", action="store_true",
                    help="survey the client's vantage point only (faster; the verdict then sees one stage)")
    a = ap.parse_args()
    ks = [float(x) for x in a.ks.split(",")]
    names = list(CASES) if a.cases == "all" else [list(CASES)[int(i) - 1] for i in a.cases.split(",")]
    t0 = time.perf_counter()
    print(f"time dilation checked against itself: {format_size(a.image_size)} image, {'the client vantage only' if a.client_only else 'every vantage'}, median of "
          f"{a.reps} rounds (slowest-fastest), MB/s read back into real time (x k)")
    print(f"{'case':40} {'k':>3} {'1 pull MB/s':>24} {'2 pulls MB/s':>24} {'fail':>4}  verdict")
    for name in names:
        res = {}
        for k in ks:
            try:
                res[k] = one(CASES[name], k, a.image_size, a.reps, not a.client_only)
            except Exception as exc:   # noqa: BLE001 - a case that cannot run is said, and missed
                print(f"{name:40} {k:3g} FAILED: {exc}")
                check(f"{name} k={k:g}: ran ({str(exc)[:200]})", False)
                continue
            r = res[k]
            cells = [f"{r['rates'][n][0]:7.1f} ({r['rates'][n][1]:6.1f}-{r['rates'][n][2]:6.1f})" if n in r["rates"]
                     else "-" for n in (1, 2)]
            print(f"{name:40} {k:3g} {cells[0]:>24} {cells[1]:>24} {r['failures']:4d}  {r['verdict']}", flush=True)
        base = res.get(ks[0])
        if base is None:
            continue
        for k, r in res.items():
            if k == ks[0]:
                continue
            for n, (rate, _, _) in r["rates"].items():
                b = base["rates"].get(n, (None,))[0]
                dev = (rate / b - 1) if b else float("inf")
                ok = abs(dev) <= TOLERANCE
                print(f"  {name} k={k:g} {n} pull(s): {rate:.1f} vs {b:.1f} at k={ks[0]:g}: {dev:+.0%} "
                      f"(target +-{TOLERANCE:.0%}: {check(f'{name} k={k:g} {n} pulls {rate:.1f} vs {b:.1f} MB/s ({dev:+.0%})', ok)})")
            same = r["verdict"] == base["verdict"]
            what = f"{name} k={k:g} verdict {r['verdict']!r} vs {base['verdict']!r} at k={ks[0]:g}"
            print(f"  {what} (same: {check(what, same)})")
            for n in r["notes"]:
                print(f"    {n}")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; numbers from a shared 2-core machine vary +-15-20%")
    finish()


if __name__ == "__main__":
    main()
