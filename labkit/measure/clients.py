"""The last hop: the program on the compute node that pulls the image and writes it, measured alike.

    labkit         labkit.measure.puller: manifest, then the image; bytes discarded or written to a file
    curl           curl -sS -f -L --max-redirs 5 --proto-redir =http,https [--cacert {cacert}] -o {dest} {url}
    sregistry-cli  sregistry pull {uri} with its `registry` client (PyPI sregistry 0.2.39): it asks
                   the manifest itself and downloads the manifest's `image` URL in 1 MiB chunks
                   into a temp file in SREGISTRY_TMPDIR, then moves it to ./<collection>-<name>:<tag>.sif
    singularity-2.6  Singularity 2.6.1's shub:// pull (labkit.measure.singularity26): the manifest, then
                   the image in 1 MiB reads into a temporary file renamed to <collection>-<name>-<tag>.simg
                   in its pull folder; https verified against the lab's CA when the path has TLS ({cacert})
    command        the user's template, e.g. `singularity pull {dest} shub://{host}:{port}/{uri}`

A program runs in the compute node's namespace, joined to the block-I/O group of the compute node's
disk before it execs, in a directory of its own under the destination (`client.dest`: memory, the
compute node's local disk, or its mount of the shared file system). Every pull gives a PullResult:
the bytes and sha256 of the file it wrote, seconds from its start to its exit, the time until its
first byte was on disk, the CPU it used (user + system, its rusage when reaped), and an error
for a non-zero exit, a missing, short or wrong file, or the deadline.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config.settings import COMMAND_FIELDS, ClientSettings, command_fields
from ..errors import LabError, SettingsError
from ..in_netns import exec_prefix
from ..lab.host.tools import tool
from ..registry.client import Trust, fetch_manifest
from ..registry.follow import MAX_HOPS
from .puller import PullResult, Verify, pull, pull_parallel

FIELDS = COMMAND_FIELDS                           # what a command template may use
DEST = "image.sif"                                # the file name {dest} stands for, in the pull's own directory
_POLL = 0.005


@dataclass(frozen=True)
class Target:
    """What to pull and from where: the compute node's namespace, the published address, the image."""
    ns: str | None
    host: str
    port: int
    uri: str
    sha256: str
    size: int
    trust: Trust | None = None      # https, verified against this (the lab's CA) when given


def render_command(template: str, values: dict[str, str]) -> list[str]:
    """A command template as argv: split like a shell line, then each word's {fields} filled in
    (a value never splits a word, nor is it read by a shell unless the template runs one)."""
    try:
        bad = sorted(command_fields(template) - set(FIELDS))
    except ValueError as e:
        raise SettingsError(f"client.command: {e}") from None
    if bad:
        raise SettingsError(f"client.command: {template!r} uses {', '.join('{' + b + '}' for b in bad)}; "
                            f"a template may use {', '.join('{' + f + '}' for f in FIELDS)}")
    return [w.format(**values) for w in shlex.split(template)]


def client_argv(kind: str, template: str | None, values: dict[str, str]) -> list[str]:
    """The command line of one pull by `kind` (pure, but for finding the program)."""
    if kind == "curl":
        ca = ["--cacert", values["cacert"]] if values.get("cacert") else []
        # redirects followed as labkit's own client follows them (labkit.registry.follow.MAX_HOPS)
        return [tool("curl"), "-sS", "-f", "-L", "--max-redirs", str(MAX_HOPS), "--proto-redir", "=http,https",
                *ca, "-o", values["dest"], values["url"]]
    if kind == "sregistry-cli":
        return [tool("sregistry"), "pull", values["uri"]]
    if kind == "singularity-2.6":        # https verified against the lab's CA where the path has TLS ({cacert})
        ca = values.get("cacert")
        return [sys.executable, "-m", "labkit.measure.singularity26", f"{values['host']}:{values['port']}",
                values["uri"], *(["--cafile", ca] if ca else ["--http"])]
    if kind == "command":
        return render_command(template or "", values)
    raise SettingsError(f"client.kind: {kind!r} runs in this process, not as a command")


def client_env(kind: str, values: dict[str, str], workdir: Path, secrets: Path) -> dict[str, str]:
    """The environment of one pull: sregistry-cli's registry client pointed at the lab, writing in `workdir`."""
    env = dict(os.environ, HOME=str(workdir))
    if kind == "singularity-2.6":        # its pull folder is its own directory (pull.exec's order)
        env.pop("SINGULARITY_CACHEDIR", None)
        env.update(SINGULARITY_PULLFOLDER=str(workdir),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                            env.get("PYTHONPATH")])))
    if kind == "sregistry-cli":
        tls = bool(values.get("cacert"))
        env.update(SREGISTRY_CLIENT="registry",
                   SREGISTRY_REGISTRY_BASE=f"{'https' if tls else 'http'}://{values['host']}:{values['port']}",
                   SREGISTRY_CLIENT_SECRETS=str(secrets), SREGISTRY_TMPDIR=str(workdir), SREGISTRY_DISABLE="1")
        if tls:      # sregistry-cli's requests verifies against REQUESTS_CA_BUNDLE
            env["REQUESTS_CA_BUNDLE"] = values["cacert"]
        else:
            env["SREGISTRY_REGISTRY_NOHTTPS"] = "1"
    return env


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


def _result(run: _Run, kind: str, t: Target, verify: Verify) -> PullResult:
    f = written_file(run.workdir)
    n = f.stat().st_size if f else 0
    sha_ok = None
    if f and verify == "sha256":
        with open(f, "rb") as fh:
            sha_ok = hashlib.file_digest(fh, "sha256").hexdigest() == t.sha256
    rc = run.proc.returncode
    tail = _said(run.log.read_text(errors="replace"), run.program) if run.log.exists() else []
    error = ("still running after the deadline: killed" if run.timed_out
             else f"{kind} exited with {rc}: {tail[0] if tail else '(no output)'}" if rc
             else "no file written" if f is None
             else f"short file: {n} of {t.size} bytes" if n != t.size
             else "sha256 mismatch" if sha_ok is False else "")
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


def run_programs(kind: str, template: str | None, t: Target, dest_root: Path, parallel: int, verify: Verify,
                 deadline: float, preexec: Callable[[], None] | None = None,
                 first_byte: threading.Event | None = None, timeout: float = 30) -> list[PullResult]:
    """`parallel` pulls by an external client at once, each in its own directory; results in order."""
    check_room(dest_root, parallel, t.size)
    url = fetch_manifest(t.ns, t.host, t.port, t.uri, timeout, t.trust)["image"] if kind in ("curl", "command") else ""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    runs = [_Run(dest_root / f"{tag}-{i}", dest_root / f"{tag}-{i}.log") for i in range(parallel)]
    try:
        cmds = []
        for r in runs:
            r.workdir.mkdir(parents=True)
            values = {"host": t.host, "port": str(t.port), "uri": t.uri, "url": url, "dest": str(r.workdir / DEST),
                      "cacert": t.trust.cafile if t.trust and t.trust.cafile else ""}
            cmds.append((client_argv(kind, template, values),
                         client_env(kind, values, r.workdir, r.log.with_suffix(".json"))))
        waiters = []
        for r, (argv, env) in zip(runs, cmds):
            r.program = os.path.basename(argv[0])
            with open(r.log, "wb") as out:
                r.start = time.perf_counter()
                r.proc = subprocess.Popen([*exec_prefix(t.ns), *argv], cwd=r.workdir, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True, preexec_fn=preexec)
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
        return [_result(r, kind, t, verify) for r in runs]
    finally:
        for r in runs:
            if r.proc is not None and r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
                r.proc.wait()
            shutil.rmtree(r.workdir, ignore_errors=True)
            for extra in (r.log, r.log.with_suffix(".json")):
                extra.unlink(missing_ok=True)


def pull_with(client: ClientSettings, t: Target, dest_root: Path | None, parallel: int = 1, verify: Verify = "sha256",
              timeout: float = 30, deadline: float = 600, preexec: Callable[[], None] | None = None,
              first_byte: threading.Event | None = None) -> list[PullResult]:
    """`parallel` pulls by the client `client.kind` at once, each verified; results in order."""
    if client.kind != "labkit":
        return run_programs(client.kind, client.command, t, dest_root, parallel, verify, deadline, preexec,
                            first_byte, timeout)
    sinks = None
    if client.writes:
        check_room(dest_root, parallel, t.size)
        tag = f"{os.getpid()}-{time.monotonic_ns()}"
        sinks = [dest_root / f"{tag}-{i}.sif" for i in range(parallel)]
    try:
        if parallel == 1:
            return [pull(t.ns, t.host, t.port, t.uri, t.sha256, timeout=timeout, deadline=deadline, verify=verify,
                         first_byte=first_byte, sink=sinks[0] if sinks else None, trust=t.trust)]
        return pull_parallel(t.ns, t.host, t.port, t.uri, parallel, t.sha256, timeout=timeout, deadline=deadline,
                             verify=verify, sinks=sinks, trust=t.trust)
    finally:
        for s in sinks or []:
            s.unlink(missing_ok=True)
