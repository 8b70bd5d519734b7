"""What an https client offers in its ClientHello: the highest TLS version and the cipher suites. Pure data.

    offer("centos7").suites()      # the TLS 1.2 suites a CentOS 7 compute node offers, as this machine names them

The server picks from this offer (labkit.config.cpu_models.negotiated), so the lab's clients must offer what the
operator's do: a client that offers TLS 1.3 or ChaCha20-Poly1305 can negotiate what his cannot.

- `this machine`: Python's ssl.create_default_context on this machine's OpenSSL (3.x): TLS 1.2 and 1.3, with
  ChaCha20-Poly1305 among its suites. labkit's clients as they always were.
- `centos7`: the seed's compute nodes, CentOS 7 with OpenSSL 1.0.2k under Python 2.7 (Singularity 2.6.1's
  urllib2, sregistry-cli's requests): TLS 1.2 at most (TLS 1.3 came with OpenSSL 1.1.1) and Python 2.7's default
  cipher string (python/cpython 2.7.9's Lib/ssl.py `_DEFAULT_CIPHERS`, set by `create_default_context`, PEP 466,
  which CentOS 7's python 2.7.5 carries as a backport), less what OpenSSL 1.0.2k does not have: ChaCha20-Poly1305
  and the CCM suites (openssl/openssl 32bb7054 NEWS.md, "Major changes between OpenSSL 1.0.2h and OpenSSL 1.1.0":
  "Support for ChaCha20 and Poly1305 added to libcrypto and libssl", "CCM ciphersuites"; OpenSSL_1_0_2k 081314d0
  has no crypto/chacha), ARIA (1.1.1), and TLS 1.3 (ibid., "between OpenSSL 1.1.0i and OpenSSL 1.1.1": "Support
  for TLSv1.3 added").
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

PY27_DEFAULT_CIPHERS = ("ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:ECDH+HIGH:DH+HIGH:"
                        "ECDH+3DES:DH+3DES:RSA+AESGCM:RSA+AES:RSA+HIGH:RSA+3DES:!aNULL:!eNULL:!MD5")
NOT_IN_OPENSSL_1_0_2K = "!CHACHA20:!AESCCM:!ARIA"


@dataclass(frozen=True)
class TlsOffer:
    name: str
    max_version: str | None       # "TLSv1.2" (ssl.TLSVersion's name), None: what this machine's OpenSSL allows
    ciphers: str | None           # an OpenSSL cipher string for TLS 1.2 and below, None: Python's default
    about: str

    def context(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        """`ctx` (a client context) made to offer this: its highest version and its suites."""
        if self.max_version:
            ctx.maximum_version = ssl.TLSVersion[self.max_version.replace(".", "_")]
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)
        return ctx

    def suites(self) -> list[str]:
        """The suites offered, in order, as this machine's OpenSSL names them (TLS 1.3's only if it may speak it)."""
        ctx = self.context(ssl.create_default_context())
        names = [c["name"] for c in ctx.get_ciphers()]
        return [n for n in names if not n.startswith("TLS_")] if self.max_version else names


OFFERS = {
    "this machine": TlsOffer("this machine", None, None, "Python's default on this machine's OpenSSL: TLS 1.2 "
                             "and 1.3, ChaCha20-Poly1305 offered"),
    "centos7": TlsOffer("centos7", "TLSv1.2", f"{PY27_DEFAULT_CIPHERS}:{NOT_IN_OPENSSL_1_0_2K}",
                        "CentOS 7's OpenSSL 1.0.2k under Python 2.7 (Singularity 2.6.1, sregistry-cli): TLS 1.2 at "
                        "most, Python 2.7's default suites, no ChaCha20-Poly1305"),
}


def offer(name: str) -> TlsOffer:
    if name not in OFFERS:
        raise ValueError(f"client.tls_offer {name!r}: one of {', '.join(OFFERS)}")
    return OFFERS[name]
