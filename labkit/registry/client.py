"""The registry's pull API from a client's side: a GET made inside a namespace, and the manifest.

    GET /api/container/<collection>/<name>:<tag>   -> the manifest (its `image` is the download URL)
"""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from ..errors import HttpStatusError
from ..in_netns import inside


class _InNamespace:
    """A connection whose socket is made inside network namespace `ns` (TLS, if any, on top of it)."""
    ns: str | None

    def connect(self):
        with inside(self.ns):
            super().connect()


class _Conn(_InNamespace, http.client.HTTPConnection):
    def __init__(self, host, port, ns, timeout):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns


class _TlsConn(_InNamespace, http.client.HTTPSConnection):
    """https, for `labkit probe` against a real registry (certificates checked as Python's default does)."""

    def __init__(self, host, port, ns, timeout):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns


def open_get(ns, url: str, timeout: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """A GET from inside namespace `ns`, its response not yet read (the caller closes the connection)."""
    u = urlsplit(url)
    tls = u.scheme == "https"
    conn = (_TlsConn if tls else _Conn)(u.hostname, u.port or (443 if tls else 80), ns, timeout)
    conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""), headers={"User-Agent": "servelab-pull/1"})
    return conn, conn.getresponse()


def get(ns, url: str, timeout: float = 10) -> tuple[int, bytes]:
    """A whole small GET from inside namespace `ns`: (status, body)."""
    conn, resp = open_get(ns, url, timeout)
    try:
        return resp.status, resp.read()
    finally:
        conn.close()


def fetch_manifest(ns, host: str, port: int, uri: str, timeout: float = 10) -> dict:
    status, body = get(ns, f"http://{host}:{port}/api/container/{uri}", timeout)
    if status != 200:
        raise HttpStatusError(status, f"manifest {uri} from {host}:{port}: HTTP {status} {body[:200]!r}")
    return json.loads(body)
