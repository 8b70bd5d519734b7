"""What limits one flow, from its packets and, when sampled, the sender kernel's own account (pure).

  receiver-window limited  the receiver's window is what stops the sender: zero windows, or
                           in flight at the window for much of the time (kernel: rwnd_limited)
  sender-buffer limited    the sender's socket buffer is full (kernel: sndbuf_limited)
  network/link limited     losses, or the link's rate reached
  application-limited      the window is open but little is in flight: the sender had nothing
                           to send, its own source (the app, the upstream hop) is slow
"""
from __future__ import annotations

from dataclasses import dataclass

from .tcpflow import FlowDirection

SHARE = 0.25         # a share of the time that counts as "much of the time"
LOSS = 0.01          # retransmitted share of segments that counts as lossy
MIN_ROUNDS = 20      # round trips a transfer must last before its windows say anything about buffer sizes
WINDOW_ROOM = 2.0    # a window that allows this many times the rate got, at the measured round trip, did not bind


@dataclass
class FlowVerdict:
    kind: str
    tune: str
    evidence: list[str]

    def __str__(self) -> str:
        return "\n".join([f"{self.kind}: {self.tune}", *[f"  - {e}" for e in self.evidence]])


def _last(samples: list[dict], key: str) -> float | None:
    vals = [s[key] for s in samples if key in s]
    return vals[-1] if vals else None


def too_short(f: FlowDirection) -> str:
    """Why this capture cannot show whether a buffer is too small ('' when it can): a transfer shorter
    than MIN_ROUNDS round trips, or still in slow start (bytes in flight still growing at the end)."""
    if not f.rtt_ms_median:
        return "no round trip was measured"
    rounds = f.seconds / (f.rtt_ms_median / 1000)
    if rounds < MIN_ROUNDS:
        return f"the transfer lasted {rounds:.0f} round trips, fewer than {MIN_ROUNDS}"
    s = f.series
    if len(s) >= 4 and "in_flight" in s and s.in_flight.max() > 0:
        reached = s.t[s.in_flight >= 0.8 * s.in_flight.max()].min()
        start, end = s.t.min(), s.t.max()
        if end > start and (reached - start) / (end - start) > 0.75:
            return "it was still in slow start: bytes in flight were still growing when it ended"
    return ""


def window_room(f: FlowDirection) -> float | None:
    """How many times the rate got the median window allowed at the median round trip (None: not measured)."""
    if not (f.median_window and f.rtt_ms_median and f.MBps):
        return None
    return f.median_window / (f.rtt_ms_median / 1000) / (f.MBps * 1e6)


def flow_verdict(f: FlowDirection, sender: list[dict] | None = None, link_MBps: float | None = None) -> FlowVerdict:
    sender = sender or []
    ev = [f"{f.sender} → {f.receiver}: {f.bytes / 1e6:.1f} MB in {f.seconds:.2f} s ({f.MBps:.0f} MB/s)"]
    if not f.packets:
        return FlowVerdict("no data", "nothing was sent in this direction", ev)
    s = f.series.dropna(subset=["window"])
    mss = f.mss or 1448
    at_window = float(((s.in_flight >= s.window - mss) & (s.in_flight > 0)).mean()) if len(s) else 0.0
    sending = s[s.in_flight > 0]
    open_window = float((sending.in_flight < 0.5 * sending.window).mean()) if len(sending) else 0.0
    if not f.handshake_seen:
        ev.append("the handshake was not captured: the window scale is unknown, so windows in bytes "
                  "and window-full events are not available (start the capture before the pull)")
    else:
        ev.append(f"receive window: median {f.median_window or 0:,} B, in flight: median "
                  f"{f.median_in_flight or 0:,} B; at the window {100 * at_window:.0f}% of the time")
    if f.rtt_ms_median is not None:
        ev.append(f"RTT at the capture point: min {f.rtt_ms_min} ms, median {f.rtt_ms_median} ms")
    rwnd_pct, sndbuf_pct = _last(sender, "rwnd_limited_pct"), _last(sender, "sndbuf_limited_pct")
    app_share = sum(x.get("app_limited", False) for x in sender) / len(sender) if sender else None
    if sender:
        ev.append(f"sender kernel (tcp_info, {len(sender)} samples): rwnd_limited {rwnd_pct or 0:.0f}%, "
                  f"sndbuf_limited {sndbuf_pct or 0:.0f}% of busy time, app_limited in "
                  f"{100 * (app_share or 0):.0f}% of samples")
    loss = f.retransmissions / f.packets
    if f.zero_windows or f.retransmissions or f.window_full:
        ev.append(f"events: {f.zero_windows} zero windows, {f.window_full} window full, "
                  f"{f.retransmissions} retransmissions, {f.duplicate_acks} duplicate ACKs")

    if (rwnd_pct or 0) >= 100 * SHARE or at_window >= SHARE or f.zero_windows >= max(3, 0.01 * f.packets):
        if f.zero_windows:
            return FlowVerdict("receiver-window limited",
                               f"tune the receiver {f.receiver}: it advertised a zero window, its application stopped "
                               "reading: look at what it does with the data, buffering, temp files, the next hop", ev)
        if short := too_short(f):
            return FlowVerdict("receiver-window limited",
                               f"this capture cannot tell whether {f.receiver}'s receive buffer is too small: {short}; "
                               "capture a longer transfer, a larger image, before tuning tcp_rmem", ev)
        room = window_room(f)
        if room is not None and room >= WINDOW_ROOM:
            ev.append(f"the median window allowed {room:.1f} times the rate got at the median round trip")
            return FlowVerdict("receiver-window limited",
                               f"tune what the receiver {f.receiver} does with the data: its window would carry "
                               f"{room:.1f} times this rate, so the buffer is not too small, the receiver drains it "
                               "slowly: buffering, temp files, the next hop", ev)
        return FlowVerdict("receiver-window limited",
                           f"tune the receiver {f.receiver}: its receive buffer is too small for this path, "
                           "tcp_rmem's maximum", ev)
    if (sndbuf_pct or 0) >= 100 * SHARE:
        return FlowVerdict("sender-buffer limited",
                           f"tune the sender {f.sender}: its socket send buffer fills (tcp_wmem, SO_SNDBUF)", ev)
    if loss >= LOSS or (link_MBps and f.MBps >= 0.8 * link_MBps):
        what = f"{100 * loss:.1f}% of segments resent" if loss >= LOSS else f"the link's {link_MBps:.0f} MB/s reached"
        return FlowVerdict("network/link limited", f"the path between them: {what}", ev)
    if open_window >= 0.5 or (app_share or 0) >= 0.5:
        return FlowVerdict("application-limited",
                           f"tune the sender's source: {f.sender} had nothing to send while the window was "
                           f"open ({100 * open_window:.0f}% of the time under half the window), so the "
                           "data reaches it slowly (its application, or the hop before it)", ev)
    return FlowVerdict("network/link limited",
                       "the sender's congestion window bounds it (in flight below the receive window, "
                       "nothing else limiting)", ev)
