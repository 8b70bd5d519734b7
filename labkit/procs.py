"""Long-running services: started inside their namespace, logged, health-checked, ended by pid."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .netns import exec_prefix

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class ServiceError(RuntimeError):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(ns: str | None):
    """Run the calling thread inside network namespace `ns` (sockets made here stay there)."""
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


@dataclass
class Service:
    """One real program of the path: its namespace, command line, log and how to stop it."""
    name: str
    node: str
    ns: str | None
    argv: list[str]
    log: Path
    port: tuple[str, int] | None = None       # (host, port) it must accept connections on
    stop_signal: int = signal.SIGTERM
    pass_fds: tuple[int, ...] = ()
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {time.strftime('%F %T')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([*exec_prefix(self.ns), *self.argv], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, pass_fds=self.pass_fds)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until it listens on its port; a clear error with the log's tail if it dies or hangs."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc and self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.port is None or listening(self.proc.pid, self.port[1]):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} does not listen on {self.port[0]}:{self.port[1]} "
                                   f"after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        """The service's process and its children (nginx and uwsgi workers)."""
        if not self.alive():
            return []
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, grace: float = 5.0) -> None:
        if not self.proc:
            return
        if self.proc.poll() is None:
            stop_group(self.proc.pid, self.stop_signal, grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        self.proc = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on `port` in the network namespace of process `pid`."""
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for row in rows:
            _, local, _, st, *_ = row.split()
            if st == "0A" and local.endswith(f":{port:04X}"):
                return True
    return False


def stop_group(pid: int, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Signal a process group started with start_new_session; KILL whatever outlives `grace`."""
    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    _, alive = psutil.wait_procs(members, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)
