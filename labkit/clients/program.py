"""A client kind that is a program of its own: one process per pull, in the compute node's namespace.

A program runs joined to the block-I/O group of the compute node's disk before it execs (`Where.preexec`),
in a directory of its own under the destination (`Where.dest_root`: memory, the compute node's local
disk, or its mount of the shared file system). Every pull gives a PullResult: the bytes and sha256 of
the file it wrote, seconds from its start to its exit, the time until its first byte was on disk, the
CPU it used (user + system, its rusage when reaped: its children's too), and an error for a non-zero
exit, a missing, short or wrong file, or the deadline. Where the destination keeps no byte (the lab's
shared file system, labkit.clients.streamed) the file's sha256 is the one streamed as it was written.

A subclass says only what differs: `argv` (the command line of one pull; its first word a program's
name, found with `Where.find`, or a path), `env`, and `needs_url` (whether it is given the manifest's
image URL as {url}, asked here first, or asks the registry itself).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError
from ..in_netns import exec_prefix
from ..records import PullResult, Verify
from .kind import ClientKind, Target, Where
from .registry_api import fetch_manifest
from .streamed import streamed

DEST = "image.sif"                                # the file name {dest} stands for, in the pull's own directory
_POLL = 0.005


def written_file(workdir: Path) -> Path | None:
    """The image a client wrote: {dest} if it is there, else the largest file it left in its directory."""
    if (workdir / DEST).is_file():
        return workdir / DEST
    files = [p for p in workdir.iterdir() if p.is_file() and not p.is_symlink()]
    return max(files, key=lambda p: p.stat().st_size) if files else None


def check_room(dest_root: Path, parallel: int, size: int) -> None:
    """Refuse a pull whose files would not fit where they go (memory for discard, else the disk)."""
    free = shutil.disk_usage(dest_root).free
    need = parallel * size
    if need > (free // 2 if str(dest_root).startswith("/dev/shm") else free):
        raise LabError(f"{parallel} pulls of {size} bytes need {need} bytes at {dest_root}, which has {free} free: "
                       "fewer parallel pulls, or another client.dest")


def places(writes: bool, where: Where, parallel: int, size: int, suffix: str = "") -> list[Path] | None:
    """Where each of `parallel` pulls of `size` bytes writes under `where.dest_root` (names unique to this call,
    `suffix` added), room checked first where the destination keeps the bytes (`where.keeps`); None when the
    pulls write nothing (dest memory, or no destination)."""
    if not writes or where.dest_root is None:
        return None
    if where.keeps:
        check_room(where.dest_root, parallel, size)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    return [where.dest_root / f"{tag}-{i}{suffix}" for i in range(parallel)]


@dataclass
class _Run:
    workdir: Path
    log: Path
    proc: subprocess.Popen | None = None
    start: float = 0.0
    end: float = 0.0
    first: float = 0.0
    timed_out: bool = False
    cpu_s: float = 0.0          # the program's user + system CPU (its rusage once reaped)
    program: str = ""           # its name, as it names itself in its messages


def _bytes_in(d: Path) -> int:
    try:
        return sum(e.stat().st_size for e in os.scandir(d) if e.is_file(follow_symlinks=False))
    except OSError:
        return 0


def _reap(run: _Run, block: bool) -> bool:
    """Reap the program if it ended (wait4: its exit status and the CPU it and its children used)."""
    pid, status, usage = os.wait4(run.proc.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return False
    run.proc.returncode = os.waitstatus_to_exitcode(status)
    run.cpu_s = usage.ru_utime + usage.ru_stime
    return True


def _wait(run: _Run, deadline: float) -> None:
    stop = time.perf_counter() + deadline
    while not _reap(run, block=False):
        if time.perf_counter() > stop:
            run.timed_out = True
            os.killpg(run.proc.pid, signal.SIGKILL)     # its own process group (start_new_session)
            _reap(run, block=True)
            break
        time.sleep(_POLL)
    run.end = time.perf_counter()


def file_check(workdir: Path, t: Target, verify: Verify) -> tuple[int, bool | None, str]:
    """(bytes, sha256 matched or None when not checked, what is wrong or '') of the one file a client wrote."""
    f = written_file(workdir)
    n = f.stat().st_size if f else 0
    sha_ok = None
    if f and verify == "sha256":
        if (got := streamed(f)) is not None:       # a destination that kept no byte: its streamed digest
            sha_ok = got.matches(t.sha256, t.size)
        else:
            with open(f, "rb") as fh:
                sha_ok = hashlib.file_digest(fh, "sha256").hexdigest() == t.sha256
    return n, sha_ok, ("no file written" if f is None else f"short file: {n} of {t.size} bytes" if n != t.size
                       else "sha256 mismatch" if sha_ok is False else "")


def _result(run: _Run, kind: str, t: Target, verify: Verify, checked: tuple[int, bool | None, str]) -> PullResult:
    n, sha_ok, wrong = checked
    rc = run.proc.returncode
    tail = _said(run.log.read_text(errors="replace"), run.program) if run.log.exists() else []
    error = ("still running after the deadline: killed" if run.timed_out
             else f"{kind} exited with {rc}: {tail[0] if tail else '(no output)'}" if rc else wrong)
    return PullResult(ok=not error, bytes=n, seconds=run.end - run.start,
                      ttfb_ms=(run.first - run.start) * 1e3 if run.first else 0.0,
                      sha256_ok=sha_ok if verify == "sha256" else None, error=error, start=run.start, end=run.end,
                      cpu_s=run.cpu_s)


def _said(log: str, program: str) -> list[str]:
    """The line of a client's output that says what went wrong: its first line naming itself (`curl: (60) ...`)
    or an error, else its last line."""
    lines = [ln.strip() for ln in log.strip().splitlines() if ln.strip()]
    said = [ln for ln in lines if (program and ln.startswith(f"{program}:")) or "error" in ln.lower()]
    return said[:1] or lines[-1:]


def with_labkit(env: dict[str, str]) -> dict[str, str]:
    """`env` with this labkit importable (a program run as `python -m labkit...` from any directory)."""
    root = str(Path(__file__).resolve().parents[2])
    return dict(env, PYTHONPATH=os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")])))


def pull_values(t: Target, url: str, workdir: Path) -> dict[str, str]:
    """What a pull's command line and environment are made from (config.settings.COMMAND_FIELDS)."""
    return {"host": t.host, "port": str(t.port), "uri": t.uri, "url": url, "dest": str(workdir / DEST),
            "cacert": t.trust.cafile if t.trust and t.trust.cafile else ""}


class Program(ClientKind):
    """A kind run as a program, one process per pull (its CPU: the process's rusage, children included)."""
    cpu = "rusage"
    needs_url = False        # given the manifest's image URL ({url}), asked here before the program starts

    def argv(self, values: dict[str, str]) -> list[str]:
        """The command line of one pull (pure): its first word a program's name or a path."""
        raise NotImplementedError

    def env(self, values: dict[str, str], workdir: Path, secrets: Path) -> dict[str, str]:
        """The environment of one pull: this one's, HOME its own directory (`secrets`: a file it may write)."""
        return dict(os.environ, HOME=str(workdir))

    def values(self, t: Target, url: str, workdir: Path) -> dict[str, str]:
        """What one pull's command line is made from (pull_values); a kind may add its own fields."""
        return pull_values(t, url, workdir)

    def check(self, workdir: Path, t: Target, verify: Verify, exited_ok: bool, output: str = "") -> tuple[int, bool | None, str]:
        """What the program left in `workdir`, checked after it ended (not timed): (bytes, sha256 matched
        or None, what is wrong or ''); `exited_ok`: it exited 0 before the deadline; `output`: what it printed.
        Default: its one file."""
        return file_check(workdir, t, verify)

    def cleanup(self, workdir: Path) -> None:
        """Remove what a pull made outside its directory (which is removed after it in any case)."""

    def command(self, values: dict[str, str], find=None) -> list[str]:
        """argv with its program found (`find`: a name's path; None leaves the name as it is)."""
        argv = self.argv(values)
        return [argv[0] if find is None or os.path.isabs(argv[0]) else find(argv[0]), *argv[1:]]

    def room(self, t: Target) -> int:
        """The bytes one pull leaves under its directory at most (default: the image's)."""
        return t.size

    def pull(self, t: Target, where: Where, parallel: int = 1, verify: Verify = "sha256", timeout: float = 30,
             deadline: float = 600, first_byte: threading.Event | None = None) -> list[PullResult]:
        """`parallel` pulls at once, each in its own directory under `where.dest_root`; results in order."""
        self.require_api(t)
        if where.dest_root is None:
            raise LabError(f"client.kind {self.name!r} writes a file: it needs a destination directory")
        if where.keeps:
            check_room(where.dest_root, parallel, self.room(t))
        url = fetch_manifest(t.ns, t.host, t.port, t.uri, timeout, t.trust)["image"] if self.needs_url else ""
        tag = f"{os.getpid()}-{time.monotonic_ns()}"
        runs = [_Run(where.dest_root / f"{tag}-{i}", where.dest_root / f"{tag}-{i}.log") for i in range(parallel)]
        try:
            cmds = []
            for r in runs:
                r.workdir.mkdir(parents=True)
                values = self.values(t, url, r.workdir)
                cmds.append((self.command(values, where.find), self.env(values, r.workdir, r.log.with_suffix(".json"))))
            waiters = []
            for r, (argv, env) in zip(runs, cmds):
                r.program = os.path.basename(argv[0])
                with open(r.log, "wb") as out:
                    r.start = time.perf_counter()
                    r.proc = subprocess.Popen([*exec_prefix(t.ns), *argv], cwd=r.workdir, env=env, stdout=out,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              start_new_session=True, preexec_fn=where.preexec)
                waiters.append(threading.Thread(target=_wait, args=(r, deadline), daemon=True))
                waiters[-1].start()
            while any(w.is_alive() for w in waiters):       # the first byte on disk, per pull
                for r in runs:
                    if not r.first and _bytes_in(r.workdir):
                        r.first = time.perf_counter()
                        if first_byte is not None:
                            first_byte.set()
                time.sleep(_POLL)
            for w in waiters:
                w.join()
            return [_result(r, self.name, t, verify, self.check(
                r.workdir, t, verify, not r.timed_out and r.proc.returncode == 0,
                r.log.read_text(errors="replace") if r.log.exists() else "")) for r in runs]
        finally:
            for r in runs:
                if r.proc is not None and r.proc.poll() is None:
                    os.killpg(r.proc.pid, signal.SIGKILL)
                    r.proc.wait()
                self.cleanup(r.workdir)
                shutil.rmtree(r.workdir, ignore_errors=True)
                for extra in (r.log, r.log.with_suffix(".json")):
                    extra.unlink(missing_ok=True)


class CurlDriver(Program):
    """A kind run as `python -m labkit.clients.<driver>` that runs curls: told the curl the lab finds
    (`--curl`, not whichever is first on PATH), with this labkit importable."""

    def command(self, values: dict[str, str], find=None) -> list[str]:
        return [*super().command(values, find), *(["--curl", find("curl")] if find else [])]

    def env(self, values, workdir, secrets):
        return with_labkit(super().env(values, workdir, secrets))
