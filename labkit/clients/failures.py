"""What went wrong in a pull, by kind: the words failures are counted by in every table.

    connect     no connection: refused, no route, name not resolved, the server's certificate not verified
    reset       the connection was reset or closed under the client (also before any answer)
    http        the server answered with a status other than 200 (manifest or image)
    short body  the connection ended before Content-Length bytes arrived
    checksum    every byte arrived but the sha256 is not the manifest's
    timeout     a read waited longer than the idle timeout, or the pull passed its deadline
    other       anything else (a manifest that is not JSON, a bug): the harness's own failures

Pure: classifies exceptions by type and errno, never by message text.
"""
from __future__ import annotations

import errno
import http.client
import socket

from ..clients.oci.blobs import DigestMismatch
from ..errors import HttpStatusError, TlsVerifyError
from ..records import HARNESS_KINDS, KINDS

__all__ = ["KINDS", "HARNESS_KINDS", "HttpStatusError", "check_by", "classify", "describe", "outcome"]
_CONNECT_ERRNOS = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL,
                   errno.ENETDOWN, errno.EHOSTDOWN}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def classify(exc: BaseException) -> str:
    """The kind (one of KINDS) of a failed pull's exception."""
    if isinstance(exc, HttpStatusError):
        return "http"
    if isinstance(exc, DigestMismatch):                     # an OCI manifest or config (labkit.clients.oci)
        return "checksum"
    if isinstance(exc, http.client.IncompleteRead):
        return "short body"
    if isinstance(exc, TimeoutError):                       # socket.timeout is TimeoutError
        return "timeout"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                        ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, TlsVerifyError)):
        return "connect"
    if isinstance(exc, OSError) and exc.errno in _CONNECT_ERRNOS:
        return "connect"
    if isinstance(exc, OSError) and exc.errno in _RESET_ERRNOS:
        return "reset"
    return "other"


def check_by(verify: str, expect_sha256: str | None, length: int) -> str:
    """What a body is checked by: its sha256 when asked and one is known, else its length when the
    server said it (Content-Length; a chunked body says none), else nothing ("unverified", reported)."""
    if verify == "sha256" and expect_sha256:
        return "sha256"
    return "length" if length >= 0 else "unverified"


def describe(kind: str, received: int, length: int, timeout: float, detail: str = "") -> str:
    """A failed pull in words that name what the server did (`detail`: the exception's own text, kept)."""
    of = f"{received} of {length} bytes" if length >= 0 else f"{received} bytes (no Content-Length)"
    said = {
        "short body": f"short body: the server ended the body after {of}",
        "checksum": f"sha256 mismatch: {of} arrived, their sha256 is not the manifest's"
                    + (" (the server sent as many bytes as its Content-Length said)" if received == length else ""),
        "timeout": f"timeout: the server sent nothing for {timeout:g} s after {of}" if received
                   else f"timeout: no answer from the server within {timeout:g} s",
        "reset": f"reset: the server closed or reset the connection after {of}" if received
                 else "reset: the server closed or reset the connection before answering",
    }.get(kind, "")
    return f"{said} [{detail}]" if said and detail else said or detail


def outcome(received: int, length: int, sha256_ok: bool | None) -> str:
    """The kind of a pull whose body ended normally: "" (good), "short body" or "checksum"."""
    complete = received == length if length >= 0 else received > 0
    return "short body" if not complete else "checksum" if sha256_ok is False else ""
