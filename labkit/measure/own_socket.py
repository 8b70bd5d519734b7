"""The client's own socket during a pull: getsockopt(TCP_INFO) and the unread receive queue, sampled.

On the receiving end of a download the kernel says how the data arrived (bytes received, the
receiver's RTT estimate, out-of-order packets: holes the network left), how big the receive
space grew, and, through SIOCINQ, how much data waited for the program when it came back to
read. The sender-side counters on this socket (delivery rate, cwnd, busy / rwnd- / sndbuf-limited
time) describe the client's own sending, i.e. its requests and ACKs: they are kept, but the
download's sender is the server, whose socket the client cannot see.

`SocketWatch` is called by the pull before each read of the image (labkit.clients.puller.pull_image):
one ioctl per read, a full TCP_INFO sample at most every `interval` seconds, all in the
pulling thread (no extra thread, no GIL contention). Sampling never breaks a pull: where the socket
is gone (None, closed) or a counter cannot be read, that sample is skipped and `missing` says which
evidence is missing and why (the summary carries it to the report).
"""
from __future__ import annotations

import fcntl
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field

SIOCINQ = 0x541B                  # = FIONREAD: bytes in the receive queue not yet read
LAYOUT = [                       # linux/tcp.h struct tcp_info, in order (bitfields read as bytes)
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"), ("app_limited_bits", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"), ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"),
    ("bytes_received", "Q"), ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"), ("delivery_rate", "Q"), ("busy_time", "Q"),
    ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"), ("delivered", "I"), ("delivered_ce", "I"),
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),
    ("rcv_ooopack", "I"), ("snd_wnd", "I"), ("rcv_wnd", "I"),
]
KEEP = ("bytes_received", "data_segs_in", "rcv_mss", "rcv_space", "rcv_wnd", "rcv_ssthresh", "rcv_rtt",
        "rtt", "min_rtt", "rcv_ooopack", "total_retrans", "snd_cwnd", "delivery_rate", "busy_time",
        "rwnd_limited", "sndbuf_limited")


def parse_tcp_info(raw: bytes) -> dict[str, int]:
    """The fields of struct tcp_info the kernel filled (older kernels fill fewer)."""
    out, off = {}, 0
    for name, code in LAYOUT:
        size = struct.calcsize(code)
        if off + size > len(raw):
            break
        out[name] = struct.unpack_from("=" + code, raw, off)[0]
        off += size
    return out


def tcp_info(sock: socket.socket) -> dict[str, int]:
    return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256))


def unread(sock: socket.socket) -> int:
    """Bytes the kernel holds for this socket that the program has not read yet."""
    buf = fcntl.ioctl(sock.fileno(), SIOCINQ, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


@dataclass
class SocketWatch:
    """Samples one pull's socket from the pulling thread; `summary()` is what the verdict reads."""
    read_size: int
    interval: float = 0.02
    max_samples: int = 5000
    samples: list[dict] = field(default_factory=list)
    reads: int = 0
    backlogged: int = 0           # reads that found at least a whole read's worth (or half the buffer) waiting
    cpu_s: float = 0.0
    _t0: float = 0.0
    _cpu0: float = 0.0
    _last: float = -1.0
    _rcvbuf: int = 0
    _first: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)      # evidence -> why it is missing (how many samples)
    queue_reads: int = 0          # reads whose receive queue could be read (what `backlogged` counts among)

    def __call__(self, sock: socket.socket | None) -> None:
        now = time.perf_counter()
        if not self.reads:
            self._t0, self._cpu0 = now, time.thread_time()
            self._first = self._read("tcp_info", tcp_info, sock) or {}
        self.reads += 1
        queued = self._read("the receive queue (SIOCINQ)", unread, sock)
        if now - self._last >= self.interval and len(self.samples) < self.max_samples:
            self._last = now
            self._sample(sock, now, queued)
        # SO_RCVBUF counts the kernel's overhead too: a quarter of it is about half the usable window
        if queued is not None:
            self.queue_reads += 1
            if queued >= min(self.read_size, self._rcvbuf // 4 or self.read_size):
                self.backlogged += 1

    def _read(self, what: str, reader, sock):
        """`reader(sock)`, or None with `what` noted as missing (no socket, or the kernel refused)."""
        if sock is None:
            why = "no socket to read"
        else:
            try:
                return reader(sock)
            except (OSError, ValueError, AttributeError) as exc:
                why = f"{type(exc).__name__}: {exc}"
        self.missing.setdefault(what, {"why": why, "samples": 0})["samples"] += 1
        return None

    def _sample(self, sock: socket.socket | None, now: float, queued: int | None) -> None:
        rcvbuf = self._read("SO_RCVBUF", lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), sock)
        info = self._read("tcp_info", tcp_info, sock)
        if info is None:
            return
        self._rcvbuf = rcvbuf or self._rcvbuf
        self.samples.append({"t": round(now - self._t0, 4), "unread": queued or 0, "rcvbuf": self._rcvbuf,
                             **{k: info[k] for k in KEEP if k in info}})

    def finish(self, sock: socket.socket | None) -> None:
        """The last sample, taken after the body is read (before the socket closes)."""
        if self.reads:
            self.cpu_s = time.thread_time() - self._cpu0
            self._sample(sock, time.perf_counter(), self._read("the receive queue (SIOCINQ)", unread, sock))

    def summary(self) -> dict:
        out = summarize(self.samples, self._first, self.queue_reads, self.backlogged, self.cpu_s)
        if self.missing:
            out["missing"] = missing_words(self.missing)
        return out


def missing_words(missing: dict) -> list[str]:
    """Which socket evidence a pull lacks, and why: one line per kind of evidence."""
    return [f"{what}: {m['samples']} sample(s) skipped ({m['why']})" for what, m in sorted(missing.items())]


def summarize(samples: list[dict], first: dict, reads: int, backlogged: int, cpu_s: float) -> dict:
    """Per pull: what arrived and how (the download's direction), and the client's own send counters.

    `samples` as SocketWatch takes them (tcp_info fields, "t", "unread", "rcvbuf"), `first` the
    tcp_info before the first read, `backlogged` how many of `reads` found a read's worth waiting.
    """
    if not samples:
        return {}
    s, last = samples, samples[-1]
    wall = last["t"] or 1e-9
    rtts = [x["rcv_rtt"] / 1e3 for x in s if x.get("rcv_rtt")]
    return {
        "reads": reads,
        "backlogged_reads": round(backlogged / reads, 3) if reads else 0.0,
        "client_cpu_pct": round(100 * cpu_s / wall, 1),
        "data_segs_in": last.get("data_segs_in", 0) - first.get("data_segs_in", 0),
        "ooo_packets": last.get("rcv_ooopack", 0) - first.get("rcv_ooopack", 0),
        "rcv_rtt_ms_median": round(statistics.median(rtts), 3) if rtts else None,
        "min_rtt_ms": round(last["min_rtt"] / 1e3, 3) if last.get("min_rtt") else None,
        "rcv_space_max": max(x.get("rcv_space", 0) for x in s),
        "rcvbuf_max": max(x["rcvbuf"] for x in s),
        "unread_max": max(x["unread"] for x in s),
        "client_retrans": last.get("total_retrans", 0) - first.get("total_retrans", 0),
        "client_cwnd": last.get("snd_cwnd"),
        "client_delivery_rate_MBps": round(last.get("delivery_rate", 0) / 1e6, 3),
        "client_busy_ms": round(last.get("busy_time", 0) / 1e3, 1),
        "client_rwnd_limited_ms": round(last.get("rwnd_limited", 0) / 1e3, 1),
        "client_sndbuf_limited_ms": round(last.get("sndbuf_limited", 0) / 1e3, 1),
    }
