"""The probe's verdict from the client's side: crafted tcp_info samples with known answers, and real loopback sockets."""
import hashlib
import socket
import struct
import threading
import time

import pandas as pd
import pytest

from labkit.analyze.probe_verdict import (CLIENT, FAILED, NETWORK, SERVER, ProbeFacts, network_stages,
                                          probe_verdict, survey_class)
from labkit.measure.probe import Target, _host_port
from labkit.clients.follow import Follow, image_url
from labkit.measure.own_socket import LAYOUT, SocketWatch, parse_tcp_info, summarize
from labkit.path import PATH

MiB = 2**20


def packed(**fields) -> bytes:
    """A struct tcp_info as the kernel writes it, with `fields` set and the rest 0."""
    return b"".join(struct.pack("=" + code, fields.get(name, 0)) for name, code in LAYOUT)


def samples(n: int, mbps: float, ooo_per_s: float = 0, unread: int = 0, rcv_rtt_us: int = 100) -> list[dict]:
    """n samples 20 ms apart of a download at `mbps`, parsed from packed tcp_info."""
    out = []
    for i in range(n):
        t = 0.02 * (i + 1)
        info = parse_tcp_info(packed(bytes_received=int(mbps * 1e6 * t), data_segs_in=int(mbps * 1e6 * t / 1448),
                                     rcv_ooopack=int(ooo_per_s * t), rcv_rtt=rcv_rtt_us, rcv_space=6 * MiB,
                                     min_rtt=50, snd_cwnd=10))
        out.append({"t": t, "unread": unread, "rcvbuf": 12 * MiB, **info})
    return out


def test_tcp_info_is_read_field_by_field_and_a_short_one_from_an_old_kernel_too():
    raw = packed(state=1, rcv_rtt=1234, bytes_received=10**9, rcv_ooopack=7, snd_wnd=65535, rcv_wnd=131072)
    info = parse_tcp_info(raw)
    assert (info["state"], info["rcv_rtt"], info["bytes_received"], info["rcv_ooopack"], info["rcv_wnd"]) == \
           (1, 1234, 10**9, 7, 131072)
    assert len(raw) == 236
    old = parse_tcp_info(raw[:104])                  # a 2.6 kernel stops after total_retrans
    assert "total_retrans" in old and "bytes_received" not in old


CASES = [
    # (what is true, samples, reads/backlogged/cpu, facts beyond the socket, answer)
    ("a slow server: the client waits, nothing is lost, the network has room",
     samples(50, 30), (40, 2, 0.05), {"iperf_MBps": 500.0}, SERVER),
    ("a full link: the pull gets what iperf3 gets",
     samples(50, 47), (60, 1, 0.05), {"iperf_MBps": 48.0}, NETWORK),
    ("a lossy link and no iperf3: holes in what arrived",
     samples(50, 47, ooo_per_s=400), (60, 1, 0.05), {}, NETWORK),
    ("loss on a path far from full (a busy machine's veth drops a few): iperf3 decides",
     samples(50, 50, ooo_per_s=300), (60, 2, 0.05), {"iperf_MBps": 1600.0}, SERVER),
    ("a client whose thread is CPU-bound",
     samples(50, 300), (300, 50, 0.98), {"iperf_MBps": 2000.0}, CLIENT),
    ("a client that lets data pile up in its receive queue",
     samples(50, 300, unread=4 * MiB), (100, 80, 0.5), {"iperf_MBps": 2000.0}, CLIENT),
    ("a client that closes its window (the capture saw zero windows)",
     samples(50, 100), (100, 10, 0.3), {"zero_windows": 12}, CLIENT),
    ("no iperf3 and no loss: the server, with the caveat",
     samples(50, 30), (40, 0, 0.05), {}, SERVER),
]


@pytest.mark.parametrize("what,samp,watch,more,answer", CASES, ids=[c[0][:40] for c in CASES])
def test_crafted_samples_give_the_known_answer(what, samp, watch, more, answer):
    reads, backlogged, cpu_share = watch
    summary = summarize(samp, samp[0], reads, backlogged, cpu_share * samp[-1]["t"])
    mbps = (samp[-1]["bytes_received"] - samp[0]["bytes_received"]) / (samp[-1]["t"] - samp[0]["t"]) / 1e6
    v = probe_verdict(ProbeFacts.of(mbps, summary, **more))
    assert v.kind == answer, (what, str(v))
    assert v.evidence and f"{mbps:.1f} MB/s" in v.evidence[0]
    if answer == SERVER and "iperf_MBps" not in more:
        assert "--iperf3" in v.summary


def test_every_pull_failing_is_its_own_answer():
    v = probe_verdict(ProbeFacts(0.0, 0.0, 0.0, 0, 0, failures=4, pulls=4, errors="HTTP 404"))
    assert v.kind == FAILED and "HTTP 404" in v.summary


def _survey(**pulls) -> pd.DataFrame:
    """A survey table: iperf3 per hop at 2000 MB/s but the link's, and one pull per stage (MB/s by stage)."""
    link = pulls.pop("link", 2000.0)
    rows = [{"kind": "iperf3", "point": h.name, "parallel": 1, "MBps": link if h.name in
             {PATH.stage(s).hop for s in network_stages(PATH)} else 2000.0, "failures": 0} for h in PATH.hops]
    rows += [{"kind": "pull", "point": PATH.stage(st).vantage, "parallel": 1, "MBps": mbps, "failures": 0,
              "busiest": "nginx", "busiest_cpu": 50.0, "error": ""} for st, mbps in pulls.items()]
    return pd.DataFrame(rows)


def test_the_surveys_verdict_in_the_probes_words():
    assert network_stages(PATH) == [s.name for s in PATH.stages if PATH.vantage(s.vantage).client == "compute"]
    names = [s.name for s in PATH.stages]
    first, second, third, last = names[0], names[1], names[2], names[-1]
    # nginx loses the most and the link has room: the server
    assert survey_class(_survey(**{first: 1500.0, second: 300.0, third: 290.0, last: 285.0}), PATH)[0] == SERVER
    # a 400mbit link: the end runs at the link's iperf3, whatever drop an earlier stage shows
    at_cap = _survey(link=48.0, **{first: 700.0, second: 300.0, third: 150.0, last: 48.0})
    assert survey_class(at_cap, PATH)[0] == NETWORK and "at capacity" in survey_class(at_cap, PATH)[1]
    # nothing loses more than the noise: the path's capacity is reached
    assert survey_class(_survey(**{first: 1900.0, second: 1850.0, third: 1800.0, last: 1790.0}), PATH)[0] == NETWORK
    broken = _survey(**{first: 1500.0, second: 300.0, third: 290.0, last: 0.0})
    assert survey_class(broken, PATH)[0] == FAILED


def test_target_parsing_and_the_one_host_rule():
    t = Target.parse("http://registry.example.org", "library/ubuntu:18.04")
    assert (t.base, t.port) == ("http://registry.example.org:80", 80)
    for url, uri in [("ftp://x", "a/b:c"), ("http://x/api", "a/b:c"), ("http://x", "ubuntu"), ("http://x", "a/b")]:
        with pytest.raises(ValueError):
            Target.parse(url, uri)
    url, note = image_url("http://127.0.0.1/containers/1/download/s", t.base, Follow())
    assert url == "http://registry.example.org:80/containers/1/download/s" and "DOMAIN_NAME" in note
    assert image_url("http://registry.example.org/containers/1/download/s", t.base, Follow()) == \
        ("http://registry.example.org/containers/1/download/s", "")
    assert _host_port("10.0.0.1:5202", 5201) == ("10.0.0.1", 5202) and _host_port("h", 5201) == ("h", 5201)


# --- real sockets on loopback: a slow sender and a slow reader, measured ----------------------
def _serve(total: int, chunk: int, pause: float, ready: threading.Event, port: list):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port.append(srv.getsockname()[1])
    ready.set()
    conn, _ = srv.accept()
    block = b"x" * chunk
    sent, stop = 0, time.monotonic() + 20
    while sent < total and time.monotonic() < stop:
        conn.sendall(block)
        sent += chunk
        if pause:
            time.sleep(pause)          # the slow server this case injects
    conn.close()
    srv.close()


def _pull(total: int, chunk: int, pause: float, work: int) -> tuple[float, dict]:
    ready, port = threading.Event(), []
    th = threading.Thread(target=_serve, args=(total, chunk, pause, ready, port), daemon=True)
    th.start()
    ready.wait(5)
    s = socket.create_connection(("127.0.0.1", port[0]), timeout=10)
    watch, buf, got, t0 = SocketWatch(MiB), bytearray(MiB), 0, time.perf_counter()
    view = memoryview(buf)
    while True:
        watch(s)
        n = s.recv_into(view)
        if not n:
            break
        got += n
        for _ in range(work):          # a client that does real work per read (hashing, many times over)
            hashlib.sha256(view[:n]).digest()
    watch.finish(s)
    s.close()
    th.join(10)
    return got / (time.perf_counter() - t0) / 1e6, watch.summary()


def test_a_slow_sender_on_loopback_reads_as_the_server():
    mbps, summary = _pull(8 * MiB, 64 * 1024, 0.005, work=1)
    v = probe_verdict(ProbeFacts.of(mbps, summary, iperf_MBps=2000.0))
    assert summary["backlogged_reads"] < 0.5 and summary["client_cpu_pct"] < 90
    assert v.kind == SERVER, str(v)


def test_a_client_busy_with_each_read_on_loopback_reads_as_the_client():
    mbps, summary = _pull(64 * MiB, MiB, 0.0, work=30)
    v = probe_verdict(ProbeFacts.of(mbps, summary, iperf_MBps=2000.0))
    assert summary["backlogged_reads"] >= 0.5 or summary["client_cpu_pct"] >= 90
    assert v.kind == CLIENT, str(v)
