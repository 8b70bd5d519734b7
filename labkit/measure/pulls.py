"""The one measurement primitive: pull once, or N at once, from a vantage point under a CPU sampler.

    run = pull_at(lab, "nginx", parallel=5)     # vantage None: where the real client pulls from
    run.row()                                    # one tidy row: MB/s, per-pull spread, TTFB, failures, CPU

The survey, sweeps, captures, benchmarks, tests and notebooks all measure through it, and it
refuses to measure a lab with a service down.
"""
from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field

from .cpu import CpuSampler
from .pull import PullResult, Verify, aggregate_mbps, check_parallel, pull, pull_parallel


@dataclass
class PullRun:
    vantage: str
    parallel: int
    results: list[PullResult]
    verify: str
    cpu: dict = field(default_factory=dict)
    busiest: str = ""
    busiest_cpu: float = 0.0

    @property
    def good(self) -> list[PullResult]:
        return [r for r in self.results if r.ok]

    @property
    def failures(self) -> int:
        return len(self.results) - len(self.good)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def mbps(self) -> float:
        """One pull's MB/s, or the aggregate of N over the span from the first start to the last end."""
        return self.results[0].mbps if self.parallel == 1 else aggregate_mbps(self.results)

    @property
    def errors(self) -> str:
        return "; ".join(sorted({r.error for r in self.results if r.error}))

    def row(self) -> dict:
        good = self.good
        return {"point": self.vantage, "parallel": self.parallel, "MBps": round(self.mbps, 1),
                "per_pull_min": round(min(r.mbps for r in self.results), 1),
                "per_pull_max": round(max(r.mbps for r in self.results), 1),
                "ttfb_ms": round(statistics.median(r.ttfb_ms for r in good), 1) if good else None,
                "failures": self.failures,
                "sha256_ok": all(r.sha256_ok for r in self.results) if self.verify == "sha256" else None,
                "busiest": self.busiest, "busiest_cpu": self.busiest_cpu, "error": self.errors}


def pull_at(lab, vantage: str | None = None, parallel: int = 1, verify: Verify = "sha256",
            deadline: float = 300, timeout: float = 30, cpu_interval: float = 0.1,
            first_byte: threading.Event | None = None) -> PullRun:
    """`parallel` pulls of the lab's image at once from `vantage`, verified, with each service's CPU."""
    check_parallel(parallel)
    path = lab.plan.path
    v = path.vantage(vantage) if vantage else path.client_vantage
    lab.require_running()
    ns, host, port = lab.plan.endpoint(v)
    img = lab.image
    with CpuSampler(lab.processes, interval=cpu_interval) as sampler:
        if parallel == 1:
            results = [pull(ns, host, port, img.uri, img.sha256, timeout=timeout, deadline=deadline,
                            verify=verify, first_byte=first_byte)]
        else:
            results = pull_parallel(ns, host, port, img.uri, parallel, img.sha256, timeout=timeout,
                                    deadline=deadline, verify=verify)
    busiest, busiest_cpu = sampler.busiest()
    return PullRun(v.name, parallel, results, verify, sampler.summary(), busiest, busiest_cpu)
