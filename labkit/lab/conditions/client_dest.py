"""The client's destination as one condition: where a client on a compute node writes the image,
as `client.dest` says.

    memory      /dev/shm (for clients that must write a file)
    local-disk  the node's own disk (a labkit.lab.conditions.storage.Disk: write ceiling
                `write_mbps`, dirty bound `dirty_mib`)
    shared-fs   a shared file system (labkit.lab.conditions.sharedfs: one mount per compute node)

Clients are not the lab's programs: a pull starts them with `preexec(node)` (the disk's block-I/O group,
and in a time-dilated lab the node's CPU group: labkit.lab.conditions.client_cpu, `lab.client.cpu`) and
writes under `dest_root(node)`; `check_room` refuses pulls whose files would not fit where they go
(nothing to check where the bytes are not kept: a discarding client in memory, the shared fs).
"""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil

from ...config.settings import ClientSettings, LabSettings
from ...path import ServingPath
from ...app.catalog import Image
from ...units import MiB, format_size
from ..host import ownership
from ..host.cgroups import IoCounters, IoLimits, joiner
from ..host.loopdisk import MIN_SIZE as MIN_DISK
from ...clients.program import check_room
from .base import Condition, Crew, Ground, undone_on_failure
from .client_cpu import ClientCpu
from .sharedfs import SharedFs
from .storage import MAX_ROOM, SPOOLED, Disk


def client_disk_size(image_size: int) -> int:
    """The compute nodes' disk: room for the seed's 40 pulls of the image at once, at least eight (sparse: costs
    only what is written; at most storage.MAX_ROOM for them)."""
    return -(-(max(8 * image_size, min(SPOOLED * image_size, MAX_ROOM)) + 256 * MiB) // 4096) * 4096


def client_limits(s: ClientSettings) -> tuple[IoLimits, int | None]:
    """The compute node's disk's write ceiling and dirty bound (None: writeback's default)."""
    return (IoLimits(write_bps=None if s.write_mbps is None else int(s.write_mbps * 1e6)),
            None if s.dirty_mib is None else s.dirty_mib * MiB)


class ClientDest(Condition):
    steps, disk_role = ("client",), "compute"

    def __init__(self, ground: Ground, path: ServingPath):
        self.ground, self.nodes = ground, path.compute
        self.disk: Disk | None = None
        self.shared: SharedFs | None = None
        self.settings = ClientSettings()
        self.image_size = 0
        self._shm = Path("/dev/shm") / f"servelab-{ground.lab}-client"
        self.cpu = ClientCpu(ground, path.compute)

    def problems(self, s: LabSettings) -> list[str]:
        if s.client.dest != "memory" and not self.ground.namespaced:
            return [f"client.dest: {s.client.dest!r} needs root (the compute node's disk or mounts)"]
        return []

    def dest_root(self, node: str | None = None) -> Path:
        """Where a client on `node` (None: the first compute node) writes its pulls."""
        if self.shared:
            return self.shared.dest_root(node)
        return self.disk.front / "pulls" if self.disk else self._shm

    def preexec(self, node: str | None = None) -> Callable[[], None] | None:
        """What a client process on `node` runs before it execs: it joins the destination disk's block-I/O
        group, and its node's CPU group where the clients' CPU is dilated."""
        return joiner([*(self.disk.procs_files() if self.disk else []), *self.cpu.procs_files(node)])

    @property
    def keeps(self) -> bool:
        """Whether the destination keeps what a client writes (the shared fs verifies and drops it by default)."""
        return self.shared.keeps if self.shared else True

    def check_room(self, parallel: int, size: int, discards: bool = False, node: str | None = None) -> None:
        """LabError when `parallel` pulls of `size` would not fit where a client on `node` writes them; nothing
        to check for a client that discards into memory (`discards`) or a destination that keeps no byte."""
        if (discards and self.settings.dest == "memory") or not self.keeps:
            return
        check_room(self.dest_root(node), parallel, size)

    def up(self, s: LabSettings, image: Image) -> list[str]:
        self.image_size = image.size
        return self.cpu.up(s) + self._build(s.client)

    def _build(self, s: ClientSettings) -> list[str]:
        self.settings, g = s, self.ground
        if s.dest == "memory":
            ownership.own(g.lab, "client:dir", "dir", {"path": str(self._shm)})
            self._shm.mkdir(exist_ok=True)
            return []
        if s.dest == "shared-fs":
            self.shared = SharedFs(g.lab, g.run_dir, self.nodes)
            return self.shared.up(s)
        self.disk = Disk(g.lab, "compute", g.run_dir, client_disk_size(self.image_size), g.feats, g.notes)
        with undone_on_failure(self._dest_down):
            self.disk.up()
            (self.disk.back / "pulls").mkdir()
            done = self.disk.set_limits(*client_limits(s))
        g.cgroups_used()
        return [f"client: writes to {self.disk.loop.device} ({format_size(self.disk.loop.size)} ext4)", *done]

    def adopt(self, s: LabSettings, image: Image) -> None:
        self.settings, self.image_size, g = s.client, image.size, self.ground
        self.cpu.adopt(s)
        if s.client.dest == "local-disk":
            self.disk = Disk(g.lab, "compute", g.run_dir, MIN_DISK, g.feats, g.notes).adopt()

    def change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        c = s.client
        if self.disk is not None and c.dest == "local-disk":
            self.settings = c
            return self.disk.set_limits(*client_limits(c)) or [f"client: {c.kind}"]
        self._dest_down()
        return self._build(c) or [f"client: {c.kind}, writing to memory"]

    def processes(self) -> dict[str, list[psutil.Process]]:
        """The FUSE processes of its disk (with latency) and of each node's shared-fs mount."""
        out = self.disk.fuse_processes() if self.disk else {}
        for node, pid in (self.shared.processes() if self.shared else {}).items():
            with contextlib.suppress(psutil.NoSuchProcess):
                out[f"sharedfs@{node}"] = [psutil.Process(pid)]
        return out

    def counters(self) -> IoCounters | None:
        return self.disk.stat() if self.disk else None

    def down(self) -> list[str]:
        return self._dest_down() + self.cpu.down()

    def _dest_down(self) -> list[str]:
        done = self.disk.down() if self.disk else []
        self.disk = None
        if self.shared is not None:
            done += self.shared.down()
            self.shared = None
        if self._shm.is_dir():
            shutil.rmtree(self._shm, ignore_errors=True)
            done.append(f"rm -r {self._shm}")
        ownership.disown(self.ground.lab, "client:dir")
        return done
