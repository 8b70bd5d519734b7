"""Pull storms on Locust against the native parallel pull, on the same lab and settings, side by side.

    python benchmarks/bench_storm.py [--image-size 32MiB] [--trials 3] [--preset recommended] [--wan 6gbit]

Targets (issue 10):
  1. 200 pulls from 8 compute nodes (40 Locust users, one worker per node) with 0 failures
     caused by the harness (every pull verified: length and sha256).
  2. The Locust-driven aggregate at 40 pulls (40 users, one pull each, spread over the 8 nodes)
     >= 90% of the native parallel pull, `pull_at(lab, parallel=40)` from the client's compute
     node, measured alternately in one run: median of the trials, with the spread.
Both go through the same 6 Gbit uplink (`links.wan`, shaped at the VM's sending end).
"""
from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from labkit.units import SIZE_HELP, format_size, parse_size
from labkit.analyze.storm_tables import pulls_table, records_of, storm_row
from labkit.config.presets import PRESETS
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.measure.locust_storm import StormSpec
from labkit.experiments.storm import run_storm
from targets import check, finish

SHOW = ["engine", "nodes", "users", "pulls", "ok", "failures", "harness_failures", "MBps", "per_pull_min",
        "per_pull_median", "per_pull_max", "jain", "ttfb_ms", "ttfb_p95_ms", "sha256_ok", "span_s", "busiest",
        "busiest_cpu"]


def native_row(lab, parallel: int) -> dict:
    """pull_at's N parallel pulls as a row of the storm table (the same columns, the same arithmetic)."""
    offset = time.time() - time.perf_counter()
    run = pull_at(lab, parallel=parallel)
    node = lab.path.client_vantage.client
    row = storm_row(pulls_table(records_of(run.results, node, offset)), run.vantage, "pull_at (threads)", parallel)
    return {**row, "busiest": run.busiest, "busiest_cpu": run.busiest_cpu}


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="32MiB", help=SIZE_HELP)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--preset", default="recommended", choices=sorted(PRESETS))
    ap.add_argument("--wan", default="6gbit", help="links.wan: the compute nodes' shared uplink")
    ap.add_argument("--nodes", type=int, default=8)
    a = ap.parse_args()
    settings = PRESETS[a.preset].changed(links={"wan": a.wan})
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    print(f"pull storms: preset {a.preset}, links.wan {a.wan}, {format_size(a.image_size)} image, {a.nodes} compute nodes")
    t0 = time.perf_counter()
    with Lab("st-bench", settings, image_size=a.image_size, compute_nodes=a.nodes, quiet=True) as lab:
        pull_at(lab, parallel=8)                                  # page cache and connections warm
        big = run_storm(lab, StormSpec(users=40, pulls=200))
        r = big.row()
        print(f"\n1. 200 pulls from {a.nodes} compute nodes, 40 Locust users ({big.meta['wall_s']} s with start-up):")
        print(big.table()[SHOW].to_string(index=False))
        print(big.nodes().to_string(index=False))
        if not big.failures().empty:
            print(big.failures().to_string(index=False))
        ok1 = r["pulls"] == 200 and r["harness_failures"] == 0 and r["nodes"] == a.nodes
        print(f"   target: 200 pulls, 0 harness failures ({r['failures']} failures in all, "
              f"sha256 verified {r['sha256_ok']}): {check('200 pulls, 0 harness failures', ok1)}")

        rows, ratios = [], []
        for i in range(a.trials):                                 # alternate, so drift hits both alike
            n = native_row(lab, 40)
            s = run_storm(lab, StormSpec(users=40, pulls=40)).row()
            rows += [{**n, "trial": i + 1}, {**s, "engine": "locust", "trial": i + 1}]
            ratios.append(s["MBps"] / n["MBps"] if n["MBps"] else 0.0)
            print(f"   trial {i + 1}: native {n['MBps']:7.1f} MB/s, locust {s['MBps']:7.1f} MB/s, "
                  f"ratio {ratios[-1]:.2f}", flush=True)
    table = pd.DataFrame(rows)[["trial", *SHOW]]
    print(f"\n2. 40 pulls at once: native pull_at(parallel=40) from one compute node vs Locust, 40 users "
          f"over {a.nodes} nodes, same lab and settings, alternating:")
    print(table.to_string(index=False))
    nat = [x["MBps"] for x in rows if x["engine"] != "locust"]
    loc = [x["MBps"] for x in rows if x["engine"] == "locust"]
    print(f"   native MB/s {spread(nat)}\n   locust MB/s {spread(loc)}")
    ratio = statistics.median(ratios)
    print(f"   locust / native: median {ratio:.2f} (trials {', '.join(f'{x:.2f}' for x in ratios)}); "
          f"target >= 0.90: {check(f'locust / native >= 0.90 ({ratio:.2f})', ratio >= 0.9)}")
    print(f"\nbenchmark took {time.perf_counter() - t0:.0f} s")
    finish()


if __name__ == "__main__":
    main()
