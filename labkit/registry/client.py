"""The registry's pull API from a client's side: a GET made inside a namespace, and the manifest.

    GET /api/container/<collection>/<name>:<tag>   -> the manifest (its `image` is the download URL)

Over https (the lab with TLS on, or a real registry) the server's certificate is checked against
a `Trust` (a CA file, the name expected); a certificate that does not verify is refused with a
TlsVerifyError naming the host and why, and the connection is closed.
"""
from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import HttpStatusError, TlsSetupError, TlsVerifyError
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


@dataclass(frozen=True)
class Trust:
    """How an https client checks the server: the CA file to verify against (None: the system's, as
    Python's default does) and the name it must hold (None: the host the URL names, name or address)."""
    cafile: str | None = None
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.cafile)
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


def open_get(ns, url: str, timeout: float, trust: Trust | None = None
             ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """A GET from inside namespace `ns`, its response not yet read (the caller closes the connection).
    An https URL is verified as `trust` says (default: the system's CAs and the URL's host)."""
    u = urlsplit(url)
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    conn = _TlsConn(u.hostname, port, ns, timeout, trust or Trust()) if tls else _Conn(u.hostname, port, ns, timeout)
    try:
        conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""),
                     headers={"User-Agent": "servelab-pull/1"})
        return conn, conn.getresponse()
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        raise TlsVerifyError(f"{u.hostname}:{port} refused: certificate verify failed: {exc.verify_message or exc.reason}"
                             f"{' (CA ' + trust.cafile + ')' if trust and trust.cafile else ''}") from None
    except BaseException:
        conn.close()
        raise


def get(ns, url: str, timeout: float = 10, trust: Trust | None = None) -> tuple[int, bytes]:
    """A whole small GET from inside namespace `ns`: (status, body)."""
    conn, resp = open_get(ns, url, timeout, trust)
    try:
        return resp.status, resp.read()
    finally:
        conn.close()


def base_url(host: str, port: int, trust: Trust | None) -> str:
    """The registry's base URL: https when the client is given a Trust, else http."""
    return f"{'https' if trust else 'http'}://{host}:{port}"


def fetch_manifest(ns, host: str, port: int, uri: str, timeout: float = 10, trust: Trust | None = None) -> dict:
    status, body = get(ns, f"{base_url(host, port, trust)}/api/container/{uri}", timeout, trust)
    if status != 200:
        raise HttpStatusError(status, f"manifest {uri} from {host}:{port}: HTTP {status} {body[:200]!r}")
    return json.loads(body)
