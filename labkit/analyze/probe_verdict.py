"""What limits a pull, judged from the client's side only (pure: numbers in, a verdict out).

From where the client sits there are three answers:

  client-limited                 the client could not take the data as fast as it came: its
                                 pulling thread ran flat out (CPU), the data waited in its receive
                                 queue at most reads, or it advertised zero windows
  network-limited                the network delivered all it could: the pull reaches what iperf3
                                 measures to the host (without iperf3: packets were lost on the
                                 way, holes in what arrived or retransmissions in the capture)
  server application-limited     neither: the client waited for data the network could have
                                 carried, so the server sent slowly (its app, nginx, docker-proxy,
                                 its disk: what lies behind its address)

The checks run in that order: a client that cannot keep up hides everything behind it, and a
full network hides the server. When iperf3 was run, it decides between network and server: a
busy machine drops some packets on paths far from full (the lab's veth pairs do, under CPU
load), so loss alone says the network is lossy, not that it binds. Without iperf3, loss is the
only sign of the network, and a bottleneck that drops nothing looks like a slow server. `survey_class` maps the in-lab survey's verdict (which
names a stage of the path) onto the same three words, so the two can be compared.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..path import ServingPath
from ..records import Probe, ProbeRun
from .tcpflow import analyze
from .verdict import verdict
from .windows import flow_verdict

CLIENT, NETWORK, SERVER, FAILED = ("client-limited", "network-limited", "server application-limited",
                                   "pulls fail")
PEGGED = 90.0          # % of one core
# Share of reads that found a whole read's worth already waiting. A client that is the bottleneck
# finds data waiting at nearly every read (0.97-0.99 measured on loopback, tests/unit/test_probe_verdict.py);
# a bursty sender, or a client descheduled on a busy machine, leaves data waiting at some reads
# (0.42 measured in the lab's unshaped 2018-10 case, where nginx is the bottleneck).
BACKLOGGED = 0.75
ZERO_WINDOWS = 3
AT_CAPACITY = 0.8      # pull / iperf3 at which the network is what binds
LOSS_OOO = 0.001       # out-of-order packets per data segment received
LOSS_RETRANS = 0.01    # retransmitted share of segments in the capture
SCALES = 1.5           # N pulls together / one pull: each connection is limited, not the path


@dataclass
class ProbeFacts:
    """The numbers the verdict reads, all measured at the client (None: not measured)."""
    single_MBps: float
    client_cpu_pct: float
    backlogged_reads: float
    ooo_packets: int
    data_segs_in: int
    parallel: int = 1
    parallel_MBps: float | None = None
    iperf_MBps: float | None = None
    iperf_retransmits: int | None = None
    zero_windows: int | None = None
    window_limited: bool = False       # the capture saw data reach the edge of the client's window much of the time
    capture_retrans_share: float | None = None
    rcv_rtt_ms: float | None = None
    failures: int = 0
    pulls: int = 1
    errors: str = ""
    checks: list[str] = field(default_factory=list)    # what the pulls were checked by (sha256, length, unverified)
    insecure: bool = False                              # --insecure: the certificate was not checked
    missing: list[str] = field(default_factory=list)   # socket evidence the single pull lacks, and why
    fastest_layer_MBps: float | None = None            # an OCI pull: its fastest single layer
    layers: int = 0                                     # an OCI pull: its layers (0: one image file)
    layers_at_once: int = 1

    @classmethod
    def of(cls, single_MBps: float, socket: dict, **more) -> "ProbeFacts":
        """From one pull's MB/s and its socket's summary (labkit.measure.own_socket.summarize)."""
        return cls(single_MBps=single_MBps, client_cpu_pct=socket.get("client_cpu_pct", 0.0),
                   backlogged_reads=socket.get("backlogged_reads", 0.0), ooo_packets=socket.get("ooo_packets", 0),
                   data_segs_in=socket.get("data_segs_in", 0), rcv_rtt_ms=socket.get("rcv_rtt_ms_median"),
                   missing=list(socket.get("missing", [])), **more)


@dataclass
class ProbeVerdict:
    kind: str
    summary: str
    evidence: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([f"{self.kind}: {self.summary}", *[f"  - {e}" for e in self.evidence]])


def caveats(f: ProbeFacts) -> list[str]:
    """What the verdict's reader must know first: an unchecked certificate, unverified bytes, missing evidence."""
    out = ["INSECURE: the server's certificate was not checked (--insecure)"] if f.insecure else []
    if "unverified" in f.checks:
        out.append("some pulls were not verified: the manifest gives no sha256 and the server sent no Content-Length")
    if f.missing:
        out.append("not measured (samples skipped): " + "; ".join(f.missing))
    return out


def probe_verdict(f: ProbeFacts) -> ProbeVerdict:
    ev = [*caveats(f),
          f"one pull: {f.single_MBps:.1f} MB/s; the pulling thread used {f.client_cpu_pct:.0f}% of a core; "
          f"{100 * f.backlogged_reads:.0f}% of its reads found a whole read's worth already waiting"]
    if f.failures >= f.pulls:
        return ProbeVerdict(FAILED, f"every pull failed: {f.errors or 'no data'}", ev)
    ooo = f.ooo_packets / f.data_segs_in if f.data_segs_in else 0.0
    ev.append(f"out-of-order packets received: {f.ooo_packets} of {f.data_segs_in} data segments "
              f"({100 * ooo:.2f}%)" + (f"; receiver's RTT estimate {f.rcv_rtt_ms} ms" if f.rcv_rtt_ms else ""))
    if f.iperf_MBps:
        ev.append(f"iperf3 to the host: {f.iperf_MBps:.1f} MB/s"
                  + (f" ({f.iperf_retransmits} retransmits)" if f.iperf_retransmits is not None else "")
                  + f"; the pull reaches {100 * f.single_MBps / f.iperf_MBps:.0f}% of it")
    if f.zero_windows is not None:
        ev.append(f"capture: {f.zero_windows} zero windows from the client"
                  + (f", {100 * f.capture_retrans_share:.2f}% of segments resent" if f.capture_retrans_share
                     is not None else ""))
    if f.parallel_MBps and f.parallel > 1:
        ratio = f.parallel_MBps / f.single_MBps if f.single_MBps else 0.0
        ev.append(f"{f.parallel} pulls at once: {f.parallel_MBps:.1f} MB/s together ({ratio:.1f}x one pull)"
                  + (": each connection is limited, not the path's capacity" if ratio >= SCALES else ""))
    if f.layers:
        ev.append(f"{f.layers} layers, {f.layers_at_once} at once"
                  + (f": the whole pull's {f.single_MBps:.1f} MB/s against the fastest single layer's "
                     f"{f.fastest_layer_MBps:.1f} MB/s" if f.fastest_layer_MBps else ""))
    if f.failures:
        ev.append(f"{f.failures} of {f.pulls} pulls failed: {f.errors}")

    if (f.client_cpu_pct >= PEGGED or f.backlogged_reads >= BACKLOGGED or (f.zero_windows or 0) >= ZERO_WINDOWS
            or f.window_limited):
        why = ("its pulling thread is CPU-bound" if f.client_cpu_pct >= PEGGED
               else "data waited in its receive queue" if f.backlogged_reads >= BACKLOGGED
               else "it closed its receive window" if (f.zero_windows or 0) >= ZERO_WINDOWS
               else "the data kept reaching the edge of its receive window (its receive buffer, tcp_rmem)")
        return ProbeVerdict(CLIENT, f"the client cannot take the data as fast as it arrives: {why}", ev)
    lossy = ooo >= LOSS_OOO or (f.capture_retrans_share or 0.0) >= LOSS_RETRANS
    if f.iperf_MBps:
        if f.single_MBps >= AT_CAPACITY * f.iperf_MBps:
            return ProbeVerdict(NETWORK, f"the network delivers what it can: the pull gets "
                                         f"{100 * f.single_MBps / f.iperf_MBps:.0f}% of what iperf3 gets", ev)
        why = (f"the network carries {f.iperf_MBps:.0f} MB/s to this client, the pull gets {f.single_MBps:.0f}"
               + (" (some packets were lost, but the network has room to spare)" if lossy else ""))
    elif lossy:
        return ProbeVerdict(NETWORK, "packets were lost on the way (no iperf3 to compare with: give --iperf3 HOST "
                                     "to see whether the network is also full)", ev)
    else:
        why = ("the client waited for data and nothing was lost (no iperf3 to compare with: a network "
               "bottleneck that drops nothing would look the same; give --iperf3 HOST to tell them apart)")
    return ProbeVerdict(SERVER, f"the server sends slower than the client and the network could take: {why}", ev)


def network_stages(path: ServingPath) -> list[str]:
    """The stages a client's pull crosses beyond the server's host: those measured from the client's own node."""
    client = path.client_vantage.client
    return [s.name for s in path.stages if path.vantage(s.vantage).client == client]


def survey_class(survey, path: ServingPath | None = None) -> tuple[str, str]:
    """The in-lab survey (a Survey, or its table and `path`) in the probe's words, and why: (class, the survey's verdict).

    The verdict says when the path is at capacity (the client gets, within noise, the slowest hop
    that carries the image): then nothing in the server binds, whatever drop an earlier stage shows.
    Otherwise the binding stage says it: the network when it is one measured from the client's node.
    """
    path = path if path is not None else getattr(survey, "path", None)
    v = verdict(survey.table if hasattr(survey, "table") else survey, path=path)
    if v.cause == "down":
        return FAILED, v.summary
    if v.at_capacity:
        return NETWORK, f"{v.summary} (the path is at capacity on the {v.capacity_hop} hop)"
    if not v.hop or v.hop in network_stages(path):
        return NETWORK, v.summary
    return SERVER, v.summary


def _reading(v) -> str:
    # Seen at the receiver, data in flight looks small (its ACKs leave at once), so an open window says
    # only that the client's window did not bind; zero windows, full windows and resent data still count.
    return {"receiver-window limited": "the client's receive window bound the sender",
            "network/link limited": "data was resent: packets were lost on the way"}.get(
        v.kind, "the client's window stayed open: it did not bind the sender")


def read_capture(capture: dict) -> dict:
    """The capture of the probe's single pull (its pcap, the servers' address:port in `senders`, else `sender`),
    read: every connection a server sent on (an OCI pull's layers at once: one each; `carried` names what each
    client end carried), biggest first, each with its windows and what they say about the client; the verdict's
    fields are the biggest connection's (empty: no such flow)."""
    senders = set(capture.get("senders") or [capture["sender"]])
    flows = sorted((f for f in analyze(capture["pcap"]) if f.sender in senders and f.bytes > 0),
                   key=lambda f: -f.bytes)
    if not flows:
        return {}
    carried = capture.get("carried") or {}
    conns = []
    for f in flows:
        v = flow_verdict(f)
        conns.append({"client": f.receiver, "server": f.sender, "carried": carried.get(f.receiver, ""),
                      "bytes": f.bytes, "MBps": f.MBps, "seconds": f.seconds,
                      "handshake_seen": f.handshake_seen, "zero_windows": f.zero_windows,
                      "window_full": f.window_full, "retransmissions": f.retransmissions,
                      "median_window": f.median_window, "window_limited": v.kind == "receiver-window limited",
                      "reading": _reading(v)})
    f, c = flows[0], conns[0]
    return {"flow": f.flow, "MBps": f.MBps, "zero_windows": f.zero_windows, "window_full": f.window_full,
            "retransmissions": f.retransmissions, "retrans_share": f.retransmissions / f.packets if f.packets else 0.0,
            "median_window": f.median_window, "window_limited": c["window_limited"],
            "windows_verdict": c["reading"] + (f" (the biggest of {len(conns)} connections)" if len(conns) > 1 else ""),
            "windows_evidence": flow_verdict(f).evidence, "connections": conns,
            "window_limited_connections": sum(x["window_limited"] for x in conns)}


def judge_probe(run: ProbeRun) -> Probe:
    """A probe's measurements (labkit.measure.probe.measure_probe) with the client-side verdict."""
    captured = {k: v for k, v in run.capture.items() if k != "sender"}
    if run.capture:
        captured.update(read_capture(run.capture))
    m = dict(run.facts)
    facts = ProbeFacts.of(m.pop("single_MBps"), m.pop("socket"), **m,
                          zero_windows=captured.get("zero_windows"), capture_retrans_share=captured.get("retrans_share"),
                          window_limited=bool(captured.get("window_limited")))
    return Probe(run.target, run.uri, run.ns, run.table, probe_verdict(facts), facts, run.pulls, run.samples,
                 run.notes, captured, run.meta)
