"""The lab's disks as its programs see them: the VM's (images, nginx's temp files) and the compute node's.

    Disk       ext4 on a direct-I/O loop device (LoopDisk) mounted at `back`; the programs use `front`,
               a symlink to `back`, or a FUSE mount of it that delays each request (DelayMount).
               The processes that use it share one block-I/O group holding its limits; buffered
               writes feel the write ceiling too (labkit.lab.conditions.writeback).
    VmStorage  the condition (labkit.lab.conditions.base) of where the images and nginx's temp dir
               are under StorageSettings: `host` is a plain directory (the image from the lab's image
               cache), `loop` a Disk with the image copied onto it (and with `temp_mib`, nginx's temp
               dir a link to a small Disk of its own: a host in low disk status); `before_pull` drops the image from
               the page cache when the cache is cold. The compute node's side is
               labkit.lab.conditions.client_dest.

Everything is recorded in the lab's state (labkit.lab.host.ownership.own) before or as it is made, and
ended by its own ids: by `down`, and by the next lab's start after a killed owner.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import psutil

from ...config.settings import LabSettings, StorageSettings
from ...app.catalog import Image, install_image
from ...units import GiB, MiB, format_size
from ..host import ownership
from ..host.cgroups import Cgroup, CgroupError, Features, IoCounters, IoLimits, joiner, parse_io_stat, render_io_max
from ..host.loopdisk import LoopDisk, drop_cache, loops_backed_by
from ..oci_image import OCI_ROOT, blob_files
from ..host.mounts import MountError
from . import writeback
from .base import Condition, Crew, Ground, undone_on_failure
from .delayfs import DelayMount


SPOOLED = 40           # pulls at once whose whole temp file nginx may hold (the seed's 40 simultaneous pulls)
MAX_ROOM = 8 * GiB     # no more than this for them (mkfs writes the inode tables of the whole disk)


def disk_size(image_size: int, pulls: int = SPOOLED) -> int:
    """The VM's disk: the image and nginx's temp copy of it for `pulls` pulls at once (sparse: costs only what
    is written), at least 3 images' worth and at most MAX_ROOM beyond that, rounded to 4 KiB."""
    room = max(2 * image_size, min(pulls * image_size, MAX_ROOM))
    return -(-(image_size + room + 256 * MiB) // 4096) * 4096


def io_limits(s: StorageSettings) -> IoLimits:
    """StorageSettings' ceilings (MB/s are 10^6 bytes/s, as every MB/s in labkit)."""
    mb = lambda v: None if v is None else int(v * 1e6)  # noqa: E731
    return IoLimits(mb(s.read_mbps), mb(s.write_mbps), s.read_iops, s.write_iops)


def vm_limits(s: StorageSettings) -> tuple[IoLimits, int | None]:
    """The VM disk's ceilings and its dirty bound (None: writeback's default)."""
    return io_limits(s), None if s.dirty_mib is None else s.dirty_mib * MiB


class DiskGroup:
    """The block-I/O group of one disk's users. v1: a group in the blkio hierarchy only (the users
    keep their CPU groups in the others). v2 has one tree and throttles hierarchically, so the
    ceiling is set on the lab's own directory, above every member group of the lab."""

    def __init__(self, lab: str, role: str, feats: Features):
        self.feats = feats
        self.group = Cgroup(lab, f"{role}-disk", feats, controllers=("blkio",))

    def create(self) -> None:
        self.group.create()

    def _v2_dir(self) -> Path:
        return self.group.path("blkio").parent

    def procs_files(self) -> list[Path]:
        return self.group.procs_files()

    def add(self, pid: int) -> None:
        if self.feats.version == 2 and Path(f"/proc/{pid}/cgroup").read_text().count(f"/{self.group.lab}/"):
            return                           # already under the lab's directory, in its CPU group
        self.group.add(pid)

    def limit(self, device: str, limits: IoLimits) -> None:
        if self.feats.version == 2:
            (self._v2_dir() / "io.max").write_text(render_io_max(device, limits) + "\n")
        else:
            self.group.limit_io(device, limits)

    def io(self, device: str) -> IoCounters:
        if self.feats.version == 2:
            return parse_io_stat((self._v2_dir() / "io.stat").read_text(), device)
        return self.group.io(device)

    def remove(self) -> None:
        self.group.remove()


class Disk:
    """One disk of the lab under `where`: ext4 at `where/<role>-disk`, seen by its users at `where/<role>`."""

    def __init__(self, lab: str, role: str, where: Path, size: int, feats: Features, notes: list[str]):
        self.lab, self.role, self.feats, self.notes = lab, role, feats, notes
        self.back, self.front = where / f"{role}-disk", where / role
        self.loop = LoopDisk(where, size, self.back, name=f"servelab-{lab}-{role}")
        self.group: DiskGroup | None = None
        self.fuse: DelayMount | None = None
        self.limits = IoLimits()
        self.dirty: int | None = None
        self._cap: dict | None = None        # the writeback record, to undo it

    def _key(self, kind: str) -> str:
        return f"{self.role}:{kind}"

    def up(self) -> Disk:
        """The file system and its (empty, unlimited) group; `front` a plain view of it."""
        ownership.own(self.lab, self._key("loopdisk"), "loopdisk", self.loop.record())
        self.loop.up()
        ownership.own(self.lab, self._key("loopdisk"), "loopdisk", self.loop.record())
        if self.feats.io_limit or self.feats.io_stats:
            ownership.own(self.lab, "cgroups", "cgroups", {"lab": self.lab})
            self.group = DiskGroup(self.lab, self.role, self.feats)
            self.group.create()
        self.set_latency(0)
        return self

    def adopt(self) -> Disk:
        """This disk as another process of the lab made it (to count and find its group; never to end it)."""
        devices = loops_backed_by(self.loop.backing)
        self.loop.device = devices[0] if devices else None
        if self.feats.version is not None and (self.feats.io_limit or self.feats.io_stats):
            g = DiskGroup(self.lab, self.role, self.feats)
            if all(p.parent.is_dir() for p in g.procs_files()):
                self.group = g
        return self

    @property
    def device(self) -> str:
        return self.loop.dev_id

    def set_limits(self, limits: IoLimits, dirty: int | None = None) -> list[str]:
        """The ceilings on this disk, now (live); a machine without them gets a note, not an error.
        `dirty`: the bytes of dirty pages the disk may hold before writers wait (default: writeback.dirty_cap)."""
        if (limits, dirty) == (self.limits, self.dirty):
            return []
        wanted = any(getattr(limits, f) for f in ("read_bps", "write_bps", "read_iops", "write_iops"))
        if wanted and (self.group is None or not self.feats.io_limit):
            self.notes.append(f"{self.role} disk: block-I/O limits not applied: " + "; ".join(self.feats.missing))
            return []
        if self.group is not None and self.feats.io_limit:
            self.group.limit(self.device, limits)
        self._uncap()
        if writeback.writes_limited(limits):
            try:
                self._cap = writeback.cap(self.device, limits, self.feats, dirty)
                ownership.own(self.lab, self._key("writeback"), "writeback", self._cap)
                note = (f"{self.role} disk: buffered writes held to the write ceiling: its dirty pages bounded to "
                        f"{(dirty or writeback.dirty_cap(limits)) / 1e6:.0f} MB" + (", the flusher's writeback throttled in the "
                                                                         "root blkio group (cgroup v1)" if self._cap["root"] else ""))
                if note not in self.notes:
                    self.notes.append(note)
            except OSError as e:
                self.notes.append(f"{self.role} disk: buffered writes not held to the write ceiling "
                                  f"({e.strerror}): only direct and synchronous writes are")
        self.limits, self.dirty = limits, dirty
        return [f"{self.role} disk: limits {limits}"]

    def _uncap(self) -> list[str]:
        if self._cap is None:
            return []
        done = writeback.uncap(self._cap)
        ownership.disown(self.lab, self._key("writeback"))
        self._cap = None
        return done

    def set_latency(self, ms: float) -> list[str]:
        """`front` as a plain view of the disk (0) or behind a FUSE delay of `ms` per request; its
        users must not hold files open under `front` while this runs."""
        if self.fuse is not None:
            if self.fuse.delay_ms == ms:
                return []
            self.fuse.stop()
            ownership.disown(self.lab, self._key("delaymount"))
            self.fuse = None
        if self.front.is_symlink():
            self.front.unlink()
        if ms <= 0:
            with contextlib.suppress(FileNotFoundError):
                self.front.rmdir()
            self.front.symlink_to(self.back.name)
            return [f"{self.role} disk: no added latency"]
        self.fuse = DelayMount(self.back, self.front, delay_ms=ms, keep_cache=True,
                               preexec=joiner(self.group.procs_files() if self.group else []))
        self.fuse.start()
        ownership.own(self.lab, self._key("delaymount"), "delaymount", self.fuse.record())
        return [f"{self.role} disk: {ms:g} ms per request (FUSE pid {self.fuse.pid})"]

    def procs_files(self) -> list[Path]:
        """What a process that uses this disk joins before it execs (its block-I/O group)."""
        return self.group.procs_files() if self.group else []

    def add(self, pids) -> None:
        if self.group is not None:
            for pid in pids:
                with contextlib.suppress(CgroupError, OSError):   # a worker that just ended
                    self.group.add(pid)

    def stat(self) -> IoCounters:
        return self.loop.stat()

    def fuse_processes(self) -> dict[str, list[psutil.Process]]:
        """The FUSE delay process by disk (with latency it does the disk's I/O, and uses CPU for it)."""
        if self.fuse is None or not self.fuse.pid:
            return {}
        with contextlib.suppress(psutil.NoSuchProcess):
            return {f"delayfs@{self.role}": [psutil.Process(self.fuse.pid)]}
        return {}

    def group_io(self) -> IoCounters | None:
        if self.group is None or not self.feats.io_stats:
            return None
        return self.group.io(self.device)

    def down(self) -> list[str]:
        done = []
        if self.fuse is not None:
            done += self.fuse.stop()
            ownership.disown(self.lab, self._key("delaymount"))
            self.fuse = None
        if self.front.is_symlink():
            self.front.unlink()
        done += self._uncap()
        if self.group is not None:
            self.group.remove()
            self.group = None
        done += self.loop.down()
        ownership.disown(self.lab, self._key("loopdisk"))
        return done


class VmStorage(Condition):
    """The VM's storage: images at `images_dir`, nginx's temp files at `temp_dir`, both under `root`."""
    steps, disk_role = ("storage",), "vm"

    def __init__(self, ground: Ground):
        self.ground = ground
        self.root = ground.run_dir / "vm"
        self.disk: Disk | None = None
        self.temp: Disk | None = None       # nginx's temp files on a disk of their own (StorageSettings.temp_mib)
        self.settings = StorageSettings()
        self.image: Image | None = None

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def temp_dir(self) -> Path:
        return self.root / "nginx-temp"

    def problems(self, s: LabSettings) -> list[str]:
        if s.storage.disk == "loop" and not self.ground.namespaced:
            return ["storage.disk: 'loop' needs root (loop devices, mounts); this lab runs on loopback"]
        return []

    def up(self, s: LabSettings, image: Image) -> list[str]:
        """Build the storage `s` asks for and put `image` on it."""
        return self._build(s.storage, image)

    def _build(self, s: StorageSettings, image: Image) -> list[str]:
        self.settings, self.image = s, image
        self._clear_root()
        if s.disk == "host":
            self.root.mkdir(parents=True)
            self.images_dir.symlink_to(self.ground.cache_dir.resolve())
            self.temp_dir.mkdir()
            return ["storage: host disk (the lab's image cache, nginx temp files beside it)"]
        g = self.ground
        self.disk = Disk(g.lab, "vm", g.run_dir, disk_size(image.size), g.feats, g.notes)
        with undone_on_failure(self.down):
            self.disk.up()                  # limits and latency come once the image is on it
            self._temp_room(s)
            install_image(image, g.cache_dir, self.disk.back / "images")
            drop_cache(self.disk.back / "images" / image.file)
            done = self.disk.set_limits(*vm_limits(s)) + self.disk.set_latency(s.latency_ms)
        g.cgroups_used()
        room = [f"storage: nginx's temp files on loop disk {self.temp.loop.device} "
                f"({format_size(shutil.disk_usage(self.temp.back).free)} free)"] if self.temp else []
        return [f"storage: loop disk {self.disk.loop.device} ({format_size(self.disk.loop.size)} ext4)", *room, *done]

    def _temp_room(self, s: StorageSettings) -> None:
        """nginx's temp dir on the VM disk, or (temp_mib) a symlink there to a small disk of its own."""
        if s.temp_mib is None:
            (self.disk.back / "nginx-temp").mkdir()
            return
        g = self.ground
        self.temp = Disk(g.lab, "temp-room", g.run_dir, s.temp_mib * MiB, g.feats, g.notes).up()
        (self.disk.back / "nginx-temp").symlink_to(self.temp.back.resolve())

    def adopt(self, s: LabSettings, image: Image) -> None:
        self.settings, self.image = s.storage, image
        if s.storage.disk == "loop":
            g = self.ground
            self.disk = Disk(g.lab, "vm", g.run_dir, disk_size(image.size), g.feats, g.notes).adopt()
            if s.storage.temp_mib is not None:
                self.temp = Disk(g.lab, "temp-room", g.run_dir, s.storage.temp_mib * MiB, g.feats, g.notes).adopt()

    def _clear_root(self) -> None:
        """What a host-disk run left at `root` (a symlink and temp files, never a mount)."""
        if self.root.is_symlink():
            self.root.unlink()
        elif self.root.is_dir() and not os.path.ismount(self.root):
            if self.images_dir.is_symlink():
                self.images_dir.unlink()
            shutil.rmtree(self.root)

    def change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        """Limits and cache apply live; another disk kind or latency stops nginx and uwsgi, rebuilds, starts them."""
        new = s.storage
        if (new.disk, new.latency_ms, new.temp_mib) == (self.settings.disk, self.settings.latency_ms,
                                                        self.settings.temp_mib):
            self.settings = new
            return (self.disk.set_limits(*vm_limits(new)) if self.disk else []) or [f"storage: cache {new.cache}"]
        users = crew.users(uses_vm_disk)
        done = crew.restarting(users, lambda: self._rebuild(new))
        return done + [f"storage: restarted {', '.join(v.name for v in users)}"]

    def _rebuild(self, s: StorageSettings) -> list[str]:
        """Apply `s` to storage whose users (nginx, uwsgi) are stopped."""
        if self.disk is not None and s.disk == "loop" == self.settings.disk and s.temp_mib == self.settings.temp_mib:
            done = self.disk.set_limits(*vm_limits(s)) + self.disk.set_latency(s.latency_ms)
            self.settings = s
            return done or [f"storage: cache {s.cache}"]
        self.down()
        return self._build(s, self.image)

    def joins(self, svc) -> list[Path]:
        return self.disk.procs_files() if self.disk and uses_vm_disk(svc) else []

    def place(self, svc, pids: list[int]) -> None:
        if self.disk and uses_vm_disk(svc):
            self.disk.add(pids)

    def served(self, under: Path | None = None) -> list[Path]:
        """The files a pull reads from this storage (under `images_dir`, or the same names under `under`):
        sregistry's image file, and an OCI registry's blobs (labkit.lab.oci_image.OCI_ROOT) when it has any."""
        base = under or self.images_dir
        return [base / self.image.file, *blob_files(base / OCI_ROOT)]

    def before_pull(self, crew: Crew | None = None) -> None:
        """cache=cold: the image (an OCI registry's blobs too) leaves the page cache (the VM's, the FUSE
        layer's, the disk's)."""
        if self.settings.cache != "cold" or self.image is None:
            return
        for f in self.served():
            drop_cache(f)
        if self.disk is not None and self.disk.fuse is not None:
            for f in self.served(self.disk.back / "images"):
                drop_cache(f)

    def warm(self) -> bool:
        """cache=warm on the lab's own disk: the image read once through the VM's view, as a registry that has
        served it before holds it in its page cache (`up` leaves it cold). False: nothing to warm (the host's
        disk, or cache=cold, where before_pull drops it)."""
        if self.settings.cache != "warm" or self.image is None or self.disk is None:
            return False
        buf = bytearray(MiB)
        for path in self.served():
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
        return True

    def processes(self) -> dict[str, list[psutil.Process]]:
        return self.disk.fuse_processes() if self.disk else {}

    def counters(self) -> IoCounters | None:
        """The VM disk's device counters (None on the host's own disk: not the lab's to count)."""
        return self.disk.stat() if self.disk else None

    def group_io(self) -> IoCounters | None:
        """What its users read and wrote, as their block-I/O group counts it (None: no group here)."""
        return self.disk.group_io() if self.disk else None

    @property
    def device(self) -> str | None:
        """The lab's own disk's loop device (None: the host's disk)."""
        return self.disk.loop.device if self.disk else None

    def fuse_in_group(self) -> bool:
        """Whether the disk's FUSE delay process (with latency) is in its block-I/O group: its I/O is the disk's."""
        d = self.disk
        return bool(d and d.fuse and d.group and d.fuse.pid in d.group.group.pids())

    def down(self) -> list[str]:
        done = self.temp.down() if self.temp else []        # its link lives on the VM disk: end it first
        self.temp = None
        done += self.disk.down() if self.disk else []
        self.disk = None
        with contextlib.suppress(MountError, OSError):
            self._clear_root()
        return done


def uses_vm_disk(svc) -> bool:
    return getattr(svc, "uses_vm_disk", False)
