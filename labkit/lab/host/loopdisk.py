"""A loop disk: a real ext4 file system on a loop device (the VM's disk, a compute node's disk).

`LoopDisk` makes a sparse backing file, attaches it to a loop device with direct I/O (so the host's
page cache does not hide the disk: every read its file system misses reaches the device and shows
in its counters and in blkio/io cgroup limits), makes ext4 on it and mounts it. It is ended by its
own ids: its mountpoint, the loop device whose backing file is its own, and that file. A record of
them (`record()`) lets the next start end a disk left by a killed process.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ...units import MiB
from .cgroups import IoCounters
from .mounts import MountError, mounted, run, unmount
from .names import check_name

SECTOR = 512                      # /sys/block/*/stat counts 512-byte sectors, whatever the device
MIN_SIZE = 16 * MiB               # ext4 with a journal needs a few MiB; below this mkfs fails


# ---------------------------------------------------------------- pure

def parse_block_stat(text: str) -> IoCounters:
    """/sys/block/<dev>/stat as the same counters a cgroup keeps: reads and writes completed
    (fields 1 and 5) and sectors read and written (fields 3 and 7, as bytes)."""
    f = text.split()
    if len(f) < 7 or not all(x.isdigit() for x in f[:7]):
        raise MountError(f"loopdisk.stat: {text.strip()!r} is not a block device stat line")
    return IoCounters(bytes_read=int(f[2]) * SECTOR, bytes_written=int(f[6]) * SECTOR,
                      ops_read=int(f[0]), ops_written=int(f[4]))


def check_size(size: int) -> int:
    """The disk's size in bytes, a whole number of 4 KiB blocks, at least MIN_SIZE."""
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE or size % 4096:
        raise MountError(f"loopdisk.size: {size!r} must be a multiple of 4096 bytes, at least {MIN_SIZE}")
    return size


# ---------------------------------------------------------------- side effects

def loops_backed_by(backing: Path) -> list[str]:
    """The loop devices (/dev/loopN) whose backing file is `backing`, read from sysfs."""
    found = []
    for bf in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            text = bf.read_text().strip().removesuffix(" (deleted)")
        except OSError:                 # detached meanwhile
            continue
        if text == str(backing):
            found.append("/dev/" + bf.parent.parent.name)
    return sorted(found)


def drop_cache(path: str | os.PathLike) -> None:
    """Make a file cold: write back its dirty pages, then drop its cached pages (this file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class LoopDisk:
    """`with LoopDisk(dir, GiB, mnt) as disk:` an ext4 file system at `mnt` on /dev/loopN.

    `disk.dev_id` ("7:0") is what cgroup blkio/io limits key on; `disk.stat()` reads the device's
    counters. Everything is ended on exit, error or not; see `record`/`cleanup_recorded` for a
    disk whose owner was killed.
    """

    def __init__(self, directory: str | os.PathLike, size: int, mountpoint: str | os.PathLike,
                 name: str = "servelab-loopdisk"):
        self.backing = Path(directory).resolve() / f"{check_name(name, 'loopdisk.name', MountError)}.img"
        self.size = check_size(size)
        self.mountpoint = Path(mountpoint).resolve()
        self.device: str | None = None
        self._made_backing = False       # down() touches nothing unless this object made it
        self._made_mountpoint = False

    def up(self) -> LoopDisk:
        """Backing file, loop device (direct I/O), ext4 with nothing left to initialise, mount."""
        if self.device:
            raise MountError(f"loopdisk: {self.device} is already up")
        try:
            fd = os.open(self.backing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise MountError(f"loopdisk.backing: {self.backing} exists (a disk left by a killed run? "
                              "LoopDisk.cleanup_recorded ends it)") from None
        self._made_backing = True
        try:
            os.ftruncate(fd, self.size)          # sparse: blocks are allocated as its users write
            os.close(fd)
            self.device = run(["losetup", "--find", "--show", "--direct-io=on", str(self.backing)],
                               "loopdisk.device").strip()
            # lazy_*_init=0: inode tables and journal written now, so no ext4lazyinit thread writes
            # to the disk later and blurs its counters; nodiscard: no slow TRIM of the whole device.
            run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                  self.device], "loopdisk.mkfs")
            if not self.mountpoint.exists():
                self.mountpoint.mkdir(parents=True)
                self._made_mountpoint = True
            run(["mount", "-t", "ext4", self.device, str(self.mountpoint)], "loopdisk.mountpoint")
        except BaseException as e:
            try:
                self.down()
            except MountError as left:
                e.add_note(f"and ending the half-made disk failed: {left}")
            raise
        return self

    @property
    def dev_id(self) -> str:
        """The loop device as "MAJ:MIN"."""
        return Path(f"/sys/block/{self._name()}/dev").read_text().strip()

    def _name(self) -> str:
        if not self.device:
            raise MountError("loopdisk: the disk is not up")
        return Path(self.device).name

    def stat(self) -> IoCounters:
        """The loop device's counters now: bytes and requests read and written since it was made."""
        return parse_block_stat(Path(f"/sys/block/{self._name()}/stat").read_text())

    def record(self) -> dict:
        """Its ids, to save where the next start can find them."""
        return {"backing": str(self.backing), "device": self.device, "mountpoint": str(self.mountpoint),
                "made_mountpoint": self._made_mountpoint}

    def down(self) -> list[str]:
        """Unmount, detach, delete the backing file; what was done, in order."""
        if not self._made_backing:
            return []
        done = self.cleanup_recorded(self.record())
        self.device = None
        self._made_backing = self._made_mountpoint = False
        return done

    @staticmethod
    def cleanup_recorded(rec: dict) -> list[str]:
        """End a disk from its record: only the loop devices backed by its own file are touched.

        A file system that stays busy is an error at once (detaching its device would only defer
        it); the later steps run even when an earlier one failed, and their failures are raised
        together at the end. Running it again after a success does nothing.
        """
        backing, mountpoint = Path(rec["backing"]), Path(rec["mountpoint"])
        done: list[str] = []
        errors: list[str] = []
        devices = loops_backed_by(backing)
        on_mount = mounted(mountpoint)
        if on_mount and on_mount[0] in devices:
            unmount(["umount", str(mountpoint)], "loopdisk.mountpoint")
            done.append(f"umount {mountpoint}")
        elif on_mount:
            errors.append(f"loopdisk.mountpoint: {mountpoint} holds {on_mount[0]}, not this disk: left alone")
        for dev in devices:
            try:
                run(["losetup", "-d", dev], "loopdisk.device")
                done.append(f"losetup -d {dev}")
            except MountError as e:
                errors.append(str(e))
        with contextlib.suppress(FileNotFoundError):
            backing.unlink()
            done.append(f"rm {backing}")
        if rec.get("made_mountpoint") and not mounted(mountpoint):
            with contextlib.suppress(FileNotFoundError):
                mountpoint.rmdir()
                done.append(f"rmdir {mountpoint}")
        if errors:
            raise MountError("; ".join(errors))
        return done

    def __enter__(self) -> LoopDisk:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()
