"""Kind `labkit`: labkit's own verifying client (labkit.clients.puller), in this process, one thread a pull.

The manifest, then the image in 1 MiB reads, its length and sha256 checked as it arrives; the bytes
discarded (dest=memory) or written to a file under the destination. Its CPU is the pulling threads'
own CPU time (and their run-queue wait), so a pull costs no process start-up. Where the compute node's CPU
is held by a group of its own (a time-dilated lab: `Where.own_process`), the same pulls run in a child
process that joins it (labkit.clients.own_child).
"""
from __future__ import annotations

import os
import threading
import time

from ..records import PullResult, Verify
from .kind import ClientKind, Target, Where
from .own_child import pull_in_child
from .program import check_room
from .puller import pull, pull_parallel


class Own(ClientKind):
    name = "labkit"
    cpu = "threads"
    discards = True

    def pull(self, t: Target, where: Where, parallel: int = 1, verify: Verify = "sha256", timeout: float = 30,
             deadline: float = 600, first_byte: threading.Event | None = None) -> list[PullResult]:
        if where.own_process:        # a compute node's CPU group holds the pulls (labkit.clients.own_child)
            return pull_in_child(t, where, self.settings, parallel, verify, timeout, deadline, first_byte)
        sinks = None
        if self.settings.writes and where.dest_root is not None:
            if where.keeps:
                check_room(where.dest_root, parallel, t.size)
            tag = f"{os.getpid()}-{time.monotonic_ns()}"
            sinks = [where.dest_root / f"{tag}-{i}.sif" for i in range(parallel)]
        try:
            if parallel == 1:
                return [pull(t.ns, t.host, t.port, t.uri, t.sha256, timeout=timeout, deadline=deadline, verify=verify,
                             first_byte=first_byte, sink=sinks[0] if sinks else None, trust=t.trust)]
            return pull_parallel(t.ns, t.host, t.port, t.uri, parallel, t.sha256, timeout=timeout, deadline=deadline,
                                 verify=verify, sinks=sinks, trust=t.trust)
        finally:
            for s in sinks or []:
                s.unlink(missing_ok=True)
