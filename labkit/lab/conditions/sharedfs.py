"""A shared file system as compute nodes see it (NFS, GPFS): the destination `client.dest = shared-fs`.

    server   one directory in memory (/dev/shm/servelab-<lab>-sharedfs): every node sees the same tree
    node     one FUSE mount per compute node (labkit.lab.conditions.delayfs.DelayMount), its own process:
             each write request of `fs_request_kib` waits `fs_delay_ms` (requests overlap, up to the
             threads libfuse serves at once) and the node's requests queue on its own link of
             `fs_node_mbps` (labkit.lab.conditions.bucket.LinkQueue). One stream is slow, streams on a node
             add up to its bandwidth, nodes add up.

What it keeps: nothing, unless `client.fs_keep`. Each node's FUSE process streams every file's writes into
a sha256 (labkit.lab.conditions.delayfs.DiscardPassthrough) and the backing file only grows to its length
(sparse), so 40 pulls of 1.5 GiB from 8 nodes need no 60 GiB of memory; the client reads the digest back
(labkit.clients.streamed) instead of hashing a file whose bytes are gone.

Why it binds within the pull at any image size: the mount has no writeback cache (FUSE's default),
so the kernel sends a write() to the FUSE process as requests of at most max_write bytes, one
after another, and write() returns only when they are answered. No dirty page stands between
the client and the delay, as it does on a local disk (where a write ceiling shows only after
the disk's dirty limit: `client.dirty_mib`). A real NFS client buffers more than this before
close() flushes it; this is the shared file system at its server's pace, what a pull of an
image far larger than the client's dirty limit sees.

Everything is recorded (labkit.lab.host.ownership) and ended by its own ids, as the lab's disks are.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ...config.settings import ClientSettings
from ..host import ownership
from ...units import KiB
from .delayfs import DelayMount

SHM = Path("/dev/shm")


class SharedFs:
    def __init__(self, lab: str, run_dir: Path, nodes: tuple[str, ...]):
        self.lab, self.nodes = lab, nodes
        self.server = SHM / f"servelab-{lab}-sharedfs"
        self.mounts = {n: run_dir / "sharedfs" / n for n in nodes}
        self.fuse: dict[str, DelayMount] = {}
        self.settings: ClientSettings | None = None

    def dest_root(self, node: str | None = None) -> Path:
        """Where a client on `node` (default: the first compute node) writes: its mount's pulls/."""
        return self.mounts[node or self.nodes[0]] / "pulls"

    def up(self, c: ClientSettings) -> list[str]:
        self.settings = c
        ownership.own(self.lab, "client:sharedfs", "dir", {"path": str(self.server)})
        (self.server / "pulls").mkdir(parents=True, exist_ok=True)
        try:
            for node, mnt in self.mounts.items():
                m = DelayMount(self.server, mnt, delay_ms=c.fs_delay_ms, max_write=c.fs_request_kib * KiB,
                               write_rate=c.fs_node_mbps * 1e6, discard=not c.fs_keep)
                m.start()
                self.fuse[node] = m
                ownership.own(self.lab, f"client:sharedfs@{node}", "delaymount", m.record())
        except BaseException:
            self.down()
            raise
        return [f"client: shared file system, {c.fs_request_kib} KiB write requests, {c.fs_delay_ms:g} ms each, "
                f"{c.fs_node_mbps:g} MB/s per node ({len(self.mounts)} node mount(s), FUSE pids "
                f"{', '.join(str(m.pid) for m in self.fuse.values())}); "
                + ("the bytes kept" if c.fs_keep else "each file verified by a sha256 streamed as it arrives, "
                   "its bytes dropped")]

    @property
    def keeps(self) -> bool:
        """Whether the server keeps what is written (else: verified as it arrives and dropped, needing no room)."""
        return bool(self.settings and self.settings.fs_keep)

    def processes(self) -> dict[str, int]:
        """The FUSE process of each node's mount, by node."""
        return {n: m.pid for n, m in self.fuse.items() if m.pid}

    def down(self) -> list[str]:
        done = []
        for node, m in list(self.fuse.items()):
            done += m.stop()
            ownership.disown(self.lab, f"client:sharedfs@{node}")
            del self.fuse[node]
        if self.server.is_dir():
            shutil.rmtree(self.server, ignore_errors=True)
            done.append(f"rm -r {self.server}")
        ownership.disown(self.lab, "client:sharedfs")
        return done


def ceiling_MBps(c: ClientSettings, streams: int = 1, served_at_once: int = 10) -> float:
    """What `streams` writers on one node get from the shared file system (MB/s): each request of
    `fs_request_kib` takes `fs_delay_ms` plus its time on the node's link; `served_at_once`
    requests overlap (libfuse 3.14's worker threads); the node's link caps the sum."""
    req = c.fs_request_kib * KiB
    per_stream = req / (c.fs_delay_ms / 1000 + req / (c.fs_node_mbps * 1e6)) / 1e6
    return min(min(streams, served_at_once) * per_stream, c.fs_node_mbps)
