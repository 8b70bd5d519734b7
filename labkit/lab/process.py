"""A supervised program: started in its namespace as the leader of its own process group.

The group id is the program's own id: stopping it signals that group, so workers left
behind by a master that died (orphans) are ended too, and nothing is ever ended by name.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

from ..errors import ServiceError
from ..nsenter import exec_prefix

log = logging.getLogger("labkit.lab")
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Workers whose master ends are re-parented to this process (not to PID 1), so their exit is
    collected here: a container's PID 1 that never reaps would keep them as zombies."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Process:
    """Start, readiness, stop and health of one program. Subclasses give its command line.

    `deaths`: a regex for the log lines in which the program reports a worker that died
    (and that its master replaced), read by `incidents()`.
    """
    deaths: re.Pattern | None = None
    stop_signal: int = signal.SIGTERM
    cpu_member: str | None = None      # its CPU group (its key in settings.cpu, from the path), if it has one
    uses_vm_disk: bool = False         # reads or writes the VM's storage (joins its block-I/O group)

    def __init__(self, name: str, node: str, ns: str | None, log_file: Path,
                 ready_at: tuple[str, int] | None = None):
        self.name, self.node, self.ns, self.log = name, node, ns, log_file
        self.ready_at = ready_at                       # (address, port) it must accept connections on
        self.proc: subprocess.Popen | None = None
        self.adopted: psutil.Process | None = None     # started by another process (`labkit heal`)
        self._log_marks: dict[Path, int] = {}          # per log file, the bytes already read for incidents
        self.preexec = None                            # run in the child before it execs (join cgroups)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def command(self) -> list[str]:
        """What is executed in the namespace: the program's argv (a subclass may wrap it)."""
        return self.argv()

    def logs(self) -> list[Path]:
        """The files the program writes its own messages to (besides stdout/stderr)."""
        return [self.log]

    # --- life -------------------------------------------------------------
    def start(self, pass_fds: tuple[int, ...] = ()) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        become_subreaper()
        argv = self.command()
        with open(self.log, "ab") as out:
            out.write(f"--- {time.strftime('%F %T')} start: {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen([*exec_prefix(self.ns), *argv], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds,
                                         preexec_fn=self.preexec)
        self._log_marks = self._log_sizes()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until it listens on its port; a clear error with the log's tail if it dies or hangs."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ServiceError(f"{self.name} {self.exit_reason()}:\n{self.log_tail()}")
            if self.ready_at is None or listening(self.pid, self.ready_at[1]):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} does not listen on {self.ready_at[0]}:{self.ready_at[1]} "
                                   f"after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def adopt(self, pid: int, created: float) -> None:
        """Supervise a running instance another process started (checked by its start time, never by name)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            p = psutil.Process(pid)
            if p.create_time() == created:
                self.adopted = p
        self._log_marks = self._log_sizes()

    def stop(self, grace: float = 5.0) -> None:
        if self.pid is None:
            return
        stop_group(self.pid, self.stop_signal, grace)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        self.proc = self.adopted = None

    def restart(self) -> None:
        self.stop()
        self.start()
        self.wait_ready()

    # --- looking at it ----------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else self.adopted.pid if self.adopted else None

    def alive(self) -> bool:
        if self.adopted is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                return self.adopted.is_running() and self.adopted.status() != psutil.STATUS_ZOMBIE
            return False
        return self.proc is not None and self.proc.poll() is None

    def exit_reason(self) -> str:
        if self.adopted is not None:
            return "is running" if self.alive() else "has ended (its exit status went to the process that started it)"
        if self.proc is None:
            return "is not started"
        rc = self.proc.poll()
        if rc is None:
            return "is running"
        if rc < 0:
            return f"was killed by signal {-rc} ({signal.Signals(-rc).name})"
        return f"exited with code {rc}"

    def processes(self) -> list[psutil.Process]:
        """The program's process and its workers (nginx and uwsgi workers)."""
        if not self.alive():
            return []
        try:
            top = psutil.Process(self.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def orphans(self) -> list[int]:
        """Pids still in the program's process group after its leader ended."""
        if self.pid is None or self.alive():
            return []
        return group_members(self.pid)

    def status(self) -> str:
        """'ok', or one line saying what is wrong: how it ended, its orphans, its last log line."""
        if self.alive():
            dead = self.incidents(peek=True)
            return "ok" if not dead else f"running, but {len(dead)} worker(s) died and were respawned: {dead[-1]}"
        orphans = self.orphans()
        return (f"{self.exit_reason()}" + (f"; {len(orphans)} orphaned worker(s) still running {orphans}"
                                           if orphans else "") + f"; last log line: {self.last_line()}")

    def incidents(self, peek: bool = False) -> list[str]:
        """Log lines since the last look in which a worker died (`peek`: do not mark them seen)."""
        if self.deaths is None:
            return []
        found, sizes = [], {}
        for f in self.logs():
            text, sizes[f] = _read_from(f, self._log_marks.get(f, 0))
            found += [line.strip() for line in text.splitlines() if self.deaths.search(line)]
        if not peek:
            self._log_marks = sizes
        return found

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def last_line(self) -> str:
        lines = [ln for f in self.logs() for ln in _read(f).splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(empty log)"

    def _log_sizes(self) -> dict[Path, int]:
        return {f: f.stat().st_size if f.exists() else 0 for f in self.logs()}


def _read_from(path: Path, offset: int) -> tuple[str, int]:
    """What a log file holds past `offset` bytes (only that is read: the logs grow with every request),
    and its size now."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return "", 0
    return data.decode(errors="replace"), offset + len(data)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


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


def group_members(pgid: int) -> list[int]:
    """Every live process whose process group is `pgid` (a group id is never reused while it has members)."""
    out = []
    for p in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
    return out


def stop_group(pgid: int, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Stop a process group started with start_new_session: `sig` to its leader (a master stops and reaps
    its own workers), or to the whole group when the leader is gone; KILL whatever outlives `grace`."""
    members = []
    for pid in group_members(pgid):
        with contextlib.suppress(psutil.NoSuchProcess):
            members.append(psutil.Process(pid))
    leader = next((p for p in members if p.pid == pgid), None)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leader is not None:
            os.kill(pgid, sig)
        else:
            os.killpg(pgid, sig)
    _, alive = psutil.wait_procs(members, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)
    _reap([p.pid for p in members if p.pid != pgid])


def _reap(pids: list[int]) -> None:
    """Collect the group's workers that were re-parented to this process and have ended (not the
    leader: its Popen collects it, with its exit status)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
