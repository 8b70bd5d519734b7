"""Requests made as an OCI registry wants them: the `/v2/` ping, then every GET with the authorization
the registry asked for, a 401 answered once (a token fetched from the challenge's realm, or Basic).

The HTTP is given: `get(url, headers)` returns an opened response (labkit.clients.registry_api.Opened:
`.resp` with status, headers and the body unread, `.hops`, `.close()`), made wherever the caller makes
connections (a network namespace, TLS checked as it says) and following redirects; the spec has a
client follow them and never carry `Authorization` to another host (opencontainers/distribution-spec
@967efdc079b91785ad18c77cc4f8991a47feefbf spec.md line 825): the caller's `get` drops it at a host change.
One Session is shared by the threads pulling layers at once: a token is fetched by one of them. A Session is
one pull's client (containers/image makes one http.Client per pull): the connections its `get` keeps alive
between requests (`pool`, labkit.clients.pool.Pool, if the caller gives one) are closed by `close()`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import HttpStatusError
from .auth import AuthError, Challenge, Credentials, parse_challenge, read_token
from .reference import Reference

Get = Callable[[str, dict], Any]
UA = "servelab-oci/1"


class OciError(HttpStatusError):
    """The registry did not answer as the distribution spec says (no /v2/, a manifest missing, HTTP 5xx)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(status, message)


@dataclass
class Session:
    ref: Reference
    get: Get
    credentials: Credentials | None = None
    authorization: str = ""                         # the header value in use ("" anonymous)
    steps: list[dict] = field(default_factory=list)  # ping, token, manifest, index, config: each timed
    pool: Any = None                                # the keep-alive connections `get` uses, if any
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def auth_kind(self) -> str:
        kind = self.authorization.split(" ", 1)[0].lower()
        return {"bearer": "token", "basic": "basic"}.get(kind, "anonymous")

    def close(self) -> None:
        """The pull is over: its idle keep-alive connections are closed."""
        if self.pool is not None:
            self.pool.close()

    def step(self, name: str, url: str, t0: float, status: int, hops: list | None = None, **more) -> dict:
        row = {"step": name, "url": url, "status": status, "ms": round((time.perf_counter() - t0) * 1e3, 1),
               "hops": list(hops or []), **more}
        self.steps.append(row)
        return row

    def ping(self) -> dict:
        """GET /v2/ (end-1): 200 or 401 say an OCI registry answers; a 401's challenge is met here."""
        url = f"{self.ref.base}/v2/"
        t0 = time.perf_counter()
        got = self.get(url, self._headers())
        try:
            status, challenge = got.resp.status, got.resp.getheader("WWW-Authenticate")
            got.resp.read()
        finally:
            got.close()
        row = self.step("ping", url, t0, status, got.hops, api=got.resp.getheader("Docker-Distribution-API-Version") or "")
        if status == 401:
            self.authenticate(parse_challenge(challenge, url), url)
        elif status != 200:
            raise OciError(f"{url}: HTTP {status}: not an OCI distribution API (it answers /v2/ with 200 or 401); "
                          "an sregistry: give URL collection/name:tag (or --api sregistry)")
        return row

    def _headers(self, extra: dict | None = None) -> dict:
        h = {"User-Agent": UA, **(extra or {})}
        if self.authorization:
            h["Authorization"] = self.authorization
        return h

    def open(self, url: str, headers: dict | None = None):
        """A GET with the authorization in use; a 401 met once (its challenge), then AuthError if refused again."""
        sent = self.authorization
        got = self.get(url, self._headers(headers))
        if got.resp.status != 401:
            return got
        challenge = got.resp.getheader("WWW-Authenticate")
        got.close()
        with self._lock:
            if self.authorization == sent:          # another thread may have fetched the token meanwhile
                self.authenticate(parse_challenge(challenge, url), url, refused=bool(sent))
        got = self.get(url, self._headers(headers))
        if got.resp.status == 401:
            got.close()
            raise AuthError(f"{url}: HTTP 401 again with {self.auth_kind} authorization"
                            + (f" (credentials from {self.credentials.source})" if self.credentials else ""))
        return got

    def authenticate(self, ch: Challenge, url: str, refused: bool = False) -> None:
        """Meet a challenge: Basic with the credentials, or a Bearer token from the realm."""
        if ch.scheme == "basic":
            if self.credentials is None:
                raise AuthError(f"{url}: the registry asks for Basic credentials (realm {ch.realm!r}): give "
                                "--user USER:PASSWORD, or an auths entry in $REGISTRY_AUTH_FILE or ~/.docker/config.json")
            if refused and self.authorization == self.credentials.basic:
                raise AuthError(f"{url}: the registry refused the credentials from {self.credentials.source}")
            self.authorization = self.credentials.basic
            return
        scope = ch.scope or f"repository:{self.ref.repository}:pull"
        turl = ch.token_url(scope)
        t0 = time.perf_counter()
        try:
            got = self.get(turl, {"User-Agent": UA, **({"Authorization": self.credentials.basic}
                                                       if self.credentials else {})})
        except OSError as exc:
            raise AuthError(f"token endpoint {ch.realm}: the request failed: {type(exc).__name__}: {exc}") from None
        try:
            status, body = got.resp.status, got.resp.read()
        finally:
            got.close()
        self.step("token", turl, t0, status, got.hops, service=ch.service, scope=scope)
        if status != 200:
            who = f"as {self.credentials.username} ({self.credentials.source})" if self.credentials else "anonymously"
            raise AuthError(f"token endpoint {ch.realm}: HTTP {status} {body[:160]!r} asking {who} for "
                            f"service={ch.service!r} scope={scope!r}", status)
        self.authorization = "Bearer " + read_token(body, ch.realm)
