import pytest

from labkit.measure import iperf
from labkit.clients.puller import aggregate_mbps
from labkit.records import PullResult
from labkit.path import plan


def test_iperf_report_is_parsed():
    rep = {"end": {"sum_received": {"bits_per_second": 8e9, "seconds": 2.0},
                   "sum_sent": {"bits_per_second": 8.1e9, "retransmits": 7}}}
    r = iperf.parse(rep)
    assert (r.ok, r.MBps, r.retransmits, r.seconds) == (True, 1000.0, 7, 2.0)
    with pytest.raises(ValueError, match="whole seconds"):
        iperf.run(None, "127.0.0.1", 5201, seconds=0.5)
    bad = iperf.parse({"error": "unable to connect to server: Connection refused"})
    assert not bad.ok and "refused" in bad.error


def test_aggregate_is_bytes_over_the_whole_span():
    rs = [PullResult(True, 100_000_000, 1.0, 1, True, start=0.0, end=1.0),
          PullResult(True, 100_000_000, 2.0, 1, True, start=0.0, end=2.0)]
    assert aggregate_mbps(rs) == 100.0
    assert rs[0].mbps == 100.0


def test_plan_names_namespaces_and_refuses_bad_names():
    p = plan("main", namespaced=True)
    assert p.namespaces == ["sl-main-compute", "sl-main-vm", "sl-main-nginx", "sl-main-uwsgi"]
    assert [v.name for v in p.path.vantages] == ["uwsgi", "nginx", "nginx (tls)", "published port", "full path",
                                                 "VM loopback"]
    assert p.caveats() == []
    lo = plan("main", namespaced=False)
    assert lo.ip("vm") == "127.0.0.1" and len({lo.port("nginx"), lo.port("published"), lo.port("uwsgi_http")}) == 3
    assert any("published port" in c for c in lo.caveats())
    with pytest.raises(ValueError, match="lab name"):
        plan("../etc", namespaced=True)
    assert p.path.vantage("full path").client == "compute"
    with pytest.raises(ValueError, match=r"vantage point .moon.: one of uwsgi, nginx, nginx \(tls\), published port, full path"):
        p.path.vantage("moon")


def test_the_schedulers_account_of_cpu_and_run_queue_waits():
    from labkit.measure.cpu import ran, waited
    before = {"1": (1.0, 0.5), "2": (0.0, 0.0)}
    after = {"1": (1.5, 0.6), "2": (0.1, 0.8), "3": (0.05, 0.0)}      # thread 3 started meanwhile
    assert round(ran(before, after, 1.0), 1) == 65.0                  # 0.5 + 0.1 + 0.05 s of CPU in 1 s
    assert round(waited(before, after, 1.0), 1) == 80.0               # thread 2 wanted most (0.9 s): 0.8 s queued


def test_the_pull_clients_hashing_thread_gives_the_digest_of_every_byte_in_order():
    import hashlib
    import os

    from labkit.clients.puller import HASH_BUFFERS, Hasher
    chunks = [os.urandom(n) for n in (1 << 20, 12345, 1 << 20, 1, 777)]
    h = Hasher(size=1 << 20)
    for c in chunks:
        buf = h.buffer()                  # waits while HASH_BUFFERS are being hashed
        buf[:len(c)] = c
        h.put(buf, len(c))
    assert h.close().hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert h.cpu_s >= 0 and HASH_BUFFERS >= 2
    assert h.close().hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()    # closing twice is harmless
