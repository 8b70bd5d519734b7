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
        why = ("it advertised a zero window: its application stopped reading" if f.zero_windows
               else "its receive buffer is too small for this path")
        return FlowVerdict("receiver-window limited",
                           f"tune the receiver {f.receiver}: {why} (receive buffer tcp_rmem, or what it "
                           "does with the data: buffering, temp files, the next hop)", ev)
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
