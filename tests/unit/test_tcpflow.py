"""TCP analysis on pcaps crafted with scapy, each with a known answer."""
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from labkit.analyze.tcpflow import analyze
from labkit.analyze.windows import flow_verdict

C, S = ("192.0.2.1", 40000), ("192.0.2.2", 80)   # client (receiver), server (data sender)


def pkt(t, frm, flags, seq, ack, win, data=0, opts=None):
    src, dst = (S, C) if frm == "S" else (C, S)
    p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq,
                                                   ack=ack, window=win, options=opts or [])
    if data:
        p = p / Raw(b"x" * data)
    p.time = t
    return p


def handshake(c_scale=7, s_scale=2):
    return [pkt(0.000, "C", "S", 1000, 0, 65535, opts=[("MSS", 1460), ("WScale", c_scale)]),
            pkt(0.001, "S", "SA", 5000, 1001, 65535, opts=[("MSS", 1460), ("WScale", s_scale)]),
            pkt(0.002, "C", "A", 1001, 5001, 100)]


def run(tmp_path, pkts, name="t.pcap"):
    f = tmp_path / name
    wrpcap(str(f), pkts)
    flows = [d for d in analyze(f, bin_s=0.001) if d.sender == f"{S[0]}:{S[1]}"]
    assert len(flows) == 1
    return flows[0]


def test_window_scale_rtt_and_in_flight(tmp_path):
    pkts = handshake() + [
        pkt(0.010, "S", "A", 5001, 1001, 512, 1000),
        pkt(0.011, "S", "A", 6001, 1001, 512, 1000),
        pkt(0.012, "S", "PA", 7001, 1001, 512, 1000),
        pkt(0.020, "C", "A", 1001, 6001, 100),
        pkt(0.030, "C", "A", 1001, 8001, 100)]
    f = run(tmp_path, pkts)
    assert f.handshake_seen and f.window_scale == 7 and f.mss == 1460
    assert f.max_window == 100 << 7 == 12800
    assert f.bytes == 3000 and f.packets == 3
    assert (f.rtt_ms_min, f.rtt_ms_median) == (10.0, 14.0)
    assert f.series.in_flight.max() == 3000
    assert f.retransmissions == f.zero_windows == f.duplicate_acks == f.resets == 0
    assert f.series.MBps.sum() * 0.001 * 1e6 == pytest.approx(3000)   # acked bytes over the bins


def test_zero_window_episode_is_receiver_limited(tmp_path):
    pkts = handshake() + [pkt(0.010 + i * 0.001, "S", "A", 5001 + i * 1000, 1001, 512, 1000) for i in range(3)]
    pkts += [pkt(0.020, "C", "A", 1001, 8001, 0), pkt(0.220, "C", "A", 1001, 8001, 0),
             pkt(0.420, "C", "A", 1001, 8001, 0), pkt(0.620, "C", "A", 1001, 8001, 100),
             pkt(0.621, "S", "A", 8001, 1001, 512, 1000), pkt(0.630, "C", "A", 1001, 9001, 100)]
    f = run(tmp_path, pkts)
    assert f.zero_windows == 3
    assert list(f.events.kind).count("zero window") == 3
    v = flow_verdict(f)
    assert v.kind == "receiver-window limited" and "192.0.2.1:40000" in v.tune and "zero window" in v.tune


def test_retransmission_counted_and_kept_out_of_rtt(tmp_path):
    pkts = handshake() + [
        pkt(0.010, "S", "A", 5001, 1001, 512, 1000),
        pkt(0.011, "S", "A", 6001, 1001, 512, 1000),
        pkt(0.100, "S", "A", 5001, 1001, 512, 1000),   # resent after 89 ms: a retransmission
        pkt(0.105, "C", "A", 1001, 6001, 100),         # covers only resent data: no RTT sample
        pkt(0.106, "C", "A", 1001, 7001, 100)]
    f = run(tmp_path, pkts)
    assert (f.retransmissions, f.out_of_order) == (1, 0)
    assert f.bytes == 2000                              # unique bytes
    assert f.rtt_ms_min == f.rtt_ms_median == 95.0      # only 0.106 - 0.011
    assert list(f.events.kind) == ["retransmission"]


def test_reordering_within_3ms_is_out_of_order_not_retransmission(tmp_path):
    pkts = handshake() + [pkt(0.010, "S", "A", 6001, 1001, 512, 1000),
                          pkt(0.0105, "S", "A", 5001, 1001, 512, 1000),
                          pkt(0.020, "C", "A", 1001, 7001, 100)]
    f = run(tmp_path, pkts)
    assert (f.retransmissions, f.out_of_order) == (0, 1)


def test_missed_handshake_says_so(tmp_path):
    pkts = [pkt(0.010, "S", "A", 5001, 1001, 512, 1000), pkt(0.020, "C", "A", 1001, 6001, 100)]
    f = run(tmp_path, pkts)
    assert not f.handshake_seen and f.window_scale is None and f.max_window is None
    assert f.bytes == 1000 and f.rtt_ms_min == 10.0
    assert "handshake was not captured" in str(flow_verdict(f))


def test_open_window_little_in_flight_is_application_limited(tmp_path):
    pkts = handshake()
    for i in range(20):   # one 1000-byte segment every 10 ms, each acked 1 ms later, window 8 MB
        t = 0.010 + i * 0.010
        pkts += [pkt(t, "S", "A", 5001 + i * 1000, 1001, 512, 1000),
                 pkt(t + 0.001, "C", "A", 1001, 6001 + i * 1000, 65535)]
    f = run(tmp_path, pkts)
    assert f.max_window == 65535 << 7 and f.series.in_flight.max() == 1000
    assert f.rtt_ms_median == 1.0
    v = flow_verdict(f)
    assert v.kind == "application-limited" and "192.0.2.2:80" in v.tune


def test_sender_buffer_limited_from_the_kernels_view(tmp_path):
    pkts = handshake() + [pkt(0.010, "S", "A", 5001, 1001, 512, 1000), pkt(0.011, "C", "A", 1001, 6001, 65535)]
    f = run(tmp_path, pkts)
    ss = [{"t": 0.1, "sndbuf_limited_pct": 62.0, "rwnd_limited_pct": 1.0, "app_limited": False}]
    assert flow_verdict(f, ss).kind == "sender-buffer limited"


def test_duplicate_acks_and_reset(tmp_path):
    pkts = handshake() + [pkt(0.010, "S", "A", 5001, 1001, 512, 1000),
                          pkt(0.011, "S", "A", 6001, 1001, 512, 1000),
                          pkt(0.020, "C", "A", 1001, 6001, 100),
                          pkt(0.021, "C", "A", 1001, 6001, 100),
                          pkt(0.022, "C", "A", 1001, 6001, 100),
                          pkt(0.030, "S", "R", 7001, 0, 0)]
    f = run(tmp_path, pkts)
    assert (f.duplicate_acks, f.resets) == (2, 1)


def _paced(rounds, window, rtt=0.010, seg=1000):
    """`rounds` round trips, each sending `window` bytes in 1000-byte segments, acked one round trip later."""
    pkts, seq = handshake(c_scale=0), 5001
    for i in range(rounds):
        t = 0.010 + i * rtt
        for k in range(window // seg):
            pkts.append(pkt(t + k * 1e-5, "S", "A", seq + k * seg, 1001, 512, seg))
        seq += window
        pkts.append(pkt(t + rtt - 1e-4, "C", "A", 1001, seq, window))
    return pkts


def test_a_window_that_binds_for_long_enough_is_a_buffer_too_small(tmp_path):
    f = run(tmp_path, _paced(40, 4000))
    v = flow_verdict(f)
    assert v.kind == "receiver-window limited" and "receive buffer is too small" in v.tune


def test_a_transfer_of_a_few_round_trips_gives_no_buffer_advice(tmp_path):
    f = run(tmp_path, _paced(3, 4000))
    v = flow_verdict(f)
    assert v.kind == "receiver-window limited" and "cannot tell" in v.tune and "round trips" in v.tune
    assert "too small for this path" not in v.tune


def test_a_window_with_room_to_spare_points_at_the_reader_not_the_buffer(tmp_path):
    f = run(tmp_path, _paced(40, 4000))
    sender = [{"t": 0.3, "rwnd_limited_pct": 60.0, "sndbuf_limited_pct": 0.0, "app_limited": False}]
    f.median_window = 40 * 4000          # the receiver advertised forty times what was in flight
    v = flow_verdict(f, sender)
    assert "drains it slowly" in v.tune and "too small for this path" not in v.tune
