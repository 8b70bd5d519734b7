"""The one measurement primitive: pull once, or N at once, from a vantage point under a CPU sampler.

    run = pull_at(lab, "nginx", parallel=5)     # vantage None: where the real client pulls from
    run.row()                                    # one tidy row: MB/s, per-pull spread, TTFB, failures, CPU, disk MB,
                                                 # each program's CPU-seconds per GB moved (cpu_s_per_GB_<program>)
    pull_at(lab, tcp=True).tcp                   # and each connection's tcp_info, both sides, during it
    run.k, run.notes()                           # a time-dilated lab's k (row() is in real time: MB/s x k), what
                                                 # the model could not dilate (the kernel's share), a client that bound

The survey, sweeps, captures, benchmarks, tests and notebooks all measure through it, and it
refuses to measure a lab with a service down (unless asked to show how the broken path fails).
Before the pulls the lab gets ready for one (`lab.before_pull()`: a cold cache drops the image);
the lab's disks are counted around them (one column per disk stage of the declared path). From
the client's vantage point the client is the kind `lab.settings.client` names (labkit.clients.kinds.KINDS);
elsewhere labkit's own verifying client for the registry's API, discarding (kind `labkit` for sregistry's
file, kind `oci` for an OCI registry's image: manifest, config and every layer, each checked by its digest).
What is pulled is `lab_target`: sregistry's image file, or the OCI image the lab stocked its registry with.
From the client's vantage point on a path with several
compute nodes the pulls are spread over them, round-robin (`spread`): each node pulls from its own
namespace into its own destination (its own shared-fs mount), as the seed's 40 pulls came from many nodes.

A time-dilated lab (labkit.config.dilation, `lab.k`): the pull deadline and the client's idle timeout are
stretched x k here, once (`lab.machine.time`); each compute node's clients run in their CPU group at their
share / k (labkit.lab.conditions.client_cpu) and the run says whether they bound (`clients`, ClientLoad);
the PullRun knows k: `mbps` and `row()` are in real time (rates x k, times / k, `k` said), `measured_mbps`
as measured. The kernel's softirq share of the CPU the pulls cost is measured (`kernel_share`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config.dilation import ClientLoad
from ..records import cost
from ..lab.host.cgroups import IoCounters
from ..path import CLIENT, ServingPath, Vantage
from .cpu import CpuSampler, softirq_seconds
from .dilated import kernel_note, row_back
from .path_sockets import TcpInfoSampler
from ..clients.kind import OciImageRef, Target, Where
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
    k: float = 1.0                                               # the lab's time dilation: rates read back x k
    ratio: float = 1.0                                           # this machine's core / the CPU model's
    clients: list[ClientLoad] = field(default_factory=list)      # each node's clients against their CPU cap

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
    def measured_mbps(self) -> float:
        """One pull's MB/s, or the aggregate of N over the span from the first start to the last end, as measured
        (in a dilated lab: in its slowed time)."""
        return self.results[0].mbps if self.parallel == 1 else aggregate_mbps(self.results)

    @property
    def mbps(self) -> float:
        """`measured_mbps` in real time: x k (the identity at k = 1)."""
        return self.measured_mbps * self.k

    @property
    def kernel_share(self) -> float | None:
        """The machine's softirq seconds over the pulls against all the CPU the path's programs, the client and
        softirq used meanwhile (None: not measured). The kernel's work is not dilated (NOT_DILATED)."""
        if self.softirq_s is None:
            return None
        total = self.softirq_s + sum(self.cpu_s.values()) + sum(r.cpu_s for r in self.results)
        return round(self.softirq_s / total, 3) if total > 0 else None

    @property
    def client_binds(self) -> bool:
        return any(c.binds for c in self.clients)

    def notes(self) -> list[str]:
        """What a dilated run says beside its row: k, each node's clients against their cap, the kernel's share."""
        out = []
        if self.k != 1:
            out.append(f"time dilation k = {self.k:g}: rates read back x {self.k:g}, times / {self.k:g}")
        out += [c.note() for c in self.clients]
        if self.k != 1 and self.path is not None and \
                (line := kernel_note(f"{self.vantage} x{self.parallel}", cost.from_row(self.cost(), self.path),
                                     self.ratio, self.k)):
            out.append(line)
        return out

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
        """One tidy row in real time (labkit.measure.dilated.row_back: rates x k, times / k, `k` said)."""
        good = self.good
        busy = max(self.clients, key=lambda c: c.use, default=None)     # the node whose clients came nearest their cap
        return row_back({"point": self.vantage, "parallel": self.parallel, "MBps": round(self.measured_mbps, 1),
                "per_pull_min": round(min(r.mbps for r in self.results), 1),
                "per_pull_max": round(max(r.mbps for r in self.results), 1),
                "ttfb_ms": round(statistics.median(r.ttfb_ms for r in good), 1) if good else None,
                "failures": self.failures,
                "sha256_ok": all(r.sha256_ok for r in self.results) if self.verify == "sha256" else None,
                "busiest": self.busiest, "busiest_cpu": self.busiest_cpu, "client": self.client,
                "client_cpu": self.client_cpu, **self.disk_mb(), **self.cost(), "error": self.errors,
                "client_cap": busy.cap if busy else None, "client_cap_use": round(busy.use, 3) if busy else None,
                "client_throttled": round(busy.throttled_share, 3) if busy else None,
                "client_binds": self.client_binds if busy else None, "kernel_share": self.kernel_share}, self.k)


def disk_mb(delta: dict, path: ServingPath) -> dict[str, float | None]:
    """MB per disk stage's column of `path` from counter deltas by disk (None: that disk is not the lab's own)."""
    return {d.column: round(getattr(delta[d.disk], d.counter) / 1e6, 1) if d.disk in delta else None
            for d in path.disk_stages}


def image_target(lab: Lab, ns: str | None, host: str, port: int, trust) -> Target:
    """The lab's image asked at host:port from namespace `ns`: sregistry's one file, or the OCI image in the
    lab's registry (`uri` its manifest, `sha256` its large layer, `oci` every digest a pull must end with)."""
    oci = lab.running.oci_image()
    if oci is None:
        img = lab.image
        return Target(ns, host, port, img.uri, img.sha256, img.size, trust)
    ref = OciImageRef(oci.repository, oci.tag, oci.manifest_digest, oci.config_digest,
                      tuple(zip(oci.layer_digests, oci.layer_sizes)))
    return Target(ns, host, port, f"/v2/{oci.repository}/manifests/{oci.tag}", oci.largest[0].split(":", 1)[1],
                  ref.size, trust, ref)


def lab_target(lab: Lab, v: Vantage) -> Target:
    """What a pull at vantage point `v` asks for: where it dials, the trust it verifies (https, the lab's CA),
    and the lab's image (image_target)."""
    return image_target(lab, *lab.plan.endpoint(v), lab.trust_at(v))


def spread_counts(parallel: int, nodes: int) -> list[int]:
    """`parallel` pulls over `nodes` compute nodes, round-robin: 40 over 8 is 5 each, 5 over 3 is 2, 2, 1."""
    return [parallel // nodes + (i < parallel % nodes) for i in range(nodes)]


def _jobs(lab: Lab, v, parallel: int, spread: bool, trust) -> list[tuple[str | None, Target, Where, int]]:
    """(node, target, where, pulls) for each compute node that pulls: round-robin over the path's compute
    nodes from the client's vantage point (`spread`), else all from its first node; elsewhere one job."""
    path = lab.path
    if v != path.client_vantage:
        return [(None, image_target(lab, *lab.plan.endpoint(v), trust), Where(), parallel)]
    ends = lab.plan.compute_endpoints()[:parallel if spread else 1]
    counts = spread_counts(parallel, len(ends))
    c = lab.client
    return [(node, image_target(lab, ns, host, port, trust),
             Where(c.dest_root(node), c.preexec(node), tool, keeps=c.keeps, own_process=c.cpu.held), n)
            for (node, ns, host, port), n in zip(ends, counts)]


def _pull_jobs(kind, jobs, verify: Verify, timeout: float, deadline: float,
               first_byte: threading.Event | None) -> list[PullResult]:
    """Every job's pulls at once (a thread a compute node), the results in the jobs' order."""
    def one(job):
        return kind.pull(job[1], job[2], job[3], verify, timeout, deadline, first_byte)
    if len(jobs) == 1:
        return one(jobs[0])
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="pull-node") as pool:
        return [r for rs in pool.map(one, jobs) for r in rs]


def pull_at(lab: Lab, vantage: str | None = None, parallel: int = 1, verify: Verify = "sha256",
            deadline: float = 300, timeout: float = 30, cpu_interval: float = 0.1,
            first_byte: threading.Event | None = None, tcp: bool | float = False,
            allow_down: bool = False, spread: bool = True) -> PullRun:
    """`parallel` pulls of the lab's image at once from `vantage`, verified, with each service's CPU
    and the lab disks' bytes read and written.

    `tcp`: also sample every connection's tcp_info (True: every 20 ms, or the interval in s).
    `allow_down`: pull even with a service down, to see where the broken path fails.
    `deadline` (the lab's, per pull) and `timeout` (the client's idle timeout) are in real time: a dilated
    lab stretches them x k. `spread`: the client's pulls over every compute node (round-robin).
    """
    check_parallel(parallel)
    path = lab.path
    v = path.vantage(vantage) if vantage else path.client_vantage
    if not (allow_down and lab.image is not None):
        lab.require_running()
    deadline, timeout = lab.machine.time(deadline), lab.machine.time(timeout)
    kind = client_kind(lab.settings.client) if v == path.client_vantage else own_client(lab.settings.registry.api)
    trust = lab.trust_at(v)                                     # https verified against the lab's CA
    if trust is not None and v == path.client_vantage:          # offering what the operator's clients offer
        trust = dataclasses.replace(trust, offer=lab.settings.client.tls_offer)
    jobs = _jobs(lab, v, parallel, spread, trust)
    lab.before_pull()
    disk0 = lab.disk_counters()
    soft0 = softirq_seconds()
    held = lab.client.cpu.counters() if v == path.client_vantage else {}
    tcp_sampler = (TcpInfoSampler(lab.plan, lab.settings, 0.02 if tcp is True else float(tcp)) if tcp
                   else contextlib.nullcontext())
    t0 = time.perf_counter()
    with CpuSampler(lab.processes, interval=cpu_interval) as sampler, tcp_sampler:
        results = _pull_jobs(kind, jobs, verify, timeout, deadline, first_byte)
    span = time.perf_counter() - t0
    now = lab.client.cpu.counters() if held else {}
    soft1 = softirq_seconds()
    disk1 = lab.disk_counters()
    busiest, busiest_cpu = sampler.busiest()
    loads = [ClientLoad(node, lab.client.cpu.cap, (now[node][0] - held[node][0]) / 1e9, span,
                        now[node][1] - held[node][1], now[node][2] - held[node][2])
             for node, *_ in jobs if node in held and node in now]
    return PullRun(v.name, parallel, results, verify, sampler.summary(), busiest, busiest_cpu,
                   kind.name, {k: disk1[k] - disk0[k] for k in disk1 if k in disk0},
                   tcp_sampler.summary() if tcp else [], sampler.seconds(),
                   None if soft0 is None or soft1 is None else soft1 - soft0, path=path, machine=sampler.machine(),
                   k=lab.k, ratio=lab.cpu.ratio, clients=loads)
