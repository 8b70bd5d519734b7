"""TCP windows read out of a pcap, per flow and direction (pure: a file in, numbers out).

Streaming and bounded: the file is read in blocks; each flow keeps a handful of counters,
the in-flight segments awaiting an ACK (bounded by the window), one row per time bin and
at most MAX_EVENTS events. scapy's raw reader gives each packet's bytes; their headers are
then walked with `struct` (a full scapy dissection per packet is ~50x slower).

Per direction, with `d` the data sender and `r` the receiver:
  window     = r's advertised window << r's window scale (from the SYN/SYN-ACK)
  in flight  = highest sequence d has sent - highest ACK r has sent
  RTT        = time from a segment to the first ACK covering it (never for retransmitted data)
  events     = zero window (r advertises 0), window full (in flight >= window - MSS),
               retransmission, out of order (below the highest sequence, within 3 ms
               of it), duplicate ACK, reset
"""
from __future__ import annotations

import ipaddress
import statistics
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scapy.utils import RawPcapReader

MAX_EVENTS = 10_000
OOO_S = 0.003          # below the highest sequence within 3 ms of it: out of order, not resent
_MOD, _HALF = 1 << 32, 1 << 31
_ETH_IP_TCP = struct.Struct("!12xH")           # ethertype
_IP = struct.Struct("!BxH5xB2x4s4s")           # ver/ihl, total length, protocol, src, dst
_TCP = struct.Struct("!HHIIBBH")               # sport, dport, seq, ack, offset, flags, window
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def _unwrap(rel: int, ref: int) -> int:
    """The value congruent to `rel` mod 2^32 that lies closest to `ref` (sequence wrap-around)."""
    return rel + ((ref - rel + _HALF) // _MOD) * _MOD


def _tcp_options(opts: bytes) -> dict:
    out, i = {}, 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        ln = opts[i + 1]
        if kind == 2 and ln == 4:
            out["mss"] = struct.unpack_from("!H", opts, i + 2)[0]
        elif kind == 3 and ln == 3:
            out["wscale"] = min(opts[i + 2], 14)
        i += ln
    return out


@dataclass
class _Side:
    """What one endpoint sends: its data stream and its ACKs/windows for the other's stream."""
    addr: str
    isn: int | None = None
    syn: bool = False
    wscale: int | None = None
    mss: int | None = None
    hi_seq: int = 0            # highest relative sequence sent (end of data)
    hi_ack: int = 0            # highest ACK the peer has sent for this side's data
    data_pkts: int = 0
    retrans: int = 0
    out_of_order: int = 0
    hi_seq_t: float = 0.0      # when the highest sequence was sent
    zero_window: int = 0       # adverts of 0 sent by this side
    window_full: int = 0       # this side's segments that filled the peer's window
    dup_acks: int = 0
    resets: int = 0
    last_ack: int | None = None
    last_win: int | None = None
    window: int | None = None  # the peer's advertised window for this side's data, bytes
    pending: deque = field(default_factory=deque)   # (seq_end, t) awaiting ACK
    rtts: list = field(default_factory=list)
    first_t: float | None = None
    last_t: float = 0.0
    bins: dict = field(default_factory=dict)        # bin -> [acked, max_inflight, window, hi_seq, hi_ack]


@dataclass
class FlowDirection:
    """One direction of one TCP flow, as the reader sees it.

    `bytes` is the stream's length in sequence space (so packets the capture missed still
    count); `packets` the data segments actually captured.
    """
    flow: str
    sender: str
    receiver: str
    handshake_seen: bool
    window_scale: int | None
    mss: int | None
    bytes: int
    packets: int
    seconds: float
    MBps: float
    rtt_ms_min: float | None
    rtt_ms_median: float | None
    rtt_ms_p95: float | None
    retransmissions: int
    out_of_order: int
    zero_windows: int
    window_full: int
    duplicate_acks: int
    resets: int
    max_window: int | None
    median_window: int | None
    median_in_flight: int | None
    series: pd.DataFrame = field(repr=False)
    events: pd.DataFrame = field(repr=False)

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("series", "events")}


class _Flow:
    def __init__(self, a: str, b: str, bin_s: float):
        self.sides = (_Side(a), _Side(b))
        self.bin_s = bin_s
        self.events: list[tuple] = []
        self.dropped_events = 0

    def event(self, t: float, kind: str, side: _Side, detail: str = "") -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append((t, kind, side.addr, detail))
        else:
            self.dropped_events += 1


def _addr(raw: bytes, port: int) -> str:
    return f"{ipaddress.IPv4Address(raw)}:{port}"


class Analyzer:
    """Feed packets (time, Ethernet frame) in capture order; `result()` gives every flow direction."""

    def __init__(self, bin_s: float = 0.01):
        if not 0.0001 <= bin_s <= 10:
            raise ValueError(f"bin {bin_s}s is outside 0.1 ms .. 10 s")
        self.bin_s = bin_s
        self.flows: dict[tuple, _Flow] = {}
        self.t0: float | None = None
        self.packets = 0
        self.skipped = 0

    def feed(self, t: float, frame: bytes) -> None:
        self.packets += 1
        if len(frame) < 54 or _ETH_IP_TCP.unpack_from(frame)[0] != 0x0800:
            self.skipped += 1
            return
        vihl, tot_len, proto, src, dst = _IP.unpack_from(frame, 14)
        ihl = (vihl & 0x0F) * 4
        if proto != 6 or vihl >> 4 != 4:
            self.skipped += 1
            return
        th = 14 + ihl
        sport, dport, seq, ack, off, flags, win = _TCP.unpack_from(frame, th)
        doff = (off >> 4) * 4
        payload = tot_len - ihl - doff
        if self.t0 is None:
            self.t0 = t
        key = (src, sport, dst, dport)
        flow = self.flows.get(key)
        if flow is None:
            rkey = (dst, dport, src, sport)
            flow = self.flows.get(rkey)
            if flow is None:
                flow = self.flows[key] = _Flow(_addr(src, sport), _addr(dst, dport), self.bin_s)
                d, r = flow.sides
            else:
                r, d = flow.sides
        else:
            d, r = flow.sides
        d.last_t = t
        if d.first_t is None:
            d.first_t = t
        b = int((t - self.t0) / self.bin_s)

        if flags & RST:
            d.resets += 1
            flow.event(t, "reset", d)
            return
        if flags & SYN:
            opts = _tcp_options(frame[th + 20: th + doff])
            d.syn, d.isn = True, seq
            d.wscale, d.mss = opts.get("wscale"), opts.get("mss")
            d.hi_seq = 1
            return
        if d.isn is None:                     # handshake missed: start from what we see
            d.isn = (seq - 1) % _MOD
            d.hi_seq = 1
        if r.isn is None and flags & ACK:
            r.isn = (ack - 1) % _MOD
            r.hi_seq = 1

        if payload > 0:
            end = _unwrap((seq - d.isn) % _MOD, d.hi_seq) + payload
            d.data_pkts += 1
            if end <= d.hi_seq:
                if t - d.hi_seq_t < OOO_S:        # a reordering, as tshark tells them apart
                    d.out_of_order += 1
                    flow.event(t, "out of order", d, f"{payload} bytes")
                else:
                    d.retrans += 1
                    flow.event(t, "retransmission", d, f"{payload} bytes")
                    while d.pending and d.pending[0][0] <= end:   # Karn: no RTT from resent data
                        d.pending.popleft()
            else:
                d.hi_seq, d.hi_seq_t = end, t
                d.pending.append((end, t))
            inflight = d.hi_seq - d.hi_ack
            row = d.bins.get(b)
            if row is None:
                row = d.bins[b] = [0, 0, d.window, 0, d.hi_ack]
            row[1] = max(row[1], inflight)
            row[3] = d.hi_seq
            if d.window is not None and inflight >= d.window - (d.mss or r.mss or 1448):
                d.window_full += 1
                flow.event(t, "window full", d, f"{inflight} in flight, window {d.window}")

        if flags & ACK:
            scale = d.wscale if (d.syn and r.syn and d.wscale is not None and r.wscale is not None) else (
                0 if d.syn and r.syn else None)
            if scale is not None:
                r.window = win << scale
            if win == 0 and not flags & FIN:
                d.zero_window += 1
                flow.event(t, "zero window", d)
            a = _unwrap((ack - r.isn) % _MOD, r.hi_ack or 1)
            if a > r.hi_ack:
                acked = a - r.hi_ack if r.hi_ack else 0
                r.hi_ack = a
                last = None
                while r.pending and r.pending[0][0] <= a:
                    last = r.pending.popleft()
                if last is not None:
                    r.rtts.append(t - last[1])
                row = r.bins.get(b)
                if row is None:
                    row = r.bins[b] = [0, 0, r.window, r.hi_seq, a]
                row[0] += acked
                row[2] = r.window
                row[4] = a
            elif (payload == 0 and a == d.last_ack and win == d.last_win and r.hi_seq > a
                  and not flags & (SYN | FIN)):
                d.dup_acks += 1
                flow.event(t, "duplicate ack", d)
            d.last_ack, d.last_win = a, win

    def result(self) -> list[FlowDirection]:
        out = []
        for flow in self.flows.values():
            for d, r in (flow.sides, flow.sides[::-1]):
                if d.data_pkts == 0 and not d.resets:
                    continue
                out.append(_direction(flow, d, r, self.t0 or 0.0, self.bin_s))
        return sorted(out, key=lambda f: -f.bytes)


def _direction(flow: _Flow, d: _Side, r: _Side, t0: float, bin_s: float) -> FlowDirection:
    rows = sorted(d.bins.items())
    series = pd.DataFrame([{"t": round(k * bin_s, 6), "MBps": v[0] / bin_s / 1e6, "in_flight": v[1],
                            "window": v[2], "seq": v[3], "ack": v[4]} for k, v in rows],
                          columns=["t", "MBps", "in_flight", "window", "seq", "ack"])
    if len(series):
        series["window_edge"] = series["ack"] + series["window"]
    events = pd.DataFrame([e for e in flow.events if e[2] in (d.addr, r.addr)],
                          columns=["t", "kind", "by", "detail"])
    if len(events):
        events["t"] = (events["t"] - t0).round(6)
        # this direction's events: its own segments' and the receiver's window/ack events
        events = events[((events.by == d.addr) & events.kind.isin(["retransmission", "out of order", "window full", "reset"]))
                        | ((events.by == r.addr) & events.kind.isin(["zero window", "duplicate ack", "reset"]))]
    secs = (d.last_t - d.first_t) if d.first_t is not None else 0.0
    rtts = sorted(x * 1e3 for x in d.rtts)
    windows = series["window"].dropna() if len(series) else pd.Series(dtype=float)
    inflight = series["in_flight"][series["in_flight"] > 0] if len(series) else pd.Series(dtype=float)
    known = d.syn and r.syn
    return FlowDirection(
        flow=f"{flow.sides[0].addr} ↔ {flow.sides[1].addr}", sender=d.addr, receiver=r.addr,
        handshake_seen=known, window_scale=r.wscale if known else None, mss=r.mss or d.mss,
        bytes=d.hi_seq - 1, packets=d.data_pkts, seconds=round(secs, 6),
        MBps=round((d.hi_seq - 1) / secs / 1e6, 2) if secs > 0 else 0.0,
        rtt_ms_min=round(rtts[0], 3) if rtts else None,
        rtt_ms_median=round(statistics.median(rtts), 3) if rtts else None,
        rtt_ms_p95=round(rtts[int(0.95 * (len(rtts) - 1))], 3) if rtts else None,
        retransmissions=d.retrans, out_of_order=d.out_of_order, zero_windows=r.zero_window, window_full=d.window_full,
        duplicate_acks=r.dup_acks, resets=d.resets + r.resets,
        max_window=int(windows.max()) if len(windows) else None,
        median_window=int(windows.median()) if len(windows) else None,
        median_in_flight=int(inflight.median()) if len(inflight) else None,
        series=series, events=events.reset_index(drop=True))


def packets(path: Path):
    """(time, frame) for each packet of a pcap, read with scapy's raw reader (no dissection)."""
    with RawPcapReader(str(path)) as reader:
        if reader.linktype != 1:
            raise ValueError(f"{path}: link type {reader.linktype}, only Ethernet captures are read")
        scale = 1e-9 if reader.nano else 1e-6
        for frame, meta in reader:
            yield meta.sec + meta.usec * scale, frame


def analyze(path: Path, bin_s: float = 0.01) -> list[FlowDirection]:
    an = Analyzer(bin_s)
    feed = an.feed
    for t, frame in packets(path):
        feed(t, frame)
    return an.result()
