"""What went wrong in a pull, by kind: the words failures are counted by in every table.

    connect     no connection: refused, no route, name not resolved
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

from ..errors import HttpStatusError
from ..records import HARNESS_KINDS, KINDS

__all__ = ["KINDS", "HARNESS_KINDS", "HttpStatusError", "classify", "outcome"]
_CONNECT_ERRNOS = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL,
                   errno.ENETDOWN, errno.EHOSTDOWN}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def classify(exc: BaseException) -> str:
    """The kind (one of KINDS) of a failed pull's exception."""
    if isinstance(exc, HttpStatusError):
        return "http"
    if isinstance(exc, http.client.IncompleteRead):
        return "short body"
    if isinstance(exc, TimeoutError):                       # socket.timeout is TimeoutError
        return "timeout"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                        ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return "connect"
    if isinstance(exc, OSError) and exc.errno in _CONNECT_ERRNOS:
        return "connect"
    if isinstance(exc, OSError) and exc.errno in _RESET_ERRNOS:
        return "reset"
    return "other"


def outcome(received: int, length: int, sha256_ok: bool | None) -> str:
    """The kind of a pull whose body ended normally: "" (good), "short body" or "checksum"."""
    complete = received == length if length >= 0 else received > 0
    return "short body" if not complete else "checksum" if sha256_ok is False else ""
