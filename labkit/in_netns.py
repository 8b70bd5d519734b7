"""Entering a network namespace from Python: sockets made inside stay in that namespace."""
from __future__ import annotations

import contextlib
import ctypes
import os

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(ns: str | None):
    """Run the calling thread inside network namespace `ns` (None: stay where it is)."""
    if ns is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def exec_prefix(ns: str | None) -> list[str]:
    """The command prefix that runs a program inside namespace `ns`."""
    return ["ip", "netns", "exec", ns] if ns else []
