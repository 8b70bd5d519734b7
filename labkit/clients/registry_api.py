"""The registry's pull API from a client's side: a GET made inside a namespace, and the manifest.

    GET /api/container/<collection>/<name>:<tag>   -> the manifest (its `image` is the download URL)

Over https (the lab with TLS on, or a real registry) the server's certificate is checked against
a `Trust` (a CA file, the name expected); a certificate that does not verify is refused with a
TlsVerifyError naming the host and why, and the connection is closed. `Trust.of` takes `--cacert`,
else REQUESTS_CA_BUNDLE / SSL_CERT_FILE, else the system's CAs; `insecure` checks nothing (and says so).

Any HTTP the server speaks is read by http.client: 1.0 or 1.1, keep-alive or close, Content-Length or
chunked. Redirects are followed as labkit.clients.follow says, each hop (host, status, ms) recorded.
`open_get` hands back the response with a duplicate of its socket's descriptor (`Opened.sock`): a
server that closes after its response (HTTP/1.0) makes http.client drop its own reference, and the
socket's tcp_info is still there to read until the pull is done.

Given a `pool` (labkit.clients.pool.Pool: one per pull, as containers/image keeps one http.Client per pull),
a GET takes an idle keep-alive connection to the same place, and `Opened.close()` gives its connection back
when the body was read to the end and the server keeps it open; each hop says which connection carried it
(`conn`: the client's local port) and whether it was `reused`. Each request's tcp_info is still its own
connection's: the probe's watch reads the counters from the request's first read to its last (deltas).
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ..config.tls_clients import offer as tls_offer
from ..errors import HttpStatusError, TlsSetupError, TlsVerifyError
from ..in_netns import inside
from .follow import REDIRECTS, Follow, RedirectRefused, ca_file, netloc, next_hop
from .pool import Pool

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


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


@dataclass(frozen=True)
class Trust:
    """How an https client checks the server: the CA file to verify against (None: the system's, as
    Python's default does) and the name it must hold (None: the host the URL names, name or address)."""
    cafile: str | None = None
    server_name: str | None = None
    insecure: bool = False          # check nothing (--insecure): said loudly wherever it is used
    source: str = ""                # where cafile came from (--cacert, REQUESTS_CA_BUNDLE, SSL_CERT_FILE)
    offer: str = "this machine"     # what the ClientHello offers (labkit.config.tls_clients: version, suites)

    @classmethod
    def of(cls, cacert: str | None = None, insecure: bool = False, env: Mapping[str, str] | None = None) -> "Trust":
        """A client's trust as the user gave it: --cacert, else the usual environment variables, else the system's."""
        path, source = ca_file(cacert, os.environ if env is None else env)
        if path and not os.path.isfile(path):
            raise TlsSetupError(f"{source} {path}: no such file")
        return cls(path, insecure=insecure, source=source)

    def describe(self) -> str:
        if self.insecure:
            return "INSECURE: the server's certificate is NOT checked (--insecure)"
        return f"certificates checked against {self.cafile} ({self.source})" if self.cafile else \
            "certificates checked against the system's CAs"

    def context(self) -> ssl.SSLContext:
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            return tls_offer(self.offer).context(ctx)
        try:
            return tls_offer(self.offer).context(ssl.create_default_context(cafile=self.cafile))
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(f"CA file {self.cafile}: {exc}") from None


class _TlsConn(_InNamespace, http.client.HTTPSConnection):
    """https: a registry behind TLS (the lab's, verified against its CA; a real one's, as `trust` says)."""

    def __init__(self, host, port, ns, timeout, trust: Trust):
        super().__init__(host, port, timeout=timeout, context=trust.context())
        self.ns, self._name = ns, trust.server_name

    def connect(self):
        if self._name is None:
            return super().connect()
        with inside(self.ns):                 # the address dialled, the name expected from the certificate
            http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._name)


@dataclass
class Opened:
    """A GET answered, its body not yet read: the response, the connection, a duplicate of its socket
    (None where there is none), every hop taken (host, status, ms), and the TLS negotiated ('' for http)."""
    conn: http.client.HTTPConnection
    resp: http.client.HTTPResponse
    sock: socket.socket | None = None
    hops: list[dict] = field(default_factory=list)
    tls: str = ""
    pool: Pool | None = None        # where the connection goes back when the body was read to the end
    key: tuple = ()
    reused: bool = False            # the request went on a kept-alive connection

    @property
    def http(self) -> str:
        """How the server spoke: e.g. 'HTTP/1.0 close' or 'HTTP/1.1 keep-alive chunked'."""
        r = self.resp
        return " ".join(filter(None, [f"HTTP/{r.version / 10:.1f}", "close" if r.will_close else "keep-alive",
                                      "chunked" if r.chunked else ""]))

    @property
    def local(self) -> str:
        """The client's end of the connection, 'address:port' ('' where there is no socket): names the connection."""
        try:
            host, port = self.sock.getsockname()[:2]
            return f"{host}:{port}"
        except (AttributeError, OSError):
            return ""

    def close(self) -> None:
        """Done with the response: its connection kept alive in the pool when it can be (the body read to the
        end, the server not closing, a pool given and not full), else closed."""
        done = self.resp.isclosed() and not self.resp.will_close and self.conn.sock is not None
        self.resp.close()               # first: once in the pool, another thread may send on the connection
        if not (done and self.pool is not None and self.pool.put(self.key, self.conn)):
            self.conn.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _request(ns, url: str, timeout: float, trust: Trust | None, headers: Mapping[str, str] | None = None,
             pool: Pool | None = None, reuse: bool = True) -> Opened:
    u = urlsplit(url)
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    key = (u.scheme, u.hostname, port, ns, trust)
    conn = pool.take(key, reuse) if pool is not None else None
    reused = conn is not None
    if conn is None:
        conn = _TlsConn(u.hostname, port, ns, timeout, trust or Trust()) if tls else _Conn(u.hostname, port, ns, timeout)
    else:
        conn.sock.settimeout(timeout)
    dup = None
    try:
        conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""),
                     headers={"User-Agent": "servelab-pull/1", **(headers or {})})
        dup = _dup(conn.sock)
        negotiated = f"{conn.sock.version()} {conn.sock.cipher()[0]}" if tls else ""
        return Opened(conn, conn.getresponse(), dup, tls=negotiated, pool=pool, key=key, reused=reused)
    except _STALE:
        conn.close()
        if dup is not None:
            dup.close()
        if not reused:
            raise
        return _request(ns, url, timeout, trust, headers, pool, reuse=False)   # closed while idle: once more, dialled
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        raise TlsVerifyError(f"{u.hostname}:{port} refused: certificate verify failed: {exc.verify_message or exc.reason}"
                             f"{' (CA ' + trust.cafile + ')' if trust and trust.cafile else ''}") from None
    except BaseException:
        conn.close()
        if dup is not None:
            dup.close()
        raise


def _dup(sock) -> socket.socket | None:
    """A plain socket on a duplicate of `sock`'s descriptor (tcp_info and the receive queue stay readable
    after http.client lets go of its own), or None."""
    try:
        return socket.socket(fileno=os.dup(sock.fileno()))
    except (AttributeError, OSError):
        return None


def open_get(ns, url: str, timeout: float, trust: Trust | None = None, follow: Follow | None = None,
             headers: Mapping[str, str] | None = None, pool: Pool | None = None) -> Opened:
    """A GET from inside namespace `ns`, redirects followed as `follow` says (default: on this host, up to
    MAX_HOPS), its body not yet read (the caller closes it). An https URL is verified as `trust` says
    (default: the system's CAs and the URL's host). A redirect not followed raises RedirectRefused.
    `headers` go with each request; `Authorization` only to the first URL's host and port (the OCI
    distribution spec: never across host boundaries, opencontainers/distribution-spec
    @967efdc079b91785ad18c77cc4f8991a47feefbf spec.md line 825; a blob's redirect to object storage
    carries its own signature). `pool`: keep-alive connections of one pull (labkit.clients.pool)."""
    follow, start = follow or Follow(), url
    hops: list[dict] = []
    while True:
        t0 = time.perf_counter()
        elsewhere = trust is not None and trust.server_name and urlsplit(url).hostname != urlsplit(start).hostname
        sent = {k: v for k, v in (headers or {}).items()
                if k.lower() != "authorization" or netloc(url) == netloc(start)}
        got = _request(ns, url, timeout, replace(trust, server_name=None) if elsewhere else trust, sent, pool)
        status = got.resp.status
        hops.append({"host": netloc(url), "status": status, "ms": round((time.perf_counter() - t0) * 1e3, 1),
                     **({"conn": got.local, "reused": got.reused} if pool is not None else {})})
        if status not in REDIRECTS:
            got.hops = hops
            return got
        location = got.resp.getheader("Location")
        got.close()
        try:
            url = next_hop(url, status, location, start, follow, len(hops) - 1)
        except RedirectRefused as exc:
            exc.hops = hops                  # the hops taken before the refusal, for the pull's record
            raise


def get(ns, url: str, timeout: float = 10, trust: Trust | None = None, follow: Follow | None = None,
        headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """A whole small GET from inside namespace `ns` (`headers` added to the request): (status, body)."""
    got = open_get(ns, url, timeout, trust, follow, headers)
    try:
        return got.resp.status, got.resp.read()
    finally:
        got.close()


def base_url(host: str, port: int, trust: Trust | None) -> str:
    """The registry's base URL: https when the client is given a Trust, else http."""
    return f"{'https' if trust else 'http'}://{host}:{port}"


def fetch_manifest(ns, host: str, port: int, uri: str, timeout: float = 10, trust: Trust | None = None,
                   follow: Follow | None = None) -> dict:
    status, body = get(ns, f"{base_url(host, port, trust)}/api/container/{uri}", timeout, trust, follow)
    if status != 200:
        raise HttpStatusError(status, f"manifest {uri} from {host}:{port}: HTTP {status} {body[:200]!r}")
    return json.loads(body)
