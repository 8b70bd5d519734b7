"""Capture and analysis, measured side by side in one run.

    python benchmarks/bench_capture.py [--image-size 256MiB] [--reps 9]

1. Pull throughput with and without a capture (one hop, and every hop of the path),
   alternating runs, with the capturers' own CPU time and kernel drops. Target: the capture does
   not throttle the pull noticeably.
2. Packets per second analysing the same pcap: labkit.analyze.tcpflow vs tshark computing the
   same TCP analysis fields. Target: labkit >= 5x tshark.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from labkit.units import SIZE_HELP, format_size, parse_size
from labkit.measure.capture import capture_pull
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.analyze.tcpflow import analyze, packets
from targets import check, finish

TSHARK_FIELDS = ["frame.time_relative", "tcp.stream", "tcp.seq", "tcp.ack", "tcp.window_size",
                 "tcp.analysis.bytes_in_flight", "tcp.analysis.ack_rtt", "tcp.analysis.retransmission",
                 "tcp.analysis.zero_window", "tcp.analysis.window_full", "tcp.analysis.duplicate_ack"]


def seconds_labkit(pcap: Path) -> float:
    t0 = time.perf_counter()
    analyze(pcap)
    return time.perf_counter() - t0


def seconds_tshark(pcap: Path) -> float:
    argv = ["tshark", "-r", str(pcap), "-T", "fields"] + [a for f in TSHARK_FIELDS for a in ("-e", f)]
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="256MiB", help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="servelab-bench-"))
    runs: dict[str, list[float]] = {"no capture": [], "capture at the link": [], "capture at every hop": []}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    drops: dict[str, list[int]] = {k: [] for k in runs}
    with Lab("bench", image_size=a.image_size, quiet=True) as lab:
        for _ in range(a.reps):
            runs["no capture"].append(pull_at(lab).mbps)
            for name, points in (("capture at the link", ["link"]), ("capture at every hop", None)):
                cap = capture_pull(lab, points=points, out_dir=out)
                runs[name].append(cap.pull["MBps"])
                cpu[name].append(sum(s.cpu_s for s in cap.stats))
                drops[name].append(sum(s.kernel_drops for s in cap.stats))
        biggest = max(cap.stats, key=lambda s: s.packets)
    base = statistics.median(runs["no capture"])
    print(f"pull throughput, full path, sregistry as shipped, {format_size(a.image_size)}, median of {a.reps} alternating runs:")
    for k, vals in runs.items():
        m = statistics.median(vals)
        print(f"  {k:22} {m:6.0f} MB/s  ratio {m / base:.2f}  (runs: {', '.join(f'{x:.0f}' for x in vals)})"
              + (f"; capturers' CPU {statistics.median(cpu[k]):.2f} s per pull, kernel drops max {max(drops[k])}"
                 if cpu[k] else ""))
    pcap = Path(biggest.pcap)
    n = sum(1 for _ in packets(pcap))
    ours = n / statistics.median(seconds_labkit(pcap) for _ in range(3))
    theirs = n / statistics.median(seconds_tshark(pcap) for _ in range(3))
    print(f"analysis of {pcap.name} ({n} packets, median of 3):")
    print(f"  labkit.analyze.tcpflow {ours:9.0f} pkt/s")
    print(f"  tshark         {theirs:9.0f} pkt/s ({len(TSHARK_FIELDS)} TCP analysis fields)")
    print(f"  ratio {ours / theirs:.1f}x (target >= 5x: {check(f'tcpflow / tshark >= 5x ({ours / theirs:.1f}x)', ours / theirs >= 5)})")
    finish()


if __name__ == "__main__":
    main()
