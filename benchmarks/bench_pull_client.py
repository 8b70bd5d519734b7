"""labkit's pull client next to curl on the same path, and the survey's wall time, in one run.

    python benchmarks/bench_pull_client.py [--image-size 256MiB] [--reps 7]

Targets: labkit's client >= 95% of curl's throughput (shown with length-only and with
sha256 verification: hashing is CPU the 2-core machine shares with the path); the per-hop survey <= 60 s with
the CI image size (64 MiB). Runs alternate (curl, labkit, curl, ...) so drift hits both.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from labkit.lab.lab import Lab
from labkit.in_netns import exec_prefix
from labkit.measure.pull_at import pull_at
from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.measure.survey import run_survey
from labkit.units import SIZE_HELP, format_size, parse_size



def curl_mbps(ns: str | None, url: str) -> float:
    out = subprocess.run([*exec_prefix(ns), "curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code}",
                          "--max-time", "120", url], capture_output=True, text=True, check=True).stdout.split()
    if out[1] != "200":
        raise RuntimeError(f"curl got HTTP {out[1]} from {url}")
    return float(out[0]) / 1e6


def compare(lab: Lab, reps: int) -> dict[str, float]:
    """Median MB/s of curl and of labkit's client in both verify modes, runs interleaved."""
    ns = lab.plan.ns(lab.path.client_vantage.client)   # the whole path, from the compute node
    url = lab.manifest()["image"]
    runs: dict[str, list[float]] = {"curl": [], "sha256": [], "length": []}
    for _ in range(reps):
        runs["curl"].append(curl_mbps(ns, url))
        for verify in ("sha256", "length"):
            r = pull_at(lab, verify=verify)
            if not r.ok:
                raise RuntimeError(f"labkit pull failed: {r.errors}")
            runs[verify].append(r.mbps)
    return {k: statistics.median(v) for k, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="256MiB",
                    help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    print(f"pull client vs curl, full path (compute node -> docker-proxy -> nginx -> uwsgi), "
          f"{format_size(a.image_size)} image, median of {a.reps} alternating runs each")
    for label, s in [("sregistry 2018-10 (FileResponse, uwsgi sendfile)", SREGISTRY_SHIPPED),
                     ("X-Accel-Redirect (nginx sends the file)", SREGISTRY_SHIPPED.changed(app={"serve_mode": "accel"}))]:
        with Lab("bench", s, image_size=a.image_size, quiet=True) as lab:
            m = compare(lab, a.reps)
        print(f"  {label}: curl -o /dev/null {m['curl']:.0f} MB/s")
        for verify, what in (("length", "length checked"), ("sha256", "length + sha256 verified")):
            ratio = m[verify] / m["curl"]
            print(f"    labkit, {what:25} {m[verify]:6.0f} MB/s  ratio {ratio:.2f}  "
                  f"(target >= 0.95: {'met' if ratio >= 0.95 else 'MISSED'})")
    with Lab("bench", image_size=parse_size("64MiB"), quiet=True) as lab:
        t0 = time.perf_counter()
        run_survey(lab, parallel=5, iperf_seconds=2, progress=False)
        wall = time.perf_counter() - t0
    print(f"per-hop survey (5 iperf3 hops x 2 s, 4 vantage points x 1 and 5 pulls, 64 MiB): {wall:.1f} s "
          f"(target <= 60 s: {'met' if wall <= 60 else 'MISSED'})")


if __name__ == "__main__":
    main()
