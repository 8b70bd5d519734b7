"""A link's bandwidth as a queue: requests are sent one after another at `rate` bytes/s.

Pure and thread-safe: `reserve(n)` books the link for n bytes after everything booked before
and returns how long the caller waits until its bytes are through (queueing + sending). A
shared file system's per-node bandwidth (labkit.lab.conditions.sharedfs) is one of these in each compute
node's FUSE process: the node's writers queue on it, other nodes have their own.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LinkQueue:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        if not rate > 0:
            raise ValueError(f"link rate {rate!r}: must be > 0 bytes/s")
        self.rate, self.clock = float(rate), clock
        self._free_at = 0.0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> float:
        """Seconds from now until `n` bytes booked after every earlier booking have been sent."""
        with self._lock:
            now = self.clock()
            self._free_at = max(now, self._free_at) + n / self.rate
            return self._free_at - now
