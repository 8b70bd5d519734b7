"""Capture a pull's packets at any hop (scapy, headers only) with the kernel's view (`ss -ti`) beside them.

The capture socket is opened inside the hop's namespace; its BPF filter is compiled by
libpcap (through scapy) and then truncates each packet to the headers in the kernel, so
the copy to user space stays small. Every capture is bounded in packets and seconds, and
reports what the kernel dropped from it (drops cost the capture packets, never the pull).
"""
from __future__ import annotations

import ctypes
import json
import logging
import mmap
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scapy.arch.common import compile_filter
from scapy.arch.linux import L2ListenSocket
from scapy.data import DLT_EN10MB
from scapy.utils import RawPcapWriter

from ..in_netns import exec_prefix, inside
from ..lab.process import stop_group
from ..path import Plan
from .pull_at import pull_at

SNAPLEN = 128                 # Ethernet + IPv4 + TCP with options fit
_SO_ATTACH_FILTER = 26
_SOL_PACKET, _PACKET_STATISTICS = 263, 6
_BPF_RET_K = 0x06
_PACKET_RX_RING, _PACKET_VERSION, _TPACKET_V3 = 5, 10, 2
_TP_STATUS_KERNEL, _TP_STATUS_USER = 0, 1
_REQ3 = struct.Struct("7I")                    # struct tpacket_req3
_BLOCK_HDR = struct.Struct("III")              # tpacket_hdr_v1: block_status, num_pkts, offset_to_first_pkt
_STATUS = struct.Struct("I")
_PKT_HDR = struct.Struct("IIIIIIH")            # tpacket3_hdr: next, sec, nsec, snaplen, len, status, mac
_REC = struct.Struct("IIII")                   # pcap record header (native order, as the file header)


@dataclass(frozen=True)
class CapturePoint:
    """Where a hop's packets can be seen, and who sends the data there (for `ss`)."""
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


def headers_only_filter(expr: str, snaplen: int = SNAPLEN):
    """libpcap's BPF program for `expr`, every accepting `ret` cut to `snaplen` bytes."""
    prog = compile_filter(expr, linktype=DLT_EN10MB)
    for i in range(prog.bf_len):
        ins = prog.bf_insns[i]
        if ins.code == _BPF_RET_K and ins.k:
            ins.k = snaplen
    return prog


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _attach(sock: socket.socket, prog) -> None:
    fprog = _SockFprog(prog.bf_len, ctypes.addressof(prog.bf_insns.contents))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(memoryview(fprog)))


@dataclass
class CaptureStats:
    point: str
    pcap: str
    packets: int = 0
    kernel_drops: int = 0
    seconds: float = 0.0
    stopped_by: str = ""


class _Tap:
    """One headers-only capture point: scapy's AF_PACKET socket with a TPACKET_V3 ring, into a pcap.

    The kernel fills 1 MiB blocks of the ring with (cut) packets and hands a block over when it
    is full or 10 ms old; reading a block costs no syscall per packet, so the capture takes little
    CPU from the path it watches.
    """

    BLOCK, BLOCKS = 1 << 20, 32

    def __init__(self, ns: str | None, point: CapturePoint, pcap: str):
        self.stats = CaptureStats(point.name, pcap)
        prog = headers_only_filter(point.bpf)
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)  # it cannot guess a netns veth's type
        with inside(ns):  # the socket belongs to the namespace it is made in
            self.sock = L2ListenSocket(iface=point.iface, promisc=False, nofilter=True)
        s = self.sock.ins
        _attach(s, prog)
        s.setsockopt(_SOL_PACKET, _PACKET_VERSION, _TPACKET_V3)
        s.setsockopt(_SOL_PACKET, _PACKET_RX_RING, _REQ3.pack(self.BLOCK, self.BLOCKS, 2048,
                                                              self.BLOCK // 2048 * self.BLOCKS, 10, 0, 0))
        self.ring = mmap.mmap(s.fileno(), self.BLOCK * self.BLOCKS, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        self.block = 0
        self.writer = RawPcapWriter(pcap, linktype=DLT_EN10MB, snaplen=SNAPLEN, sync=False)
        self.writer.write_header(None)  # an empty capture is still a pcap
        self._out = bytearray()         # pcap records, written in batches

    def drain(self, budget: int) -> int:
        """Turn the blocks the kernel has handed over (up to ~`budget` packets) into pcap records."""
        n, ring, out = 0, self.ring, self._out
        while n < budget:
            base = self.block * self.BLOCK
            status, count, first = _BLOCK_HDR.unpack_from(ring, base + 8)
            if not status & _TP_STATUS_USER:
                break
            off = base + first
            for _ in range(count):
                nxt, sec, nsec, snap, wire, _, mac = _PKT_HDR.unpack_from(ring, off)
                out += _REC.pack(sec, nsec // 1000, snap, wire)
                out += ring[off + mac: off + mac + snap]
                off += nxt
            n += count
            _STATUS.pack_into(ring, base + 8, _TP_STATUS_KERNEL)   # the block back to the kernel
            self.block = (self.block + 1) % self.BLOCKS
        if len(out) > 1 << 20:
            self._flush()
        self.stats.packets += n
        return n

    def _flush(self) -> None:
        self.writer.f.write(self._out)
        self._out.clear()

    def close(self, seconds: float, why: str) -> CaptureStats:
        raw = self.sock.ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 12)   # tpacket_stats_v3
        self.stats.kernel_drops = struct.unpack("III", raw)[1]
        self.stats.seconds, self.stats.stopped_by = round(seconds, 3), why
        self._flush()
        self.writer.close()
        self.ring.close()
        self.sock.close()
        return self.stats


def _capture_main(spec: dict) -> None:
    """The capture process: every tap in one select loop until SIGTERM or a bound is reached.

    It runs at a lower CPU priority than the path it watches: on a busy machine the capture
    waits (the socket buffer holds 32 MB; what overflows is counted as kernel drops), not the pull.
    """
    os.nice(spec.get("nice", 10))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    taps = [_Tap(t["ns"], CapturePoint(**t["point"]), t["pcap"]) for t in spec["taps"]]
    print("ready", flush=True)
    t0, total, why = time.monotonic(), 0, "stopped"
    socks = {t.sock.ins: t for t in taps}
    while True:
        if total >= spec["max_packets"]:
            why = "max_packets"
            break
        if time.monotonic() - t0 > spec["max_seconds"]:
            why = "max_seconds"
            break
        ready = select.select(list(socks), [], [], 0.05)[0]
        if not ready and stop.is_set():
            why = "pull finished"
            break
        for s in ready:
            total += socks[s].drain(min(512, spec["max_packets"] - total))
    print(json.dumps([asdict(t.close(time.monotonic() - t0, why)) for t in taps]), flush=True)


class CaptureProcess:
    """Headers-only captures at several points, in a child process (apart from the pull's GIL)."""

    def __init__(self, taps: list[tuple[str | None, CapturePoint, Path]], max_packets: int = 200_000,
                 max_seconds: float = 60.0):
        if not 1 <= max_packets <= 5_000_000 or not 0 < max_seconds <= 600:
            raise ValueError("capture bounds: max_packets 1..5,000,000 and max_seconds up to 600")
        spec = {"max_packets": max_packets, "max_seconds": max_seconds,
                "taps": [{"ns": ns, "point": asdict(pt), "pcap": str(pcap)} for ns, pt, pcap in taps]}
        self.proc = subprocess.Popen([sys.executable, "-m", __name__, json.dumps(spec)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = select.select([self.proc.stdout], [], [], 20)[0]
        line = self.proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
            raise RuntimeError(f"capture did not start: {line} {err.strip()[-500:]}")

    def stop(self) -> list[CaptureStats]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        try:
            return [CaptureStats(**d) for d in json.loads(out.strip().splitlines()[-1])]
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"capture ended without its stats: {err.strip()[-500:]}") from None


# --- the kernel's view: ss -ti ------------------------------------------------
_SS_FIELDS = {
    "cwnd": r"\bcwnd:(\d+)", "ssthresh": r"\bssthresh:(\d+)", "mss": r"\bmss:(\d+)",
    "rtt_ms": r"\brtt:([\d.]+)/", "rttvar_ms": r"\brtt:[\d.]+/([\d.]+)",
    "delivery_rate_bps": r"\bdelivery_rate (\d+)bps", "pacing_rate_bps": r"\bpacing_rate (\d+)bps",
    "bytes_acked": r"\bbytes_acked:(\d+)", "unacked": r"\bunacked:(\d+)", "retrans_total": r"\bretrans:\d+/(\d+)",
    "snd_wnd": r"\bsnd_wnd:(\d+)", "rcv_space": r"\brcv_space:(\d+)", "notsent": r"\bnotsent:(\d+)",
    "busy_ms": r"\bbusy:(\d+)ms", "rwnd_limited_ms": r"\brwnd_limited:(\d+)ms",
    "sndbuf_limited_ms": r"\bsndbuf_limited:(\d+)ms", "rwnd_limited_pct": r"\brwnd_limited:\d+ms\(([\d.]+)%\)",
    "sndbuf_limited_pct": r"\bsndbuf_limited:\d+ms\(([\d.]+)%\)", "skmem_sndbuf": r"\bskmem:\([^)]*\btb(\d+)",
    "skmem_wqueue": r"\bskmem:\([^)]*\bt(\d+),",
}
_SS_RE = {k: re.compile(v) for k, v in _SS_FIELDS.items()}


def parse_ss(text: str) -> list[dict]:
    """`ss -tinH` output: one dict per connection (address line + its info line)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    conns = []
    for head, info in zip(lines[0::2], lines[1::2]):
        parts = head.split()
        row = {"local": parts[-2], "peer": parts[-1], "app_limited": "app_limited" in info}
        for key, rx in _SS_RE.items():
            if m := rx.search(info):
                row[key] = float(m.group(1))
        conns.append(row)
    return conns


class SsSampler:
    """`ss -ti` of the sender's connections from `port`, every `interval` s.

    One shell loop runs inside the namespace for the whole pull (entering a namespace per
    sample costs more CPU than the sample itself); a thread reads its output.
    """

    MARK = "@@sample"

    def __init__(self, ns: str | None, port: int, interval: float = 0.1, max_samples: int = 3000):
        if not 0.01 <= interval <= 10:
            raise ValueError(f"ss interval {interval}s is outside 0.01..10 s")
        self.max_samples = max_samples
        self.samples: list[dict] = []
        loop = (f"while :; do ss -tinH state established '( sport = :{port} )'; "
                f"echo {self.MARK}; sleep {interval}; done")
        self.proc = subprocess.Popen([*exec_prefix(ns), "sh", "-c", loop], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self._t0 = time.monotonic()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"ss-{port}", daemon=True)

    def _read(self) -> None:
        block: list[str] = []
        for line in self.proc.stdout:
            if line.strip() != self.MARK:
                block.append(line)
                continue
            t = round(time.monotonic() - self._t0, 3)
            self.samples += [{"t": t, **c} for c in parse_ss("".join(block))]
            self._first.set()
            block = []
            if len(self.samples) >= self.max_samples:
                break

    def start(self) -> "SsSampler":
        """Start sampling; returns once the loop runs in its namespace (its first sample is in)."""
        self._thread.start()
        self._first.wait(5)
        return self

    def stop(self) -> list[dict]:
        stop_group(self.proc.pid, grace=2)
        self._thread.join(timeout=5)
        self.proc.stdout.close()
        return self.samples


@dataclass
class Capture:
    vantage: str
    pull: dict
    stats: list[CaptureStats]
    ss: dict[str, list[dict]] = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)

    def save_meta(self, path: Path) -> Path:
        path.write_text(json.dumps({"vantage": self.vantage, "pull": self.pull, "cpu": self.cpu,
                                    "stats": [asdict(s) for s in self.stats], "ss": self.ss}, indent=1))
        return path


def capture_pull(lab, vantage: str | None = None, points: list[str] | None = None,
                 max_packets: int = 200_000, max_seconds: float = 60.0, verify: str = "sha256",
                 out_dir: Path | None = None, ss_interval: float | None = 0.1) -> Capture:
    """One pull from `vantage` (default: the client's), captured at every connection it crosses (or at `points`).

    The sender's `ss -ti` is sampled every `ss_interval` s (None: not sampled).
    """
    v = lab.plan.path.vantage(vantage) if vantage else lab.plan.path.client_vantage
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
    capture = CaptureProcess(taps, max_packets, max_seconds)
    samplers = {}
    try:
        for n in names if ss_interval else []:
            pt = all_points[n]
            samplers[n] = SsSampler(lab.plan.ns(pt.sender), pt.sender_port, ss_interval).start()
        run = pull_at(lab, v.name, 1, verify=verify, deadline=max_seconds)
    finally:
        ss = {n: s.stop() for n, s in samplers.items()}   # first: nothing below may leave them running
        stats = capture.stop()
    cap = Capture(v.name, run.results[0].row(), stats, ss, run.cpu)
    cap.save_meta(out_dir / f"{stem}.json")
    return cap


if __name__ == "__main__":
    _capture_main(json.loads(sys.argv[1]))
