"""Keep-alive connections of one pull (labkit.clients.pool through registry_api.open_get) against a real local
HTTP/1.1 server: reused when the body was read to the end, dialled again otherwise, a connection the server closed
while idle replaced once, and tcp_info still read per connection."""
import http.server
import threading

import pytest

from labkit.clients.pool import MAX_IDLE_PER_HOST, Pool
from labkit.clients.registry_api import open_get
from labkit.measure.own_socket import tcp_info

BODY = b"b" * 300_000


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Handler.peers.append(self.client_address[1])
        close = self.path == "/close"
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(BODY)
        if self.path == "/then-hang-up":
            self.close_connection = True

    def log_message(self, *a):
        pass

    def handle(self):
        try:
            super().handle()
        except ConnectionResetError:         # a client that closed with the body unread: what the test does
            pass


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    Handler.peers = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def fetch(url, pool, read=True):
    got = open_get(None, url, 5, pool=pool)
    body = got.resp.read() if read else got.resp.read(10)
    info = tcp_info(got.sock)
    hop = got.hops[-1]
    got.close()
    return body, hop, info


def test_a_body_read_to_the_end_leaves_its_connection_for_the_next_request(server):
    with Pool() as pool:
        b1, h1, i1 = fetch(f"{server}/a", pool)
        b2, h2, i2 = fetch(f"{server}/b", pool)
    assert b1 == b2 == BODY and (h1["reused"], h2["reused"]) == (False, True)
    assert h1["conn"] == h2["conn"] and len(set(Handler.peers)) == 1 and pool.counts() == {"connections": 1, "reused": 1}
    # the same connection's tcp_info: its counters go on from the first request's (a watch reads them as deltas)
    assert i2["bytes_received"] >= i1["bytes_received"] + len(BODY)


def test_without_a_pool_or_with_the_body_unread_or_connection_close_every_request_dials(server):
    assert fetch(f"{server}/a", None)[1].get("reused") is None and fetch(f"{server}/a", None)[1].get("conn") is None
    with Pool() as pool:
        fetch(f"{server}/a", pool, read=False)            # the body left unread: the connection is closed
        fetch(f"{server}/close", pool)                    # the server says it closes
        fetch(f"{server}/a", pool)
    assert pool.counts() == {"connections": 3, "reused": 0} and len(set(Handler.peers)) == 5


def test_a_connection_the_server_closed_while_idle_is_replaced_once(server):
    with Pool() as pool:
        _, h1, _ = fetch(f"{server}/then-hang-up", pool)  # kept (no Connection: close said), then closed by the server
        _, h2, _ = fetch(f"{server}/a", pool)
    assert h2["reused"] is False and h2["conn"] != h1["conn"]
    assert pool.counts() == {"connections": 2, "reused": 1}      # taken once, found closed, dialled again


def test_at_most_two_idle_connections_per_host_are_kept_as_gos_default(server):
    assert MAX_IDLE_PER_HOST == 2
    pool = Pool()
    opened = [open_get(None, f"{server}/x{i}", 5, pool=pool) for i in range(3)]   # 3 at once: 3 connections
    for got in opened:
        got.resp.read()
        got.close()
    kept = [c for v in pool._idle.values() for c in v]
    assert len(kept) == 2 and all(c.sock is not None for c in kept)
    pool.close()
    assert all(c.sock is None for c in kept) and not pool._idle         # the pull over: its idle ones closed
    with pytest.raises(ValueError):
        Pool(0)
