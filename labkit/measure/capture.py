"""Capture a pull's packets at any hop (tcpdump, headers only) with the sender kernel's view (tcp_info) beside them.

At each capture point one tcpdump runs inside the hop's namespace: libpcap's TPACKET_V3 ring, the
filter compiled and each packet cut to SNAPLEN bytes in the kernel, the headers written to a pcap
in large buffered writes, at a lower CPU priority than the path it watches. Every capture is bounded
in packets (per point) and seconds, and reports what the kernel dropped from it (drops cost the
capture packets, never the pull) and the CPU it took.
"""
from __future__ import annotations

import json
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from ..errors import ServiceError
from ..in_netns import exec_prefix, inside
from ..lab.host.process import Process, stop_group
from ..lab.host.tools import tool
from ..path import Plan
from ..units import KiB, MiB
from .pull_at import pull_at
from .path_sockets import TcpInfoSampler

if TYPE_CHECKING:
    from ..lab.lab import Lab

SNAPLEN = 128                 # Ethernet + IPv4 + TCP with options fit
BUFFER_KIB = 32 * MiB // KiB       # each capture's kernel ring (libpcap's buffer): what a busy machine may leave unread
NICE = 10                     # on a busy machine the capture waits (its ring fills: kernel drops), not the pull
_COUNTS = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel)$", re.M)


@dataclass(frozen=True)
class CapturePoint:
    """Where a hop's packets can be seen, and who sends the data there."""
    name: str
    node: str
    iface: str
    bpf: str
    sender: str
    sender_port: int


def capture_points(plan: Plan) -> dict[str, CapturePoint]:
    """Where each connection of the declared path can be captured, and who sends on it."""
    out = {}
    for c in plan.path.connections:
        link, end = c.seen_on
        out[c.name] = CapturePoint(c.name, plan.link_node(link, end), plan.dev(link, end),
                                   f"tcp port {plan.port(c.port)}", c.sender, plan.port(c.port))
    return out


@dataclass
class CaptureStats:
    point: str
    pcap: str
    packets: int = 0
    kernel_drops: int = 0
    seconds: float = 0.0
    stopped_by: str = ""
    cpu_s: float = 0.0            # the capturer's own CPU time


class Tcpdump(Process):
    """tcpdump at one capture point, in the point's namespace, writing a headers-only pcap; its
    messages and its closing counts go to its log beside the pcap."""
    stop_signal = signal.SIGINT   # tcpdump writes out the pcap, prints its counts and exits
    # libpcap's TPACKET_V3 ring hands a block of packets over when it is full or BLOCK_TOV_S old (tcpdump
    # sets a read timeout of 1000 ms in tcpdump.c; libpcap's pcap-linux.c makes it the block's
    # tp_retire_blk_tov), and tcpdump, stopped, drops a block it has not been handed: the pull's last
    # packets. So a capture ends BLOCK_TOV_S after the pull, once tcpdump has read the last block.
    # (--immediate-mode avoids the wait with TPACKET_V2, a wake-up per packet or two: measured here,
    # 10x the CPU and pulls at 0.58 of their rate against 0.93 with TPACKET_V3.)
    BLOCK_TOV_S = 1.0

    def __init__(self, ns: str | None, point: CapturePoint, pcap: Path, max_packets: int):
        pcap = Path(pcap)
        super().__init__(f"tcpdump@{point.name}", point.node, ns, pcap.with_name(pcap.stem + ".tcpdump.log"))
        self.point, self.pcap, self.max_packets = point, pcap, max_packets

    def argv(self) -> list[str]:
        return [tool("tcpdump"), "-i", self.point.iface, "-p", "-n", "-s", str(SNAPLEN), "-B", str(BUFFER_KIB), "-c", str(self.max_packets), "-w", str(self.pcap),
                "-Z", "root", self.point.bpf]

    def command(self) -> list[str]:
        return ["nice", "-n", str(NICE), *self.argv()]

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until tcpdump says it listens (its filter compiled, its ring attached)."""
        deadline = time.monotonic() + timeout
        while "listening on" not in self.log_since_start():
            if not self.alive() or time.monotonic() > deadline:
                raise ServiceError(f"the capture at {self.point.name} did not start ({self.exit_reason()}):\n"
                                   f"{self.log_since_start()}")
            time.sleep(0.02)

    def _caught_up(self, timeout: float = 2.0) -> None:
        """Until tcpdump has read what its ring holds (stopped, it drops what it has not read): it sleeps
        in poll() when nothing is left, so its voluntary context switches stop growing."""
        deadline, last, quiet = time.monotonic() + timeout, -1, 0
        while self.pid is not None and quiet < 2 and time.monotonic() < deadline:
            try:
                now = psutil.Process(self.pid).num_ctx_switches().voluntary
            except psutil.Error:
                return
            quiet, last = (quiet + 1 if now == last else 0), now
            time.sleep(0.02)

    def finish(self, seconds: float, why: str) -> CaptureStats:
        """Its CPU time (read before it is collected), then the end (unless its packet bound came first)
        and its counts."""
        stats = CaptureStats(self.point.name, str(self.pcap), seconds=round(seconds, 3), stopped_by=why)
        self._caught_up()
        try:
            p = psutil.Process(self.pid)
            t = p.cpu_times()
            stats.cpu_s = round(t.user + t.system, 3)
            if p.status() == psutil.STATUS_ZOMBIE:
                stats.stopped_by = "max_packets"
        except psutil.NoSuchProcess:
            stats.stopped_by = "max_packets"
        self.stop()
        counts = {kind: int(n) for n, kind in _COUNTS.findall(self.log_since_start())}
        stats.packets, stats.kernel_drops = counts.get("captured", 0), counts.get("dropped by kernel", 0)
        return stats


class CaptureProcess:
    """Headers-only captures at several points, one tcpdump each, bounded in packets (per point) and in
    seconds (all of them stopped then)."""

    def __init__(self, taps: list[tuple[str | None, CapturePoint, Path]], max_packets: int = 200_000,
                 max_seconds: float = 60.0):
        if not 1 <= max_packets <= 5_000_000 or not 0 < max_seconds <= 600:
            raise ValueError("capture bounds: max_packets 1..5,000,000 and max_seconds up to 600")
        self.dumps = [Tcpdump(ns, pt, pcap, max_packets) for ns, pt, pcap in taps]
        self._lock = threading.Lock()
        self._stats: list[CaptureStats] | None = None
        try:
            for d in self.dumps:
                d.start()
            for d in self.dumps:
                d.wait_ready()
        except BaseException:
            for d in self.dumps:
                d.stop()
            raise
        self.t0 = time.monotonic()
        self._bound = threading.Timer(max_seconds, self._finish, ("max_seconds",))
        self._bound.daemon = True
        self._bound.start()

    def _finish(self, why: str) -> list[CaptureStats]:
        with self._lock:
            if self._stats is None:
                seconds = time.monotonic() - self.t0
                time.sleep(Tcpdump.BLOCK_TOV_S + 0.1)       # the kernel hands each tcpdump its last block
                self._stats = [d.finish(seconds, why) for d in self.dumps]
            return self._stats

    def stop(self) -> list[CaptureStats]:
        self._bound.cancel()
        return self._finish("pull finished")


@dataclass
class Capture:
    vantage: str
    pull: dict
    stats: list[CaptureStats]
    tcp_info: dict[str, list[dict]] = field(default_factory=dict)   # per point: its sender's samples
    cpu: dict = field(default_factory=dict)

    def save_meta(self, path: Path) -> Path:
        path.write_text(json.dumps({"vantage": self.vantage, "pull": self.pull, "cpu": self.cpu,
                                    "stats": [asdict(s) for s in self.stats], "tcp_info": self.tcp_info}, indent=1))
        return path


def capture_pull(lab: Lab, vantage: str | None = None, points: list[str] | None = None,
                 max_packets: int = 200_000, max_seconds: float = 60.0, verify: str = "sha256",
                 out_dir: Path | None = None, tcp_interval: float | None = 0.02) -> Capture:
    """One pull from `vantage` (default: the client's), captured at every connection it crosses (or at `points`).

    The tcp_info of each point's sender is sampled every `tcp_interval` s (None: not sampled) by the
    same sock_diag sampler as the survey's (labkit.measure.path_sockets).
    """
    v = lab.path.vantage(vantage) if vantage else lab.path.client_vantage
    all_points = capture_points(lab.plan)
    names = points or list(v.crosses)
    unknown = [n for n in names if n not in all_points]
    if unknown:
        raise ValueError(f"capture points {unknown}: known are {', '.join(all_points)}")
    lab.require_running()
    out_dir = Path(out_dir or lab.run_dir.parent.parent / "captures")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}-{v.name.replace(' ', '-')}"
    taps = [(lab.plan.ns(all_points[n].node), all_points[n],
             out_dir / f"{stem}-{re.sub(r'[^A-Za-z0-9]+', '-', n)}.pcap") for n in names]
    sampler = TcpInfoSampler(lab.plan, lab.settings, tcp_interval) if tcp_interval else None
    capture = CaptureProcess(taps, max_packets, max_seconds)
    try:
        if sampler:
            with sampler:
                run = pull_at(lab, v.name, 1, verify=verify, deadline=max_seconds)
        else:
            run = pull_at(lab, v.name, 1, verify=verify, deadline=max_seconds)
    finally:
        stats = capture.stop()
    tcp = {n: sampler.sender_samples(n) for n in names} if sampler else {}
    cap = Capture(v.name, run.results[0].row(), stats, tcp, run.cpu)
    cap.save_meta(out_dir / f"{stem}.json")
    return cap
