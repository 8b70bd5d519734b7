"""A delaying file system: a multithreaded FUSE passthrough that sleeps before each read and write.

It adds what a loop device cannot: a fixed latency per request with requests that overlap, as a
qcow2 image on GPFS shows (one stream is slow, many streams add up). `DelayPassthrough` holds the
file system's operations and `serve()` runs them in a process of its own (started by
`labkit.lab.conditions.delayfs_cli`); `DelayMount` starts that process from the lab and ends it by its pid and
mountpoint.

FUSE library: mfusepy (PyPI), the maintained fork of fusepy. It is pure Python over ctypes, so it
installs without a compiler; it speaks libfuse 3 (Debian's fuse3/libfuse3-3), whose multithreaded
loop runs each request in its own thread (time.sleep drops the GIL, so delays overlap) and whose
kernel protocol carries reads of up to 1 MiB (max_read). fusepy itself has had no release since
2018 and knows only libfuse 2 (128 KiB requests); pyfuse3 needs libfuse3-dev and a C build, and
runs handlers as trio tasks, so a passthrough would have to move each blocking pread to a thread.

Measured here (2 cores, Debian 12, libfuse 3.14; tests/test_disks_integration.py): without delay
one cold reader gets 0.6-1 GB/s through the mount with 1 MiB requests; with 2 ms per 128 KiB
request one reader gets ~110 MB/s and eight readers together ~470 MB/s (about 4x).
"""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from ...clients.streamed import XATTR
from ...units import MiB
from .bucket import LinkQueue
from .streamdigest import StreamDigest
from ..host.mounts import MountError, mounted, unmount
from ..host.process import same_process, terminate, wait_ended

FSNAME = "servelab-delayfs"       # how a DelayMount shows in the mount table: source and fuse.<subtype>
_STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks", "st_blksize")


class DelayPassthrough:
    """mfusepy operations, run inside the FUSE process: `source` as it is, each read/write delayed.

    Not a subclass of mfusepy.Operations so that importing this module needs no libfuse; mfusepy
    registers only the methods it finds. Paths arrive as "/a/b" relative to the mount.
    """
    use_ns = True                      # times in ns, as os.stat gives them

    def __init__(self, source: str | os.PathLike, delay_ms: float, max_read: int = 0, write_rate: float = 0,
                 max_write: int = 0):
        self.source = str(Path(source).resolve())
        self.delay = delay_ms / 1000
        self.max_read, self.max_write = max_read, max_write
        self.link = LinkQueue(write_rate) if write_rate else None   # writes share one link (bytes/s)

    def init_with_config(self, conn, config) -> None:
        """libfuse 3 insists that init() asks for the same max_read as the mount option."""
        if conn is not None and self.max_read:
            with contextlib.suppress(AttributeError):
                conn.max_read = self.max_read
            conn.max_readahead = self.max_read   # the kernel caps it at what it offered
        if conn is not None and self.max_write:
            conn.max_write = self.max_write      # bytes per write request (libfuse asks max_pages to match)

    def _p(self, path: str) -> str:
        return self.source + path

    def getattr(self, path: str, fh: int | None = None) -> dict:
        st = os.fstat(fh) if fh is not None else os.lstat(self._p(path))
        attrs = {k: getattr(st, k) for k in _STAT_KEYS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._p(path))]

    def open(self, path: str, flags: int) -> int:
        return os.open(self._p(path), flags & ~os.O_DIRECT)   # Python's buffers are not aligned

    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        return os.open(self._p(path), (flags & ~os.O_DIRECT) | os.O_CREAT, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        time.sleep(self.delay)
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        time.sleep(self.delay + (self.link.reserve(len(data)) if self.link else 0.0))
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        os.truncate(fh if fh is not None else self._p(path), length)

    def flush(self, path: str, fh: int) -> None:
        os.close(os.dup(fh))            # what close() would report, without closing the file

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        (os.fdatasync if datasync else os.fsync)(fh)

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def unlink(self, path: str) -> None:
        os.unlink(self._p(path))

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._p(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._p(path))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._p(old), self._p(new))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._p(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.lchown(self._p(path), uid, gid)

    def readlink(self, path: str) -> str:
        return os.readlink(self._p(path))

    def symlink(self, target: str, source: str) -> None:
        """`target` is the new link (inside the mount), `source` what it points to, as given."""
        os.symlink(source, self._p(target))

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        os.utime(self._p(path), ns=times)

    def statfs(self, path: str) -> dict:
        sv = os.statvfs(self._p(path))
        return {k: getattr(sv, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                            "f_files", "f_ffree", "f_favail", "f_namemax")}


class DiscardPassthrough(DelayPassthrough):
    """As DelayPassthrough, but a write keeps no byte: each file's writes are streamed into a sha256
    (labkit.lab.conditions.streamdigest) and its backing file only grows to their length (sparse: no page
    is stored). The digest is answered as the extended attribute labkit.clients.streamed.XATTR, keyed by
    the backing file's inode, so it follows the file through renames (Singularity's temporary name, then
    its .simg). Reads see zeros: the bytes are not there (a client that reads its file back, such as
    Singularity's gunzip of a gzipped image, needs `client.fs_keep`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sums: dict[int, StreamDigest] = {}

    def _fresh(self, fh: int) -> int:
        self.sums[os.fstat(fh).st_ino] = StreamDigest()
        return fh

    def open(self, path: str, flags: int) -> int:
        fh = super().open(path, flags)
        return self._fresh(fh) if flags & os.O_TRUNC else fh

    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        return self._fresh(super().create(path, mode, flags))

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        time.sleep(self.delay + (self.link.reserve(len(data)) if self.link else 0.0))
        st = os.fstat(fh)
        self.sums.setdefault(st.st_ino, StreamDigest()).add(offset, data)
        if offset + len(data) > st.st_size:
            os.ftruncate(fh, offset + len(data))
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        super().truncate(path, length, fh)
        if length == 0:
            self.sums[os.fstat(fh).st_ino if fh is not None else os.lstat(self._p(path)).st_ino] = StreamDigest()

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        d = self.sums.get(os.lstat(self._p(path)).st_ino) if name == XATTR else None
        if d is None:
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))
        return d.value().encode()

    def unlink(self, path: str) -> None:
        st = os.lstat(self._p(path))
        super().unlink(path)
        if st.st_nlink <= 1:
            self.sums.pop(st.st_ino, None)


def serve(source: str, mountpoint: str, delay_ms: float, max_read: int, threads: int,
          keep_cache: bool = False, max_write: int = 0, write_rate: float = 0, discard: bool = False) -> None:
    """Mount and serve until unmounted (the FUSE process's whole life).

    `keep_cache`: the kernel keeps a file's pages over opens (libfuse's kernel_cache), as a VM's
    page cache does; without it every open starts cold at the FUSE layer. `discard`: writes verified and
    dropped (DiscardPassthrough).
    """
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")    # libfuse 3 even where libfuse2 is installed
    import mfusepy  # only here: it loads libfuse when imported

    opts = {"fsname": FSNAME, "subtype": FSNAME, "allow_other": True, "default_permissions": True,
            "max_read": max_read}
    if keep_cache:
        opts["kernel_cache"] = True
    if mfusepy.fuse_version_major >= 3:
        opts["max_threads"] = threads
    ops = (DiscardPassthrough if discard else DelayPassthrough)(source, delay_ms, max_read, write_rate, max_write)
    mfusepy.FUSE(ops, mountpoint, foreground=True, **opts)


class DelayMount:
    """`with DelayMount(src, mnt, delay_ms=2):` `src` seen at `mnt`, each request `delay_ms` late.

    The FUSE process is started with this Python and ended by its own pid and mountpoint. After
    mounting, the mount's readahead is raised to `max_read`, so a sequential reader's requests are
    as large as `max_read` and the delay is paid once per request of that size. `threads` caps the
    requests served at once from libfuse 3.15 on; libfuse 3.14 (Debian 12) ignores it and serves
    at most 10 at once.
    """

    def __init__(self, source: str | os.PathLike, mountpoint: str | os.PathLike, delay_ms: float,
                 max_read: int = MiB, threads: int = 32, keep_cache: bool = False,
                 preexec: Callable[[], None] | None = None, max_write: int = 0, write_rate: float = 0,
                 discard: bool = False):
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, (int, float)) or not 0 <= delay_ms <= 10_000:
            raise MountError(f"delayfs.delay_ms: {delay_ms!r} is outside 0..10000")
        if not isinstance(max_read, int) or max_read < 4096 or max_read % 4096:
            raise MountError(f"delayfs.max_read: {max_read!r} must be a multiple of 4096")
        self.source, self.mountpoint = Path(source).resolve(), Path(mountpoint).resolve()
        self.delay_ms, self.max_read, self.threads = delay_ms, max_read, threads
        self.keep_cache, self.preexec = keep_cache, preexec     # preexec: e.g. join a blkio group
        self.max_write, self.write_rate = max_write, write_rate  # write request size; writes' link (bytes/s)
        self.discard = discard                                   # writes hashed as they arrive, not kept
        self.proc: subprocess.Popen | None = None
        self._log: Path | None = None
        self._made_mountpoint = False

    def start(self, timeout: float = 10.0) -> DelayMount:
        """Start the FUSE process; return once its mount is in the mount table."""
        if mounted(self.mountpoint):
            raise MountError(f"delayfs.mountpoint: {self.mountpoint} is already a mount point")
        if not self.mountpoint.exists():
            self.mountpoint.mkdir(parents=True)
            self._made_mountpoint = True
        fd, log = tempfile.mkstemp(prefix="servelab-delayfs-", suffix=".log")
        self._log = Path(log)
        argv = [sys.executable, "-m", "labkit.lab.conditions.delayfs_cli", str(self.source), str(self.mountpoint),
                "--delay-ms", str(self.delay_ms), "--max-read", str(self.max_read), "--threads", str(self.threads),
                *(["--keep-cache"] if self.keep_cache else []),
                *(["--max-write", str(self.max_write)] if self.max_write else []),
                *(["--write-rate", str(self.write_rate)] if self.write_rate else []),
                *(["--discard"] if self.discard else [])]
        env = dict(os.environ)   # the child imports this very labkit, wherever it was imported from
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                          env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(argv, stdout=fd, stderr=fd, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env, preexec_fn=self.preexec)
        os.close(fd)
        deadline = time.monotonic() + timeout
        while mounted(self.mountpoint) != (FSNAME, f"fuse.{FSNAME}"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self._log.read_text()[-2000:]
                self.stop()
                raise MountError(f"delayfs: the FUSE process did not mount {self.mountpoint}: {tail}")
            time.sleep(0.02)
        self._raise_readahead()
        return self

    def _raise_readahead(self) -> None:
        st = os.stat(self.mountpoint)
        ra = Path(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb")
        with contextlib.suppress(OSError):      # without it requests stay at 128 KiB; still correct
            ra.write_text(str(self.max_read // 1024))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def record(self) -> dict:
        """Its ids: the pid with its start time (so a reused pid is never touched) and mountpoint."""
        created = None
        if self.proc:
            with contextlib.suppress(psutil.NoSuchProcess):
                created = psutil.Process(self.proc.pid).create_time()
        return {"pid": self.pid, "created": created, "mountpoint": str(self.mountpoint),
                "made_mountpoint": self._made_mountpoint}

    def stop(self, timeout: float = 5.0) -> list[str]:
        """Unmount, let the process end (TERM, then KILL, by pid), remove its log."""
        if self.proc is None:
            return []
        done = self.cleanup_recorded(self.record(), timeout)
        self.proc.wait(timeout)                  # reap it; cleanup_recorded has ended it
        self.proc = None
        if self._log:
            self._log.unlink(missing_ok=True)
        self._made_mountpoint = False
        return done

    @staticmethod
    def cleanup_recorded(rec: dict, timeout: float = 5.0) -> list[str]:
        """End a delay mount from its record; only a FUSE mount of ours and that very process."""
        mountpoint = Path(rec["mountpoint"])
        fuse = same_process(rec["pid"], rec.get("created")) if rec.get("pid") else None
        done: list[str] = []
        if mounted(mountpoint) == (FSNAME, f"fuse.{FSNAME}"):
            unmount(["fusermount3", "-u", str(mountpoint)], "delayfs.mountpoint")
            done.append(f"fusermount3 -u {mountpoint}")
        # Unmounted, the process ends by itself; otherwise (or if it hangs) TERM, then KILL it.
        if fuse is not None and wait_ended([fuse], timeout if done else 0.0):
            left = terminate([fuse], grace=2.0)
            done.append(f"ended pid {fuse.pid}" + (f" (still running: {[p.pid for p in left]})" if left else ""))
        if mounted(mountpoint) == (FSNAME, f"fuse.{FSNAME}"):   # its process died before unmounting
            unmount(["fusermount3", "-u", "-z", str(mountpoint)], "delayfs.mountpoint")
            done.append(f"fusermount3 -u -z {mountpoint}")
        if rec.get("made_mountpoint") and not mounted(mountpoint):
            with contextlib.suppress(FileNotFoundError):
                mountpoint.rmdir()
                done.append(f"rmdir {mountpoint}")
        return done

    def __enter__(self) -> DelayMount:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
