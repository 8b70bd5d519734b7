"""iperf3 between two nodes, server sending (-R) as in a download; its --json parsed."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from ..nsenter import exec_prefix

MAX_SECONDS = 60                  # a run's length, whole seconds (bounded: a load test ends)


@dataclass
class IperfResult:
    ok: bool
    MBps: float
    retransmits: int | None
    seconds: float
    error: str = ""
    lo_MBps: float | None = None    # the slowest and fastest interval after the first (slow start)
    hi_MBps: float | None = None


def parse(report: dict) -> IperfResult:
    """The received throughput and the sender's retransmits from an iperf3 --json report."""
    if "error" in report:
        return IperfResult(False, 0.0, None, 0.0, report["error"])
    end = report["end"]
    recv = end["sum_received"]
    sent = end.get("sum_sent", {})
    rates = [i["sum"]["bits_per_second"] / 8 / 1e6 for i in report.get("intervals", [])[1:]
             if i.get("sum", {}).get("seconds", 0) > 0.05]
    return IperfResult(True, recv["bits_per_second"] / 8 / 1e6, sent.get("retransmits"),
                       recv["seconds"], lo_MBps=min(rates) if rates else None, hi_MBps=max(rates) if rates else None)


def run(ns: str | None, host: str, port: int, seconds: int = 2, streams: int = 1,
        interval: float = 0.25) -> IperfResult:
    """One iperf3 run; its per-interval rates (every `interval` s) give the run's spread."""
    if not isinstance(seconds, int) or not 1 <= seconds <= MAX_SECONDS:
        raise ValueError(f"iperf3 duration {seconds!r}: iperf3 takes whole seconds, 1..{MAX_SECONDS}")
    if not 0.1 <= interval <= seconds:
        raise ValueError(f"iperf3 interval {interval}s: 0.1 s up to the run's {seconds} s")
    argv = [*exec_prefix(ns), "iperf3", "-c", host, "-p", str(port), "-R", "-t", str(seconds),
            "-P", str(streams), "-i", str(interval), "--json", "--connect-timeout", "3000"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        return IperfResult(False, 0.0, None, 0.0, f"iperf3 did not finish within {seconds + 15:.0f}s")
    try:
        return parse(json.loads(res.stdout))
    except (json.JSONDecodeError, KeyError) as exc:
        return IperfResult(False, 0.0, None, 0.0, f"iperf3 gave no report ({exc}): {res.stderr.strip()[:200]}")
