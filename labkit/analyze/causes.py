"""What binds inside a stage (pure): the pipeline rule over tcp_info, then the stage's own evidence.

The pipeline rule reads the connections of the real client's pull from the client inward. Data
backs up behind the slowest element: every connection downstream of it has a sender waiting on
its application (nothing to send), and the connection that feeds it has a sender limited by the
receiver's window (the slow element does not read fast enough). A shaped link shows instead as
a sender that is busy, limited by neither window nor buffer (its congestion window or the
queue), at about the path's rate. So the first connection from the client that is not waiting
on its application says where the path binds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..path import CLIENT
from ..units import KiB, MiB
from .evidence import PathView, StageView, tcp_text
from .noise import FLOOR, reaches

SHARE = 25.0        # % of a connection's time that counts as "limited by" (rwnd, sndbuf)
NET = 50.0          # % of the time busy without window or buffer limits: the link (cwnd, queue)
RATE_MATCH = 0.3    # a link binds only if its sender delivered within 30% of the path's rate
PEGGED = 0.9        # share of its allowance at which a program has no CPU to spare
BUSY = 0.5          # the busiest program at half its allowance, where the pipeline points, is CPU-bound
SMALL_RCVBUF = 256 * KiB
FULL = 50.0         # % of the receive buffer holding unread data: the receiver does not read
STUCK = 90.0        # % full: a receiver whose buffer stays this full does not read (its buffer may be small because
                    # it never drains: the kernel grows a receive buffer only as fast as the program reads)
CLIENT_WRITTEN = 0.5  # share of a pull's bytes on the client's device while it ran: the client waits on its disk
UNREAD = MiB        # bytes waiting unread in a receiver's socket (a whole 1 MiB read's worth, at least)

CAUSES = {"link": "link capacity", "cpu": "CPU", "disk": "the disk", "window": "TCP windows",
          "client": "the client", "down": "a service is down", "app": "the application, waiting rather than CPU-bound"}


@dataclass
class Finding:
    stage: str
    cause: str                   # a key of CAUSES
    what: str                    # what binds, for the summary
    evidence: list[str] = field(default_factory=list)
    kind: str = ""               # the pipeline's reading: reader, link, sndbuf, source; or machine, lab, window
    program: str = ""            # the program named, where one is (a full machine's costliest per byte)


def connection_order(view: PathView) -> list[str]:
    """The connections of the carrying stages, from the client inward."""
    out = []
    for sv in reversed(view.stages):
        for c in (sv.stage.reads_from, sv.stage.sends_on) if CLIENT in sv.stage.programs else (
                sv.stage.sends_on, sv.stage.reads_from):
            if c and c not in out:
                out.append(c)
    return out


def receiver_limits(snd: dict, rcv: dict | None) -> bool:
    """The receiver limits the connection: data it has not read piles up in its buffer (more than
    UNREAD, the buffer over FULL); or the sender is rwnd-limited much of the time, more than it waits
    on its application, and the receiver's buffer (where seen) is small or filling. A sender that
    bursts after waiting on its application hits the window now and then while the receiver reads
    promptly: not this."""
    if rcv and rcv.get("fill_pct", 0) >= FULL and rcv.get("rqueue_max", 0) >= UNREAD:
        return True
    if snd.get("rwnd_pct", 0) < SHARE or snd.get("rwnd_pct", 0) < snd.get("app_pct", 0):
        return False
    if rcv and rcv.get("rcvbuf") and rcv["rcvbuf"] > SMALL_RCVBUF and rcv.get("fill_pct", 100) < 10:
        return False
    return True


def _reader_of(view: PathView, conn: str) -> StageView | None:
    return next((sv for sv in reversed(view.stages) if sv.stage.reads_from == conn), None)


def _sender_of(view: PathView, conn: str) -> StageView | None:
    return next((sv for sv in view.stages if sv.stage.sends_on == conn), None)


def _link_sender(view: PathView, conn: str, rate: float) -> StageView | None:
    """The stage whose own link holds a busy sender on `conn` to the path's rate. Where `conn` is one
    TCP flow with others (Docker's DNAT: view.flows) it crosses each of their links, so the innermost
    stage sending on one of them whose own pulls are already at that rate; else `conn`'s own sender."""
    flow = view.flows.get(conn, (conn,))
    for sv in view.stages:
        if len(flow) > 1 and sv.stage.sends_on in flow and sv.pull and \
                abs(sv.pull.median - rate) <= RATE_MATCH * rate:
            return sv
    return _sender_of(view, conn)


def _near_capacity(view: PathView, conn: str, rate: float) -> bool:
    """Whether the path's rate reaches what iperf3 carried on a hop that `conn`'s flow crosses: a busy
    sender far below every such hop's capacity waits on something else (its program's CPU), not the link.
    True where no hop was measured."""
    flow = view.flows.get(conn, (conn,))
    caps = [view.hops[sv.stage.hop].median for sv in view.stages
            if sv.stage.sends_on in flow and sv.stage.hop in view.hops and view.hops[sv.stage.hop].median]
    return not caps or rate >= (1 - RATE_MATCH) * min(caps)


def pipeline(view: PathView) -> Finding | None:
    """Where the real client's pull backs up, from its connections' tcp_info (None: no connection says)."""
    final = view.final
    tcp, rate = final.tcp, final.pull.median if final.pull else 0.0
    for conn in connection_order(view):
        snd = tcp.get((conn, "sender"))
        if not snd:
            continue
        line = tcp_text(conn, "sender", snd)
        if receiver_limits(snd, tcp.get((conn, "receiver"))) and (reader := _reader_of(view, conn)):
            return Finding(reader.name, "", f"{' and '.join(reader.stage.programs) or reader.name} reading {conn}",
                           [line], "reader")
        if snd.get("sndbuf_pct", 0) >= SHARE and (sender := _sender_of(view, conn) or _reader_of(view, conn)):
            return Finding(sender.name, "window", f"the send buffer on {conn}", [line], "sndbuf")
        delivered = snd.get("delivery_MBps", 0)
        if (snd.get("net_pct", 0) >= NET and rate and abs(delivered - rate) <= RATE_MATCH * rate
                and _near_capacity(view, conn, rate) and (sender := _link_sender(view, conn, rate))):
            return Finding(sender.name, "link", f"the {view.path.connection(sender.stage.sends_on).seen_on[0]} link",
                           [line], "link")
    inner = connection_order(view)[-1:] or []
    snd = tcp.get((inner[0], "sender")) if inner else None
    if snd and snd.get("app_pct", 0) >= 50:
        first = view.stages[0]
        return Finding(first.name, "", "its source", [tcp_text(inner[0], "sender", snd)], "source")
    return None


def _conn_at(sv: StageView, conn: str | None, view: PathView) -> tuple[str | None, dict | None]:
    """The stage's connection as seen in its own vantage's pulls (uwsgi's link is crossed by another there)."""
    if conn is None:
        return None, None
    if (conn, "sender") in sv.tcp:
        return conn, sv.tcp[(conn, "sender")]
    alt = view.path.vantage(sv.stage.vantage).crosses[0]
    return alt, sv.tcp.get((alt, "sender"))


def own_link_busy(sv: StageView, view: PathView) -> bool:
    """The sender on the stage's own link is busy without window or buffer limits (cwnd or queue)."""
    _, snd = _conn_at(sv, sv.stage.sends_on, view)
    return bool(snd) and snd.get("net_pct", 0) >= NET


def _receiver_cause(sv: StageView, conn: str, what: str) -> tuple[str, str, list[str]]:
    """A receiver that limits: its buffer too small (window), or it does not read (its program)."""
    rcv = sv.tcp.get((conn, "receiver"), {})
    buf, fill = rcv.get("rcvbuf"), rcv.get("fill_pct", 0)
    ev = [tcp_text(conn, "receiver", rcv)] if rcv else []
    if buf and buf <= SMALL_RCVBUF and fill < STUCK:
        return "window", f"the receive window on {conn}, its receive buffer {buf / 1024:.0f} KiB", ev
    if CLIENT in sv.stage.programs:
        return "client", "the client, not reading as fast as the data comes", ev
    return "", what, ev


def stage_cause(sv: StageView, view: PathView, pipe: Finding | None, at_hop: bool = False) -> Finding:
    """What binds in stage `sv`: the first rule that holds, with the numbers behind it.

    `at_hop`: the path runs at the capacity of this stage's hop (decided on the client's rate).
    """
    ev: list[str] = []
    prog, share = sv.busiest
    for p, s in sv.cpu.items():
        if s >= PEGGED:
            cause = "client" if p == CLIENT else "cpu"
            return Finding(sv.name, cause, f"{p}'s CPU", [sv.cpu_text[p] + ": no CPU to spare"])
    if share < PEGGED and (hog := _saturated_upstream(sv, view)):
        return hog
    if sv.client[0] >= PEGGED and share < BUSY:
        where = view.path.stage_of_program(CLIENT).name
        return Finding(where, "client", "the pulling client's CPU",
                       [f"at {sv.stage.vantage}: {sv.client[1]}: no CPU to spare, while {cpu_lines(sv)[0]}"])
    conn, snd = _conn_at(sv, sv.stage.sends_on, view)
    if at_hop or (sv.pull and sv.hop and reaches(sv.pull, sv.hop)):
        ev.append(f"pull at {sv.stage.vantage} {sv.pull} reaches the {sv.stage.hop} hop's iperf3 {sv.hop}")
        if snd and receiver_limits(snd, sv.tcp.get((conn, "receiver"))):
            cause, what, more = _receiver_cause(sv, conn, f"the receiver on {conn}")
            return Finding(sv.name, cause or "window", what, ev + [tcp_text(conn, "sender", snd)] + more)
        if snd and snd.get("sndbuf_pct", 0) >= SHARE:
            return Finding(sv.name, "window", f"the send buffer on {conn}", ev + [tcp_text(conn, "sender", snd)])
        return Finding(sv.name, "link", f"the {sv.stage.hop} hop",
                       ev + ([tcp_text(conn, "sender", snd)] if snd else []))
    rate = sv.pull.median if sv.pull else 0.0
    client = CLIENT in sv.stage.programs           # the client waiting on its own disk is a slow client
    for name, (mbps, text) in sv.disk.items():
        # a server's disk binds when every byte went through it; a client's writes go through its dirty
        # pages first (bounded: client.dirty_mib), so most of the bytes reaching the device is enough
        if rate and mbps >= (CLIENT_WRITTEN if client else 1 - FLOOR) * rate and share < BUSY:
            said = ("every byte of the pull went through the device" if mbps >= (1 - FLOOR) * rate
                    else f"{100 * mbps / rate:.0f}% of the pull's bytes reached the device while it ran")
            return Finding(sv.name, "client" if client else "disk",
                           f"the client writing to its disk ({name})" if client else f"the disk ({name})",
                           [text + f": {said}, and {cpu_lines(sv)[0]}"])
    if pipe and pipe.stage == sv.name:
        if pipe.kind == "reader":
            cause, what, more = _receiver_cause(sv, sv.stage.reads_from, pipe.what)
            if not cause:
                cause = "cpu" if share >= BUSY else "app"
                what = f"{prog}'s CPU" if cause == "cpu" else f"{prog or sv.name}, reading slowly without being CPU-bound"
            return Finding(sv.name, cause, what, pipe.evidence + more + cpu_lines(sv))
        if pipe.kind == "source":
            cause = "cpu" if share >= BUSY else "app"
            return Finding(sv.name, cause, f"{prog}'s CPU" if cause == "cpu" else f"{sv.name} waiting on its source",
                           pipe.evidence + cpu_lines(sv))
        return Finding(sv.name, pipe.cause, pipe.what, pipe.evidence)
    cause = "cpu" if share >= BUSY else "app"
    return Finding(sv.name, cause, f"{prog}'s CPU" if cause == "cpu" else f"{sv.name}, {sv.stage.adds}",
                   cpu_lines(sv) + ([tcp_text(conn, "sender", snd)] if snd else []))


def small_windows(view: PathView) -> Finding | None:
    """A receive buffer too small for the path, read off the client's pulls: from the client inward, the
    first connection whose sender waits on the receiver's window much of the time while the receiver's
    buffer stays small and is not kept full (a full one is a slow reader). Tiny windows also make every
    program spend more CPU per byte, so on a full machine this comes before the CPU."""
    tcp = view.final.tcp
    small = []
    for conn in connection_order(view):
        snd, rcv = tcp.get((conn, "sender")), tcp.get((conn, "receiver"))
        if not (snd and rcv and rcv.get("rcvbuf")):
            continue
        if (snd.get("rwnd_pct", 0) >= SHARE and rcv["rcvbuf"] <= SMALL_RCVBUF
                and rcv.get("fill_pct", 0) < STUCK and (reader := _reader_of(view, conn))):
            small.append((conn, reader, snd, rcv))
    if not small:
        return None
    conn, reader, snd, rcv = small[0]
    ev = [tcp_text(conn, "sender", snd), tcp_text(conn, "receiver", rcv)]
    if len(small) > 1:
        ev.append("the receivers on " + ", ".join(c for c, *_ in small[1:]) + " hold buffers as small: "
                  + ", ".join(f"{r['rcvbuf'] / 1024:.0f} KiB" for *_, r in small[1:]))
    return Finding(reader.name, "window", f"the receive window on {conn}, its receive buffer "
                   f"{rcv['rcvbuf'] / 1024:.0f} KiB", ev, "window")


def _saturated_upstream(sv: StageView, view: PathView) -> Finding | None:
    """A program of a stage before `sv` with no CPU to spare during `sv`'s own pulls, while `sv`'s are not:
    on a machine with few cores, `sv` adds work that competes with it, but that program is what binds."""
    names = [s.name for s in view.stages]
    for st in view.stages[: names.index(sv.name)]:
        for prog in st.stage.programs:
            if prog in sv.others and sv.others[prog][0] >= PEGGED:
                return Finding(st.name, "cpu", f"{prog}'s CPU",
                               [f"during the pulls at {sv.stage.vantage}: {sv.others[prog][1]}: no CPU to spare, "
                                f"while {cpu_lines(sv)[0]}"], "upstream")
    return None


def cpu_lines(sv: StageView) -> list[str]:
    prog, _ = sv.busiest
    return [t + (" (the stage's busiest program)" if p == prog and len(sv.cpu) > 1 else "")
            for p, t in sv.cpu_text.items()] or ["no CPU measured for this stage's programs"]
