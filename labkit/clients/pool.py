"""Connections kept alive between the requests of one client's pull, as a Go client keeps them.

containers/image (podman, skopeo, CRI-O, Apptainer's docker://) makes one `http.Client` per image source
and sends every request of the pull through it: the /v2/ ping, the token, the manifests, the config and the
layers (containers/image @df7e80d2d19872b61f352a8a182ec934dc0c2346 docker/docker_image_src.go line 147,
newDockerClientFromRef per source; docker/docker_client.go lines 913-919, detectPropertiesHelper:
`tr := tlsclientconfig.NewTransport()` ... `c.client = &http.Client{Transport: tr}`). That transport keeps
HTTP/1.1 connections alive (pkg/tlsclientconfig/tlsclientconfig.go lines 88-100: DisableKeepAlives unset,
IdleConnTimeout 90 s, MaxIdleConns 100; its TLSClientConfig set, so no HTTP/2 unless forced) and leaves
MaxIdleConnsPerHost at Go's default, 2 (golang/go @a925402b62c06d1cfe2b345cba0b11fa06b8401d
src/net/http/transport.go: `const DefaultMaxIdleConnsPerHost = 2`, used when the field is zero): layers
fetched 6 at once open up to 6 connections, and at most 2 per host stay idle for the next request; the
most recently used idle connection is taken first (`idleConn ... // most recently used at end`).

`Pool` is that: a connection goes back to it when its response was read to the end and the server did not
say it closes (labkit.clients.registry_api.Opened.close); a request takes an idle one to the same scheme,
host, port, namespace and trust, or dials. A reused connection that the server had closed meanwhile fails
before any answer; the GET is then sent once more on a new connection (Go's Transport does the same, its doc
comment in transport.go: it "only retries a request upon encountering a network error if the connection has
been already been used successfully and if the request is idempotent").
"""
from __future__ import annotations

import threading
from collections.abc import Hashable

MAX_IDLE_PER_HOST = 2          # Go's DefaultMaxIdleConnsPerHost, containers/image's transport


class Pool:
    """The idle keep-alive connections of one pull, by where they go; counts what it dialled and reused."""

    def __init__(self, max_idle_per_host: int = MAX_IDLE_PER_HOST):
        if max_idle_per_host < 1:
            raise ValueError(f"max idle connections per host {max_idle_per_host}: at least 1")
        self.max_idle_per_host = max_idle_per_host
        self.dialled = self.reused = 0
        self._idle: dict[Hashable, list] = {}
        self._lock = threading.Lock()

    def take(self, key: Hashable, reuse: bool = True):
        """The most recently used idle connection to `key`, or None: the caller dials (counted in `dialled`);
        `reuse` False: it dials whatever is idle (a kept connection was found closed by the server)."""
        with self._lock:
            idle = self._idle.get(key)
            if idle and reuse:
                self.reused += 1
                return idle.pop()
            self.dialled += 1
            return None

    def put(self, key: Hashable, conn) -> bool:
        """Keep `conn` idle for the next request to `key`; False (the caller closes it) when as many are kept."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) >= self.max_idle_per_host:
                return False
            idle.append(conn)
            return True

    def close(self) -> None:
        """Close every idle connection (the pull is over)."""
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()

    def counts(self) -> dict:
        return {"connections": self.dialled, "reused": self.reused}

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
