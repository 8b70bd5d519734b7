"""Run benchmarks one after another, each to its end even when an earlier one missed; list the misses at the end.

    python benchmarks/run.py ci       # CI's share (`make bench-ci`, `.ci/run`'s second step)
    python benchmarks/run.py all      # every benchmark (`make bench`)

Each benchmark prints its output as it runs; a benchmark that misses a target exits 1 and prints a
'MISSED: ...' line per target (benchmarks/targets.py). This exits 1 when any benchmark missed or failed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CI = [["bench_pull_client.py", "--reps", "5", "--image-mib", "64", "--paths", "accel"],   # the fastest path (issue 29)
      ["bench_capture.py", "--reps", "2", "--image-mib", "64"],
      ["bench_tls.py", "--image-mib", "16", "--reps", "1"]]
ALL = [["bench_pull_client.py"], ["bench_capture.py"], ["bench_tuning.py"], ["bench_clients.py"],
       ["bench_verdict.py"], ["bench_verdict.py", "--stability", "10"], ["bench_storm.py"], ["bench_publish.py"],
       ["bench_tls.py"], ["bench_gcm_paths.py"], ["bench_scale.py"], ["bench_dilation.py"], ["bench_oci_keepalive.py"], ["bench_oci.py"]]
SETS = {"ci": CI, "all": ALL}


def run(bench: list[str]) -> tuple[int, list[str]]:
    """Run one benchmark, its output passed through; (exit code, its MISSED lines)."""
    print(f"\n=== {' '.join(bench)}", flush=True)
    p = subprocess.Popen([sys.executable, str(HERE / bench[0]), *bench[1:]], stdout=subprocess.PIPE, text=True)
    missed = []
    for line in p.stdout:
        print(line, end="", flush=True)
        if line.startswith("MISSED:"):
            missed.append(line.removeprefix("MISSED:").strip())
    return p.wait(), missed


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in SETS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SETS)}")
    failed = []
    for bench in SETS[sys.argv[1]]:
        code, missed = run(bench)
        name = " ".join(bench)
        failed += [f"{name}: {m}" for m in missed]
        if code and not missed:
            failed.append(f"{name}: exited {code} (a failure, not a missed target)")
    print(f"\n=== benchmarks: {len(SETS[sys.argv[1]])} run, " + (f"{len(failed)} missed or failed:" if failed else "every target met"))
    for f in failed:
        print(f"  MISSED {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
