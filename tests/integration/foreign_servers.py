"""Registries the lab did not build, for tests/integration/test_foreign_servers.py.

Each is a program of its own on 127.0.0.1, started by the test and ended by its process id:

    python-http.server  `python -m http.server` over a directory (HTTP/1.0, the connection closed after each response)
    nginx               nginx serving the same directory as static files (HTTP/1.1 keep-alive)
    redirect            the manifest's image URL answers 301 (same host) then 307 to the file on another
                        host (127.0.0.2; the `files` server below), as sregistry's MinIO redirect does
    chunked             HTTP/1.1 chunked bodies, no Content-Length
    tls                 https with a certificate from a private CA (made with `cryptography`, as the lab's)
    stall               sends half the image, then nothing until the client goes
    close-early         Content-Length says the whole image; half is sent and the connection closed
    wrong-length        Content-Length says 1000 bytes less than it sends

This file runs as `python foreign_servers.py MODE DIR [CERT KEY]`: it serves DIR (a manifest at
api/container/lib/img:1 naming img.bin; lib/nosha:1 gives no sha256; `BASE` in a manifest becomes
the scheme and Host the request came with, as sregistry's build_absolute_uri does) and prints one
JSON line with its address(es) once it listens. The handlers use http.server; the misbehaviours
write the body by hand.
"""
from __future__ import annotations

import hashlib
import json
import os
import ssl
import sys
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

IMAGE = "img.bin"
URI, NOSHA_URI = "lib/img:1", "lib/nosha:1"
OTHER_HOST = "127.0.0.2"            # loopback too, but another host name than 127.0.0.1
MODES = ("redirect", "chunked", "tls", "stall", "close-early", "wrong-length")


def write_tree(root: Path, base: str, size: int, image_path: str = "/" + IMAGE) -> str:
    """DIR with the image (`size` bytes) and its two manifests naming `base + image_path`; the sha256."""
    data = os.urandom(size)
    (root / IMAGE).write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    (root / "api" / "container" / "lib").mkdir(parents=True, exist_ok=True)
    for uri, version in ((URI, sha), (NOSHA_URI, "latest")):
        (root / "api" / "container" / uri).write_text(json.dumps(
            {"image": base + image_path, "version": version, "name": uri, "collection": "lib"}))
    return sha


class Foreign(BaseHTTPRequestHandler):
    """One of MODES over the files in `root`; HTTP/1.1 (keep-alive unless said otherwise)."""
    protocol_version = "HTTP/1.1"

    def __init__(self, *a, mode: str, root: Path, other: str = "", **kw):
        self.mode, self.root, self.other = mode, root, other
        super().__init__(*a, **kw)

    def log_message(self, *_a):
        pass

    def _head(self, status: int, length: int | None, **headers):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()

    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        if self.mode == "redirect" and path == "/download/" + IMAGE:
            return self._head(301, 0, Location="/moved/" + IMAGE)                   # same host
        if self.mode == "redirect" and path == "/moved/" + IMAGE:
            return self._head(307, 0, Location=f"{self.other}/{IMAGE}?X-Amz-Signature=abc")   # another host
        f = self.root / path.lstrip("/")
        if not f.is_file():
            return self._head(404, 0)
        data = f.read_bytes()
        if path.startswith("/api/"):
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            data = data.replace(b"BASE", f"{scheme}://{self.headers['Host']}".encode())
        if path.startswith("/api/") or self.mode in ("redirect", "tls"):
            self._head(200, len(data))
            return self.wfile.write(data)
        half = len(data) // 2
        if self.mode == "chunked":
            self._head(200, None, Transfer_Encoding="chunked")
            for i in range(0, len(data), 256 * 1024):
                block = data[i:i + 256 * 1024]
                self.wfile.write(b"%x\r\n%b\r\n" % (len(block), block))
            return self.wfile.write(b"0\r\n\r\n")
        if self.mode == "stall":
            self._head(200, len(data))
            self.wfile.write(data[:half])
            self.wfile.flush()
            end = time.monotonic() + 120                 # until the client goes (bounded all the same)
            while time.monotonic() < end and not _gone(self.connection):
                time.sleep(0.1)
            return
        if self.mode == "close-early":
            self._head(200, len(data), Connection="close")
            self.wfile.write(data[:half])
            self.close_connection = True
            return
        if self.mode == "wrong-length":
            self._head(200, len(data) - 1000, Connection="close")
            self.wfile.write(data)
            self.close_connection = True


def _gone(sock) -> bool:
    """The client closed its end (a read finds EOF, or the connection was reset)."""
    import select
    import socket
    try:
        r, _, _ = select.select([sock], [], [], 0)
        return bool(r) and not sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return True


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def main(argv: list[str]) -> None:
    mode, root = argv[0], Path(argv[1])
    other = ""
    if mode == "redirect":           # the file server on another host: where the 307 points
        files = ThreadingHTTPServer((OTHER_HOST, 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
        files.RequestHandlerClass.log_message = lambda *a: None
        _serve(files)
        other = f"http://{OTHER_HOST}:{files.server_address[1]}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Foreign, mode=mode, root=root, other=other))
    server.daemon_threads = True
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(argv[2], argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    scheme = "https" if mode == "tls" else "http"
    print(json.dumps({"base": f"{scheme}://127.0.0.1:{server.server_address[1]}", "other": other}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
