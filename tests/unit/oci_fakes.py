"""Crafted registry answers for the OCI client's unit tests: a `get(url, headers)` served from a table."""
from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass, field


@dataclass
class Resp:
    """`cut_after`: the body ends there (cut="eof", a short read) or the connection resets (cut="reset")."""
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    cut_after: int | None = None
    cut: str = "eof"
    chunked: bool = False
    _pos: int = 0

    def getheader(self, name, default=None):
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower(), default)

    def read(self):
        return self.body

    def readinto(self, buf) -> int:
        end = len(self.body) if self.cut_after is None else min(self.cut_after, len(self.body))
        if self._pos >= end:
            if self.cut == "reset" and end < len(self.body):
                raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            return 0
        n = min(len(buf), end - self._pos)
        buf[:n] = self.body[self._pos:self._pos + n]
        self._pos += n
        return n


@dataclass
class Opened:
    resp: Resp
    hops: list = field(default_factory=list)
    sock: object = None
    http: str = "HTTP/1.1 keep-alive"
    tls: str = ""
    closed: bool = False

    def close(self):
        self.closed = True


class Registry:
    """routes: url (no query) -> a function (url, headers) -> Resp, or a Resp; every request recorded."""

    def __init__(self, routes: dict):
        self.routes, self.requests = routes, []

    def get(self, url: str, headers: dict) -> Opened:
        self.requests.append((url, dict(headers)))
        route = self.routes.get(url.split("?")[0])
        resp = Resp(404, b"not here") if route is None else route(url, headers) if callable(route) else route
        return Opened(resp, [{"host": url.split("/")[2], "status": resp.status, "ms": 0.1}])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(layers: list[bytes], config: bytes = b"{}", media: str = "application/vnd.oci.image.manifest.v1+json") -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": media,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                                  "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(b),
                                   "size": len(b)} for b in layers]}).encode()


def index(entries: list[tuple[str, bytes]], media: str = "application/vnd.oci.image.index.v1+json") -> bytes:
    out = []
    for plat, body in entries:
        os_, arch, *var = plat.split("/")
        out.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(body), "size": len(body),
                    "platform": {"os": os_, "architecture": arch, **({"variant": var[0]} if var else {})}})
    return json.dumps({"schemaVersion": 2, "mediaType": media, "manifests": out}).encode()
