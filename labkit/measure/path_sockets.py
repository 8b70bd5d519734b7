"""Every TCP connection of the path, both ends, while a pull runs: a netlink sock_diag dump per namespace.

    with TcpInfoSampler(lab.plan, lab.settings) as s:
        ...pull...
    s.summary()      # per declared connection: the sender's busy / rwnd- / sndbuf-limited time, delivery rate,
                     # cwnd, retransmits, and the receiver's buffer and unread bytes

One NETLINK_SOCK_DIAG socket is opened inside each namespace of the path (a socket stays in the
namespace it was made in), then one thread asks every socket for the kernel's `struct tcp_info`
and socket memory (the same numbers `ss -tim` prints) every `interval` seconds. pyroute2 encodes the
request and decodes the replies (inet_diag_msg, tcp_info); only the socket memory, which pyroute2
hands over as hex, is unpacked here. A round over a pull's four namespaces (5 parallel pulls) took
~8.5 ms of CPU on 2 busy cores (5.9 ms with the earlier hand-written decoder; pull rates unchanged
within their spread), so sampling aims at every 20 ms and sees even a pull of 70 ms several times. The busy, rwnd_limited and sndbuf_limited times are the
kernel's own counters (tcp_chrono), summed since the connection began, so the last sample of each
connection holds its totals. (labkit.measure.own_socket watches the client's own socket from inside the
pull; this module sees the servers' sockets too, which the client cannot.)
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from pyroute2.netlink import NETLINK_SOCK_DIAG, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import SOCK_DIAG_BY_FAMILY, MarshalDiag, inet_diag_req

from ..in_netns import inside
from ..path import publish_route
from ..units import KiB

# every state a data-carrying connection can be in: ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING
_STATES = sum(1 << s for s in (1, 4, 5, 8, 9, 11))
_INET_DIAG_INFO, _INET_DIAG_SKMEMINFO = 2, 7          # linux/inet_diag.h: the extensions asked for
_EXTENSIONS = (1 << (_INET_DIAG_INFO - 1)) | (1 << (_INET_DIAG_SKMEMINFO - 1))
MIN_BYTES = 256 * KiB     # a connection that carried less is a manifest request, not an image
_SKMEM = struct.Struct("=9I")                      # rmem_alloc, rcvbuf, wmem_alloc, sndbuf, fwd_alloc, wmem_queued, ...


@dataclass(frozen=True)
class Endpoint:
    """Where one side of a declared connection is found: its namespace, and the port on that side."""
    connection: str
    side: str                 # "sender" (local port = the server port) or "receiver" (peer port = it)
    ns: str | None
    port: int
    peer_ip: str | None = None


def endpoints(plan, settings) -> list[Endpoint]:
    """Both sides of every connection of the declared path, as `plan` places it and `settings` publish it.

    Where Docker's DNAT carries a compute node's pull (`"iptables": true`, the default) no process
    stands between: the sender of a connection made to a published port is the container's own
    socket (the address the client dials stays the host's).
    """
    path, out = plan.path, []
    dnat = settings is not None and plan.namespaced and \
        publish_route(path.client_vantage.arrives, settings.publish) == "dnat"
    for c in path.connections:
        node, port = c.sender, c.port
        for pub in path.published:
            if dnat and pub.node == c.sender and pub.host_port == c.port:
                node, port = pub.container, pub.container_port
        out.append(Endpoint(c.name, "sender", plan.ns(node), plan.port(port)))
        for n in path.nodes:   # the receiver dialled the declared sender's address
            out.append(Endpoint(c.name, "receiver", plan.ns(n.name), plan.port(c.port), plan.ip(c.sender)))
    return out


def _row(msg) -> dict:
    """One socket of a sock_diag dump (pyroute2's inet_diag_msg) as the fields the sampler reads."""
    row = {"sport": msg["idiag_sport"], "dport": msg["idiag_dport"], "src": msg["idiag_src"],
           "dst": msg["idiag_dst"], "cookie": msg["idiag_cookie"], "state": msg["idiag_state"],
           "rqueue": msg["idiag_rqueue"], "wqueue": msg["idiag_wqueue"]}
    info = msg.get_attr("INET_DIAG_INFO")
    if info is not None:
        row.update(diag_tcp_info(info))
    mem = msg.get_attr("INET_DIAG_SKMEMINFO")
    if mem:
        row.update(skmem(mem))
    return row


# the struct tcp_info fields this module reads (pyroute2's names, tcpi_ dropped), by the names it gives them
_NAMES = {"rtt": "rtt_us", "snd_cwnd": "cwnd", "total_retrans": "total_retrans", "bytes_acked": "bytes_acked",
          "bytes_received": "bytes_received", "delivery_rate": "delivery_rate", "busy_time": "busy_us",
          "rwnd_limited": "rwnd_limited_us", "sndbuf_limited": "sndbuf_limited_us", "snd_wnd": "snd_wnd",
          "notsent_bytes": "notsent_bytes", "rcv_space": "rcv_space", "unacked": "unacked"}


def diag_tcp_info(info) -> dict:
    """The INET_DIAG_INFO attribute (a struct tcp_info, as pyroute2 decodes it) as the fields the verdict reads."""
    fields = dict(info)           # its plain values (pyroute2's own get() also searches attributes: slow)
    out = {mine: fields[f"tcpi_{theirs}"] for theirs, mine in _NAMES.items() if f"tcpi_{theirs}" in fields}
    if "tcpi_delivery_rate_app_limited" in fields:     # the first bit of that byte
        out["app_limited"] = bool(fields["tcpi_delivery_rate_app_limited"] & 1)
    return out


def skmem(text: str) -> dict:
    """INET_DIAG_SKMEMINFO (linux/sock_diag.h: nine u32, SK_MEMINFO_*): pyroute2 hands it over as hex
    bytes only, so the four values the sampler reads are unpacked here."""
    raw = bytes.fromhex(text.replace(":", ""))
    if len(raw) < _SKMEM.size:
        return {}
    mem = _SKMEM.unpack_from(raw)
    return {"rmem_alloc": mem[0], "rcvbuf": mem[1], "sndbuf": mem[3], "wmem_queued": mem[5]}


def parse_reply(marshal: MarshalDiag, data: bytes) -> tuple[list[dict], bool]:
    """The sockets in one buffer of a dump's reply, and whether the dump is complete."""
    rows = []
    for msg in marshal.parse(data):
        kind = msg["header"]["type"]
        if kind == NLMSG_DONE:
            return rows, True
        if kind == NLMSG_ERROR:     # MarshalDiag keys messages by family: an error arrives undecoded
            code = struct.unpack_from("=i", msg.data, msg.offset + 16)[0]
            raise OSError(-code, f"sock_diag: {os.strerror(-code)}")
        rows.append(_row(msg))
    return rows, False


def _request() -> bytes:
    """The dump request: every IPv4 TCP socket in _STATES, with its tcp_info and socket memory."""
    req = inet_diag_req()
    req["header"].update(type=SOCK_DIAG_BY_FAMILY, flags=NLM_F_REQUEST | NLM_F_DUMP, sequence_number=1)
    req.update(sdiag_family=socket.AF_INET, sdiag_protocol=socket.IPPROTO_TCP, idiag_states=_STATES,
               idiag_ext=_EXTENSIONS)
    req.encode()
    return bytes(req.data)


class DiagSocket:
    """A sock_diag socket made inside namespace `ns`: `dump()` lists its IPv4 TCP connections.

    The request and the replies are pyroute2's codec (inet_diag_req, MarshalDiag); the socket is a
    plain one made here: a socket stays in the namespace it was made in whichever thread uses it,
    while pyroute2's DiagSocket makes a transport per thread (in that thread's namespace) and costs
    an asyncio round per request."""

    def __init__(self, ns: str | None):
        with inside(ns):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self.sock.settimeout(2)
        self.marshal = MarshalDiag()
        self._req = _request()

    def dump(self) -> list[dict]:
        self.sock.send(self._req)
        rows = []
        while True:
            more, done = parse_reply(self.marshal, self.sock.recv(1 << 16))
            rows += more
            if done:
                return rows

    def close(self) -> None:
        self.sock.close()


_TIMELINE = ("busy_us", "rwnd_limited_us", "sndbuf_limited_us", "app_limited", "cwnd", "delivery_rate",
             "snd_wnd", "bytes_acked", "total_retrans")


@dataclass
class _Track:
    """One socket seen on one side of a declared connection: its first and last sample, and a few series."""
    connection: str
    side: str
    first_t: float
    last_t: float = 0.0
    last: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    samples: int = 0
    timeline: list = field(default_factory=list)     # the sender's limits sample by sample (see sender_samples)

    def add(self, t: float, row: dict) -> None:
        self.last_t, self.last = t, row
        self.samples += 1
        for key in ("delivery_rate", "cwnd", "snd_wnd", "rqueue", "rmem_alloc", "rcvbuf", "app_limited"):
            if key in row and len(self.series.setdefault(key, [])) < 5000:
                self.series[key].append(row[key])
        if self.side == "sender" and len(self.timeline) < 5000:
            self.timeline.append({"t": round(t, 3), **{k: row[k] for k in _TIMELINE if k in row}})


class TcpInfoSampler:
    """tcp_info of both sides of every declared connection, sampled every `interval` s while in use."""

    def __init__(self, plan, settings=None, interval: float = 0.02):
        if not 0.005 <= interval <= 5:
            raise ValueError(f"tcp_info interval {interval}s is outside 0.005..5 s")
        self.interval = interval
        self.ends = endpoints(plan, settings)
        self._socks = {ns: DiagSocket(ns) for ns in dict.fromkeys(e.ns for e in self.ends)}
        self._tracks: dict[tuple[str, str, str], _Track] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-info", daemon=True)
        self._t0 = 0.0
        self.errors: list[str] = []

    def __enter__(self) -> "TcpInfoSampler":
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self._socks.values():
            s.close()

    def _run(self) -> None:
        while True:
            stopped = self._stop.wait(self.interval)
            self._sample()          # one more after the stop: the last counters of each connection
            if stopped:
                return

    def _sample(self) -> None:
        t = time.monotonic() - self._t0
        for ns, ds in self._socks.items():
            try:
                rows = ds.dump()
            except OSError as exc:
                if len(self.errors) < 5:
                    self.errors.append(f"{ns or 'host'}: {exc}")
                continue
            for e in self.ends:
                if e.ns != ns:
                    continue
                for r in rows:
                    if match(e, r):
                        key = (e.connection, e.side, f"{ns}:{r['cookie']}")
                        self._tracks.setdefault(key, _Track(e.connection, e.side, t)).add(t, r)

    def tracks(self) -> list[_Track]:
        return list(self._tracks.values())

    def summary(self) -> list[dict]:
        """One row per declared connection and side seen: see `summarize`."""
        return summarize(self.tracks(), self.interval)

    def sender_samples(self, connection: str) -> list[dict]:
        """The sender's side of `connection` sample by sample (its sockets that carried an image), in
        time order: the kernel's counters and, as `ss -ti` shows them, the receive-window- and
        send-buffer-limited shares of the busy time so far (rwnd_limited_pct, sndbuf_limited_pct)."""
        out = []
        for tr in self.tracks():
            if tr.connection == connection and tr.side == "sender" and tr.last.get("bytes_acked", 0) >= MIN_BYTES:
                out += [{**x, **limited_pct(x)} for x in tr.timeline]
        return sorted(out, key=lambda x: x["t"])


def limited_pct(x: dict) -> dict:
    """A sample's rwnd- and sndbuf-limited time as shares of its busy time, in % (tcp_chrono counters)."""
    busy = x.get("busy_us") or 0
    return {k.replace("_us", "_pct"): round(100 * x.get(k, 0) / busy, 1) if busy else 0.0
            for k in ("rwnd_limited_us", "sndbuf_limited_us")}


def match(e: Endpoint, row: dict) -> bool:
    if e.side == "sender":
        return row["sport"] == e.port
    return row["dport"] == e.port and (e.peer_ip is None or row["dst"] == e.peer_ip)


def _median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def summarize(tracks: list[_Track], interval: float) -> list[dict]:
    """Per connection and side, over its sockets (one per parallel pull):

    sender: sockets, span_ms (how long they were seen), busy_pct / rwnd_pct / sndbuf_pct (the kernel's
    tcp_chrono counters over the span), app_pct (the rest: nothing to send, waiting on the application),
    net_pct (busy neither window- nor buffer-limited: the congestion window or the link's queue),
    delivery_MBps (median of the kernel's delivery-rate estimate, summed over sockets), cwnd (median),
    retrans (segments resent), snd_wnd_min (the smallest window the receiver advertised), app_limited_pct
    (samples whose rate estimate the kernel marked application-limited), bytes.
    receiver: sockets, rcvbuf (largest receive buffer), rqueue_max (unread bytes), fill_pct (median of the
    buffer's use: near 100 the application does not read), bytes.
    """
    groups: dict[tuple[str, str], list[_Track]] = {}
    for tr in tracks:
        if max(tr.last.get("bytes_acked", 0), tr.last.get("bytes_received", 0)) < MIN_BYTES:
            continue             # a manifest request, not the image
        groups.setdefault((tr.connection, tr.side), []).append(tr)
    out = []
    for (conn, side), trs in groups.items():
        row = {"connection": conn, "side": side, "sockets": len(trs), "samples": sum(t.samples for t in trs)}
        if side == "sender":
            row.update(_sender(trs, interval))
        else:
            row.update(_receiver(trs))
        out.append(row)
    return out


def _sender(trs: list[_Track], interval: float) -> dict:
    busy = rwnd = sndbuf = span = 0.0
    rates, cwnds, wnds, app, sent, retrans = [], [], [], [], 0, 0
    for t in trs:
        last = t.last
        s_ms = max((t.last_t - t.first_t + interval) * 1e3, last.get("busy_us", 0) / 1e3)
        span += s_ms
        busy += last.get("busy_us", 0) / 1e3
        rwnd += last.get("rwnd_limited_us", 0) / 1e3
        sndbuf += last.get("sndbuf_limited_us", 0) / 1e3
        rates.append(_median([r for r in t.series.get("delivery_rate", []) if r]) or 0)
        cwnds += t.series.get("cwnd", [])
        wnds += t.series.get("snd_wnd", [])
        app += t.series.get("app_limited", [])
        sent += last.get("bytes_acked", 0)          # each pull's connection is its own: lifetime totals
        retrans += last.get("total_retrans", 0)
    pct = (lambda x: round(100 * min(x, span) / span, 1)) if span else (lambda x: None)
    return {"span_ms": round(span / len(trs), 1), "busy_pct": pct(busy), "rwnd_pct": pct(rwnd),
            "sndbuf_pct": pct(sndbuf), "app_pct": pct(span - busy) if span else None,
            "net_pct": pct(max(0.0, busy - rwnd - sndbuf)),
            "delivery_MBps": round(sum(rates) / 1e6, 1), "cwnd": _median(cwnds),
            "retrans": retrans, "snd_wnd_min": min(wnds) if wnds else None,
            "app_limited_pct": round(100 * sum(app) / len(app), 1) if app else None, "bytes": sent}


def _receiver(trs: list[_Track]) -> dict:
    fills, rq, bufs, got = [], [], [], 0
    for t in trs:
        for used, size in zip(t.series.get("rmem_alloc", []), t.series.get("rcvbuf", [])):
            if size:
                fills.append(100 * used / size)
        rq += t.series.get("rqueue", [])
        bufs += t.series.get("rcvbuf", [])
        got += t.last.get("bytes_received", 0)
    return {"rcvbuf": max(bufs) if bufs else None, "rqueue_max": max(rq) if rq else None,
            "fill_pct": round(_median(fills), 1) if fills else None, "bytes": got}
