"""The probe's capture read per connection (labkit.analyze.probe_verdict.read_capture): an OCI pull's layers at
once, each on its own connection, and a blob redirected to another host, on a pcap crafted with scapy."""
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from labkit.analyze.probe_verdict import read_capture

CLIENT, REGISTRY, STORE, OTHER = "192.0.2.1", ("192.0.2.2", 443), ("192.0.2.9", 9000), ("192.0.2.7", 22)


def flow(cport: int, server: tuple[str, int], segments: int, t0: float, zero_window: bool = False) -> list:
    """A handshake, `segments` of 1000 bytes from the server, each ACKed (a zero window after the first if asked)."""
    def p(t, frm_server, flags, seq, ack, win, data=0, opts=None):
        src, dst = ((server[0], server[1]), (CLIENT, cport)) if frm_server else ((CLIENT, cport), server)
        x = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack,
                                                       window=win, options=opts or [])
        if data:
            x = x / Raw(b"x" * data)
        x.time = t
        return x
    out = [p(t0, False, "S", 1000, 0, 65535, opts=[("MSS", 1460), ("WScale", 7)]),
           p(t0 + 0.001, True, "SA", 5000, 1001, 65535, opts=[("MSS", 1460), ("WScale", 2)]),
           p(t0 + 0.002, False, "A", 1001, 5001, 100)]
    for i in range(segments):
        t = t0 + 0.010 + i * 0.010
        out.append(p(t, True, "A", 5001 + i * 1000, 1001, 512, 1000))
        out.append(p(t + 0.005, False, "A", 1001, 6001 + i * 1000, 0 if zero_window and i == 0 else 100))
    return out


def test_every_connection_of_the_pull_is_read_biggest_first_with_what_it_carried(tmp_path):
    pcap = tmp_path / "oci.pcap"
    pkts = (flow(40000, REGISTRY, 6, 0.0) + flow(40001, REGISTRY, 2, 0.0005, zero_window=True)
            + flow(40002, STORE, 4, 0.001) + flow(40003, OTHER, 9, 0.002))
    wrpcap(str(pcap), sorted(pkts, key=lambda x: x.time))
    got = read_capture({"pcap": str(pcap), "sender": "192.0.2.2:443", "senders": ["192.0.2.2:443", "192.0.2.9:9000"],
                        "carried": {"192.0.2.1:40000": "layer sha256:aaaa 6 KB", "192.0.2.1:40002": "layer sha256:bbbb"}})
    conns = got["connections"]
    assert [c["client"] for c in conns] == ["192.0.2.1:40000", "192.0.2.1:40002", "192.0.2.1:40001"]  # not :40003
    assert [c["bytes"] for c in conns] == [6000, 4000, 2000] and all(c["handshake_seen"] for c in conns)
    assert [c["carried"] for c in conns] == ["layer sha256:aaaa 6 KB", "layer sha256:bbbb", ""]
    assert conns[1]["server"] == "192.0.2.9:9000"                            # the redirected blob's store
    assert conns[2]["zero_windows"] == 1 and conns[0]["zero_windows"] == 0
    assert got["flow"].startswith("192.0.2.1:40000") or "192.0.2.1:40000" in got["flow"]   # the verdict's: the biggest
    assert got["windows_verdict"].endswith("(the biggest of 3 connections)")


def test_a_single_connection_capture_reads_as_before(tmp_path):
    pcap = tmp_path / "one.pcap"
    wrpcap(str(pcap), flow(40000, REGISTRY, 3, 0.0))
    got = read_capture({"pcap": str(pcap), "sender": "192.0.2.2:443"})
    assert len(got["connections"]) == 1 and "biggest of" not in got["windows_verdict"]
    assert read_capture({"pcap": str(pcap), "sender": "192.0.2.99:443"}) == {}
