"""The sock_diag sampler's decoding (pyroute2's codec) on crafted netlink replies with known answers."""
import socket
import struct

import pytest
from pyroute2.netlink.diag import MarshalDiag

from labkit.measure.path_sockets import MIN_BYTES, TcpInfoSampler, _Track, limited_pct, parse_reply, skmem
from labkit.measure.own_socket import LAYOUT

TCP_INFO = dict(state=1, app_limited_bits=0b101, rtt=8145, snd_cwnd=2388, total_retrans=2, bytes_acked=37948187,
                bytes_received=131, delivery_rate=4351252080, busy_time=288_000, rwnd_limited=84_000,
                sndbuf_limited=10_000, snd_wnd=1318912, notsent_bytes=2845848, rcv_space=14480, unacked=911)
SKMEM = (1000, 131072, 2000, 4194304, 0, 3000, 0, 0, 0)   # rmem_alloc, rcvbuf, wmem_alloc, sndbuf, fwd, wmem_queued


def attr(kind: int, body: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(body), kind)
    return head + body + b"\0" * (-len(body) % 4)


def message(kind: int, body: bytes, flags: int = 2) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, 1, 0) + body


def socket_msg(sport: int, dport: int, src: str, dst: str, cookie: int, rqueue: int) -> bytes:
    """An inet_diag_msg (linux/inet_diag.h) with a tcp_info and a socket memory attribute."""
    head = struct.pack("=BBBB", socket.AF_INET, 1, 0, 0) + struct.pack(">HH", sport, dport)
    head += socket.inet_aton(src) + bytes(12) + socket.inet_aton(dst) + bytes(12)
    head += struct.pack("=IQ", 0, cookie) + struct.pack("=IIIII", 0, rqueue, 7, 0, 4242)
    info = b"".join(struct.pack("=" + code, TCP_INFO.get(name, 0)) for name, code in LAYOUT)
    return message(20, head + attr(2, info) + attr(7, struct.pack("=9I", *SKMEM)))


def test_a_dump_reply_decodes_to_the_fields_the_verdict_reads():
    data = (socket_msg(80, 44116, "192.0.2.20", "192.0.2.10", 77, 5)
            + socket_msg(44116, 80, "192.0.2.10", "192.0.2.20", 78, 0) + message(3, struct.pack("=i", 0)))
    rows, done = parse_reply(MarshalDiag(), data)
    assert done and len(rows) == 2
    r = rows[0]
    assert (r["sport"], r["dport"], r["src"], r["dst"], r["cookie"], r["rqueue"], r["wqueue"]) == \
        (80, 44116, "192.0.2.20", "192.0.2.10", 77, 5, 7)
    assert (r["rtt_us"], r["cwnd"], r["total_retrans"], r["bytes_acked"], r["bytes_received"]) == (8145, 2388, 2, 37948187, 131)
    assert (r["delivery_rate"], r["busy_us"], r["rwnd_limited_us"], r["sndbuf_limited_us"]) == (4351252080, 288_000, 84_000, 10_000)
    assert (r["snd_wnd"], r["notsent_bytes"], r["rcv_space"], r["unacked"], r["app_limited"]) == (1318912, 2845848, 14480, 911, True)
    assert (r["rmem_alloc"], r["rcvbuf"], r["sndbuf"], r["wmem_queued"]) == (1000, 131072, 4194304, 3000)
    first = socket_msg(80, 44116, "192.0.2.20", "192.0.2.10", 77, 5)
    rows, done = parse_reply(MarshalDiag(), first)                       # more to come in the next buffer
    assert not done and [r["cookie"] for r in rows] == [77]


def test_an_error_reply_raises_with_the_kernels_reason():
    with pytest.raises(OSError, match="sock_diag: Operation not permitted"):
        parse_reply(MarshalDiag(), message(2, struct.pack("=i", -1) + bytes(16)))


def test_skmem_is_the_four_values_read_and_nothing_from_a_short_attribute():
    raw = struct.pack("=9I", *SKMEM)
    assert skmem(":".join(f"{b:02x}" for b in raw)) == {"rmem_alloc": 1000, "rcvbuf": 131072, "sndbuf": 4194304,
                                                         "wmem_queued": 3000}
    assert skmem("00:01") == {}


def test_the_senders_limits_are_shares_of_its_busy_time_as_ss_prints_them():
    # `ss -ti` printed for such a socket: busy:288ms rwnd_limited:84ms(29.2%) sndbuf_limited:10ms(3.5%)
    assert limited_pct({"busy_us": 288_000, "rwnd_limited_us": 84_000, "sndbuf_limited_us": 10_000}) == \
        {"rwnd_limited_pct": 29.2, "sndbuf_limited_pct": 3.5}
    assert limited_pct({"busy_us": 0}) == {"rwnd_limited_pct": 0.0, "sndbuf_limited_pct": 0.0}


def test_sender_samples_are_the_image_carrying_senders_in_time_order():
    s = object.__new__(TcpInfoSampler)            # no sockets: only its tracks
    image, manifest, receiver = (_Track("link", "sender", 0.0), _Track("link", "sender", 0.0),
                                 _Track("link", "receiver", 0.0))
    for t in (0.02, 0.04):
        image.add(t, {"busy_us": 1000 * t * 1e3, "rwnd_limited_us": 500 * t * 1e3, "bytes_acked": MIN_BYTES * t * 50,
                      "app_limited": False, "cwnd": 10})
        manifest.add(t, {"busy_us": 10, "bytes_acked": 500})
        receiver.add(t, {"bytes_received": MIN_BYTES * 2})
    s._tracks = {("link", "sender", "a"): image, ("link", "sender", "b"): manifest, ("link", "receiver", "c"): receiver}
    got = s.sender_samples("link")
    assert [x["t"] for x in got] == [0.02, 0.04] and all(x["rwnd_limited_pct"] == 50.0 for x in got)
    assert s.sender_samples("docker0→nginx") == [] and receiver.timeline == []
