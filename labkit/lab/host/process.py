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
from collections.abc import Callable
from pathlib import Path

import psutil

from ...errors import ServiceError
from ...in_netns import exec_prefix

log = logging.getLogger("labkit.lab")
_PR_SET_CHILD_SUBREAPER = 36
START_MARK = "--- servelab start "      # written to each of a program's logs before it starts


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
        self.recorded: tuple[int, float] | None = None  # (pid, start time) another process recorded for it
        self._log_marks: dict[Path, int] = {}          # per log file, the bytes already read for incidents
        self.preexec = None                            # run in the child before it execs (join cgroups)
        self.env: dict[str, str] = {}                  # added to its environment (e.g. OPENSSL_ia32cap)

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
        for f in self.logs()[1:]:        # its own log files too: what follows is this run's
            with open(f, "ab") as other:
                other.write(f"{START_MARK}{time.strftime('%F %T')}: {self.name}\n".encode())
        with open(self.log, "ab") as out:
            out.write(f"{START_MARK}{time.strftime('%F %T')}: {' '.join(argv)}\n".encode())
            out.flush()
            self._log_marks = self._log_sizes()           # what it logs from here on is this run's
            self.proc = subprocess.Popen([*exec_prefix(self.ns), *argv], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds,
                                         preexec_fn=self.preexec, env={**os.environ, **self.env} if self.env else None)
        with contextlib.suppress(psutil.NoSuchProcess):   # not collected yet: readable even if it ended
            self.recorded = (self.proc.pid, psutil.Process(self.proc.pid).create_time())
        self._log_marks = self._log_sizes()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until its own process listens on its port (a socket of another process on that port, e.g. an
        orphaned worker's, does not count); a clear error with what it logged since it started if it
        dies or hangs."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ServiceError(f"{self.name} {self.exit_reason()}:\n{self.log_since_start()}")
            if self.ready_at is None or listening(self.pid, self.ready_at[1]):
                return
            if time.monotonic() > deadline:
                held = holders(self.pid, self.ready_at[1])
                raise ServiceError(f"{self.name} does not listen on {self.ready_at[0]}:{self.ready_at[1]} "
                                   f"after {timeout:.0f}s" + (f" (pids {held} hold that port)" if held else "")
                                   + f":\n{self.log_since_start()}")
            time.sleep(0.05)

    def adopt(self, pid: int, created: float) -> None:
        """Supervise an instance another process started (`labkit heal`, `labkit status`): the process
        with that pid and start time, never one found by name. Its process group stays known after it
        has ended, so its orphaned workers can still be found and ended."""
        if self.proc is not None:          # an instance this object started is replaced: collect it
            self.proc.poll()
            self.proc = None
        self.recorded = (pid, created)
        self.adopted = same_process(pid, created)
        self._log_marks = self._log_sizes()

    def stop(self, grace: float = 5.0) -> None:
        """End the program's process group: through its leader while it runs, else its orphans."""
        if self.alive():
            stop_group(self.pid, self.stop_signal, grace)
        elif self.orphans():
            stop_group(self.group_id, signal.SIGTERM, grace)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        self.proc = self.adopted = self.recorded = None

    def restart(self) -> None:
        self.stop()
        self.start()
        self.wait_ready()

    # --- looking at it ----------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else self.adopted.pid if self.adopted else None

    @property
    def group_id(self) -> int | None:
        """Its process group: its own pid (started with start_new_session), also once it has ended."""
        return self.pid or (self.recorded[0] if self.recorded else None)

    def alive(self) -> bool:
        if self.adopted is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                return self.adopted.is_running() and self.adopted.status() != psutil.STATUS_ZOMBIE
            return False
        return self.proc is not None and self.proc.poll() is None

    def exit_reason(self) -> str:
        if self.alive():
            return "is running"
        if self.proc is not None:
            return how_it_ended(self.proc.poll())
        if self.recorded is not None:      # started by another process: a zombie still holds its exit status
            rc = zombie_exit_status(*self.recorded)
            return how_it_ended(rc) if rc is not None else \
                "has ended (its exit status was collected by another process)"
        return "is not running (no process of it is known here: not started, or its last start failed)"

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
        """Pids still in the program's process group after its leader ended (its workers, re-parented)."""
        if self.recorded is None or self.alive():
            return []
        return orphans_of(*self.recorded)

    def status(self) -> str:
        """'ok', or one line saying what is wrong: how it ended, its orphans (and the port they hold),
        its last log line; or that it runs but does not listen on its port."""
        if self.alive():
            dead = self.incidents(peek=True)
            if self.ready_at is not None and not listening(self.pid, self.ready_at[1]):
                held = holders(self.pid, self.ready_at[1])
                return (f"running, but not listening on {self.ready_at[0]}:{self.ready_at[1]}"
                        + (f" (held by pids {held})" if held else "") + f"; last log line: {self.last_line()}")
            return "ok" if not dead else f"running, but {len(dead)} worker(s) died and were respawned: {dead[-1]}"
        orphans = self.orphans()
        held = any(self.ready_at and listening(p, self.ready_at[1]) for p in orphans)
        return (f"{self.exit_reason()}"
                + (f"; orphaned worker(s) {orphans} still running" if orphans else "")
                + (f", holding {self.ready_at[0]}:{self.ready_at[1]}" if held else "")
                + f"; last log line: {self.last_line()}")

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

    def log_since_start(self, lines: int = 15) -> str:
        """The last lines the program wrote to any of its logs since it was started (or adopted)."""
        text = [ln for f in self.logs() for ln in _read_from(f, self._log_marks.get(f, 0))[0].splitlines()
                if ln.strip()]
        return "\n".join(text[-lines:]) if text else self.log_tail(lines)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def last_line(self) -> str:
        """The last line it logged since its latest start (the lab's logs outlive a lab of the same name)."""
        lines = [ln for f in self.logs() for ln in _since_last_start(_read(f)).splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(nothing logged since it started)"

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


def _since_last_start(text: str) -> str:
    """A log's text after its last START_MARK line (all of it if it has none)."""
    head, mark, tail = text.rpartition(START_MARK)
    return tail.partition("\n")[2] if mark else text


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def how_it_ended(rc: int | None) -> str:
    """A return code as subprocess gives it (negative: the signal) in words."""
    if rc is None:
        return "is running"
    if rc < 0:
        return f"was killed by signal {-rc} ({signal.Signals(-rc).name})"
    return f"exited with code {rc}"


def same_process(pid: int, created: float) -> psutil.Process | None:
    """The process `pid` if it is still the one that started at `created` (psutil's create_time)."""
    try:
        p = psutil.Process(pid)
        return p if p.create_time() == created else None
    except psutil.NoSuchProcess:
        return None


def orphans_of(pid: int, created: float) -> list[int]:
    """What is left of the process group of `pid` (a program started with start_new_session, at
    `created`) besides its leader. A group id is not given to a new process while the group has
    members, so they are that program's; only if `pid` now names another process (the group ended
    and the id was reused) are they none of its."""
    if psutil.pid_exists(pid) and same_process(pid, created) is None:
        return []
    return [p for p in group_members(pid) if p != pid]


def end_recorded(pid: int, created: float, grace: float = 5.0) -> str | None:
    """End a program another process started, known by its recorded pid and start time: its process
    group, through its leader while that runs, else its orphaned workers. What was done, or None."""
    leader = same_process(pid, created)
    with contextlib.suppress(psutil.NoSuchProcess):
        if leader is not None and leader.status() != psutil.STATUS_ZOMBIE:
            stop_group(pid, signal.SIGTERM, grace)
            return f"pid {pid}"
    if orphans := orphans_of(pid, created):
        stop_group(pid, signal.SIGTERM, grace)
        return f"its orphaned workers {orphans} (process group {pid})"
    return None


def zombie_exit_status(pid: int, created: float) -> int | None:
    """How process `pid` (started at `created`) ended, while it is a zombie nobody has collected: the
    kernel keeps its wait status in /proc/<pid>/stat (field 52, exit_code; psutil does not read it).
    As subprocess gives it: the exit code, or minus the signal. None if it is not such a zombie."""
    p = same_process(pid, created)
    try:
        if p is None or p.status() != psutil.STATUS_ZOMBIE:
            return None
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, psutil.Error):
        return None
    if len(fields) < 50:
        return None
    return os.waitstatus_to_exitcode(int(fields[49]))


def _listening_inodes(pid: int, port: int) -> set[str]:
    """The socket inodes listening on TCP `port` in the network namespace of process `pid`."""
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for row in rows:
            _, local, _, st, *rest = row.split()
            if st == "0A" and local.endswith(f":{port:04X}"):
                found.add(rest[5])
    return found


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` holds open (psutil's per-process connections read the
    caller's namespace, not the process's, so the fds are read here)."""
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                out.add(link[8:-1])
    return out


def listening(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds a socket listening on TCP `port` (in its namespace)."""
    wanted = _listening_inodes(pid, port)
    return bool(wanted and wanted & _socket_inodes(pid))


def holders(pid: int, port: int) -> list[int]:
    """Other processes in the namespace of `pid` that hold a socket listening on `port`."""
    wanted = _listening_inodes(pid, port)
    if not wanted:
        return []
    try:
        ns = os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return []
    out = []
    for p in psutil.pids():
        with contextlib.suppress(OSError):
            if p != pid and os.stat(f"/proc/{p}/ns/net").st_ino == ns and wanted & _socket_inodes(p):
                out.append(p)
    return out


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
    leader = any(p.pid == pgid for p in members)
    terminate(members, sig, grace, send=lambda: os.kill(pgid, sig) if leader else os.killpg(pgid, sig))
    _reap([p.pid for p in members if p.pid != pgid])


def terminate(procs: list[psutil.Process], sig: int = signal.SIGTERM, grace: float = 5.0,
              send: Callable[[], None] | None = None) -> list[psutil.Process]:
    """End processes by their own ids: `sig` to each (or `send()`, e.g. to a master or a process group),
    SIGKILL to those still running after `grace` s. Returns those that outlived even that (none, normally)."""
    with contextlib.suppress(ProcessLookupError, PermissionError, psutil.NoSuchProcess):
        if send is not None:
            send()
        else:
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.send_signal(sig)
    alive = wait_ended(procs, grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    return wait_ended(alive, grace)


def wait_ended(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` s until each process has ended (psutil.wait_procs, which collects this
    process's own children); a zombie whose parent is another process counts as ended (it runs no
    more; psutil would wait for it the whole timeout). Returns those still running."""
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive:
        _, alive = psutil.wait_procs(alive, timeout=min(0.05, max(0.0, deadline - time.monotonic())))
        alive = [p for p in alive if not _zombie(p)]
        if time.monotonic() >= deadline:
            break
    return alive


def _zombie(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _reap(pids: list[int]) -> None:
    """Collect the group's workers that were re-parented to this process and have ended (not the
    leader: its Popen collects it, with its exit status)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
