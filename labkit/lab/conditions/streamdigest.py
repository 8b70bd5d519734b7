"""Verify-and-discard for the shared file system's server: each file's writes hashed as they arrive (pure).

    d = StreamDigest()
    d.add(offset, data)      # a write request, in any order: bytes past a gap wait (up to `hold` bytes)
    d.value()                # labkit.clients.streamed.Streamed: sha256 so far, bytes hashed, whole or not

A writer without a writeback cache sends its requests one after another (FUSE: write() returns when
its requests are answered), so a pull's file arrives in order; a gap is held until it fills, a rewrite
of hashed bytes (or a gap held past `hold`) marks the digest broken: the file then cannot be verified.
"""
from __future__ import annotations

import hashlib
import threading

from ...clients.streamed import Streamed
from ...units import MiB

HOLD = 64 * MiB


class StreamDigest:
    def __init__(self, hold: int = HOLD):
        self.hold = hold
        self._h = hashlib.sha256()
        self.done = 0                       # bytes hashed, from offset 0
        self.size = 0                       # the file's length as written
        self.broken = False
        self._waiting: dict[int, bytes] = {}
        self._held = 0
        self._lock = threading.Lock()

    def add(self, offset: int, data: bytes) -> None:
        with self._lock:
            self.size = max(self.size, offset + len(data))
            if self.broken:
                return
            if offset < self.done:
                self.broken = True           # bytes already hashed written again: the digest no longer says
                return
            if offset > self.done:
                self._waiting[offset] = bytes(data)
                self._held += len(data)
                if self._held > self.hold:
                    self.broken, self._waiting, self._held = True, {}, 0
                return
            self._h.update(data)
            self.done += len(data)
            while self.done in self._waiting:
                chunk = self._waiting.pop(self.done)
                self._held -= len(chunk)
                self._h.update(chunk)
                self.done += len(chunk)

    def value(self) -> Streamed:
        with self._lock:
            whole = not self.broken and not self._waiting and self.done == self.size
            return Streamed(self._h.copy().hexdigest(), self.done, whole)
