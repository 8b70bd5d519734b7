"""The one measurement primitive: pull once, or N at once, from a vantage point under a CPU sampler.

    run = pull_at(lab, "nginx", parallel=5)     # vantage None: where the real client pulls from
    run.row()                                    # one tidy row: MB/s, per-pull spread, TTFB, failures, CPU, disk MB,
                                                 # each program's CPU-seconds per GB moved (cpu_s_per_GB_<program>)
    pull_at(lab, tcp=True).tcp                   # and each connection's tcp_info, both sides, during it

The survey, sweeps, captures, benchmarks, tests and notebooks all measure through it, and it
refuses to measure a lab with a service down (unless asked to show how the broken path fails).
Before the pulls the lab gets ready for one (`lab.before_pull()`: a cold cache drops the image);
the lab's disks are counted around them (one column per disk stage of the declared path). From
the client's vantage point the client is the kind `lab.settings.client` names (labkit.clients.kinds.KINDS);
elsewhere labkit's own verifying client, discarding.
"""
from __future__ import annotations

import contextlib
import statistics
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..records import cost
from ..lab.host.cgroups import IoCounters
from ..path import CLIENT, ServingPath
from .cpu import CpuSampler, softirq_seconds
from .path_sockets import TcpInfoSampler
from ..clients.kind import Target, Where
from ..clients.kinds import OWN, client_kind, own_client
from ..clients.puller import PullResult, Verify, aggregate_mbps, check_parallel
from ..lab.host.tools import tool

if TYPE_CHECKING:
    from ..lab.lab import Lab


@dataclass
class PullRun:
    vantage: str
    parallel: int
    results: list[PullResult]
    verify: str
    cpu: dict = field(default_factory=dict)
    busiest: str = ""
    busiest_cpu: float = 0.0
    client: str = OWN                                       # the client kind that pulled
    disk: dict[str, IoCounters] = field(default_factory=dict)   # per lab disk: what the pulls read/wrote
    tcp: list[dict] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)      # CPU seconds per service over the pulls
    softirq_s: float | None = None                              # the machine's softirq seconds meanwhile
    path: ServingPath | None = None                              # the path pulled on (its disk stages, programs)
    machine: dict = field(default_factory=dict)                  # {"cpus": N, "busy": %}: the whole machine

    @property
    def client_cpu(self) -> float:
        """The pulling threads' CPU over the pull's span, in % of one core (labkit's own client)."""
        return self._share(sum(r.cpu_s for r in self.results))

    @property
    def client_wait(self) -> float:
        """How long the pulling threads waited for a CPU over the pull's span, in % of one core."""
        return self._share(sum(r.wait_s for r in self.results))

    def _share(self, seconds: float) -> float:
        span = max((r.end for r in self.results), default=0) - min((r.start for r in self.results), default=0)
        return round(100 * seconds / span, 1) if span > 0 else 0.0

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

    def disk_mb(self) -> dict[str, float | None]:
        return disk_mb(self.disk, self.path) if self.path else {}

    def cost(self) -> dict[str, float | None]:
        """Each program's CPU-seconds per GB moved (labkit.records.cost), as row columns."""
        if self.path is None:
            return {}
        return cost.per_gb({**self.cpu_s, CLIENT: sum(r.cpu_s for r in self.results),
                            cost.SOFTIRQ: self.softirq_s}, sum(r.bytes for r in self.results), self.path)

    def row(self) -> dict:
        good = self.good
        return {"point": self.vantage, "parallel": self.parallel, "MBps": round(self.mbps, 1),
                "per_pull_min": round(min(r.mbps for r in self.results), 1),
                "per_pull_max": round(max(r.mbps for r in self.results), 1),
                "ttfb_ms": round(statistics.median(r.ttfb_ms for r in good), 1) if good else None,
                "failures": self.failures,
                "sha256_ok": all(r.sha256_ok for r in self.results) if self.verify == "sha256" else None,
                "busiest": self.busiest, "busiest_cpu": self.busiest_cpu, "client": self.client,
                "client_cpu": self.client_cpu, **self.disk_mb(), **self.cost(), "error": self.errors}


def node_shares(path: ServingPath, parallel: int, nodes: int) -> list[tuple[str, int]]:
    """(compute node, its pulls) for `parallel` pulls spread over the first `nodes` compute nodes."""
    if not 1 <= nodes <= len(path.compute):
        raise ValueError(f"nodes {nodes}: the path has {len(path.compute)} compute node(s)")
    names = path.compute[:min(nodes, parallel)]
    return [(c, parallel // len(names) + (i < parallel % len(names))) for i, c in enumerate(names)]


def _from_nodes(lab: Lab, kind, shares, at, where: Where, verify, timeout, deadline) -> list[PullResult]:
    """Each node's share of the pulls from its own namespace, all at once; the results in node order."""
    host, port, img, trust = at
    out: dict[str, list[PullResult]] = {}
    raised: list[BaseException] = []

    def one(node: str, n: int) -> None:
        w = Where(lab.client.dest_root(node), where.preexec, where.find)
        t = Target(lab.plan.ns(node), host, port, img.uri, img.sha256, img.size, trust)
        try:
            out[node] = kind.pull(t, w, n, verify, timeout, deadline)
        except BaseException as exc:       # bad settings or no room: raised in the caller, as one node's pull would
            raised.append(exc)
    threads = [threading.Thread(target=one, args=share, daemon=True) for share in shares]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if raised:
        raise raised[0]
    return [r for node, _ in shares for r in out[node]]


def disk_mb(delta: dict, path: ServingPath) -> dict[str, float | None]:
    """MB per disk stage's column of `path` from counter deltas by disk (None: that disk is not the lab's own)."""
    return {d.column: round(getattr(delta[d.disk], d.counter) / 1e6, 1) if d.disk in delta else None
            for d in path.disk_stages}


def pull_at(lab: Lab, vantage: str | None = None, parallel: int = 1, verify: Verify = "sha256",
            deadline: float = 300, timeout: float = 30, cpu_interval: float = 0.1,
            first_byte: threading.Event | None = None, tcp: bool | float = False,
            allow_down: bool = False, nodes: int = 1) -> PullRun:
    """`parallel` pulls of the lab's image at once from `vantage`, verified, with each service's CPU
    and the lab disks' bytes read and written.

    `tcp`: also sample every connection's tcp_info (True: every 20 ms, or the interval in s).
    `allow_down`: pull even with a service down, to see where the broken path fails.
    `nodes`: from the client's vantage point, the pulls spread over the path's first `nodes` compute nodes
    (an equal share each, the first ones one more), each node's share started at once from its own namespace.
    """
    check_parallel(parallel)
    path = lab.path
    v = path.vantage(vantage) if vantage else path.client_vantage
    if not (allow_down and lab.image is not None):
        lab.require_running()
    ns, host, port = lab.plan.endpoint(v)
    trust = lab.trust_at(v)       # https, verified against the lab's CA
    img = lab.image
    kind = client_kind(lab.settings.client) if v == path.client_vantage else own_client()
    where = Where(lab.client.dest_root(), lab.client.preexec(), tool) \
        if v == path.client_vantage else Where()
    lab.before_pull()
    disk0 = lab.disk_counters()
    soft0 = softirq_seconds()
    tcp_sampler = (TcpInfoSampler(lab.plan, lab.settings, 0.02 if tcp is True else float(tcp)) if tcp
                   else contextlib.nullcontext())
    shares = node_shares(path, parallel, nodes) if v == path.client_vantage else [("", parallel)]
    with CpuSampler(lab.processes, interval=cpu_interval) as sampler, tcp_sampler:
        if len(shares) == 1:
            results = kind.pull(Target(ns, host, port, img.uri, img.sha256, img.size, trust), where, parallel, verify,
                                timeout, deadline, first_byte)
        else:
            results = _from_nodes(lab, kind, shares, (host, port, img, trust), where, verify, timeout, deadline)
    soft1 = softirq_seconds()
    disk1 = lab.disk_counters()
    busiest, busiest_cpu = sampler.busiest()
    return PullRun(v.name, parallel, results, verify, sampler.summary(), busiest, busiest_cpu,
                   kind.name, {k: disk1[k] - disk0[k] for k in disk1 if k in disk0},
                   tcp_sampler.summary() if tcp else [], sampler.seconds(),
                   None if soft0 is None or soft1 is None else soft1 - soft0, path=path, machine=sampler.machine())
