"""The server's CPU as the seed's hardware: OpenSSL told that CPU's features, each process held to its core's speed.

With `cpu.model` a model (labkit.config.cpu_models), the lab
- sets OPENSSL_ia32cap in nginx's and uwsgi's environment (OpenSSL reads it once, at start) so that
  OpenSSL runs the code paths that CPU runs (no AES-NI, PCLMULQDQ, SSSE3, AVX ... on an Opteron 6174);
- measures this machine on that same masked code path when the lab starts (labkit.lab.conditions.
  speed_meter: `openssl speed -evp <path> -bytes 16384`, the best of three one-second runs, with the other
  processes' CPU meanwhile, flagged busy above labkit.config.cpu_speed.BUSY_CORES) and takes the ratio to
  the model's published rate (its cycles per byte at its clock) for the code path the lab's TLS settings
  negotiate (the model's reference path when TLS is off): one figure per run, in its notes and records;
- with `model_speed` emulate, puts every process of nginx, uwsgi and docker-proxy in a CPU group of its
  own whose CFS quota is its threads' worth (an nginx worker 1, a uwsgi worker its threads, docker-proxy
  every core; capped at this machine's cores) of 1/ratio of a core: one emulated core per thread, so
  one TLS connection (one nginx worker) gets one slow core however many workers there are, and N
  connections spread over the workers add up, as on the seed's VM (up to this machine's cores).
If this machine is already as slow as the model on that path, the ratio is 1 and nothing is slowed.
With `machine.dilation` k > 1 or `machine.vcpus` (labkit.config.dilation, a time-dilated scale model) each
emulated core is 1/ratio/k of a core (the host's own CPU too: 1/k), a process gets at most `vcpus` of them,
and the lab's CPU group (`servelab/<lab>`, holding every server group) caps them together at vcpus/ratio/k
of this machine's cores (this machine's cores / k without `vcpus`): the server's programs share `vcpus`.
Features the model has and this machine lacks, and missing cgroups, are said in `lab.notes`.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from ...config import cpu_models
from ...config.tls_clients import offer
from ...config.cpu_speed import NOTE_PREFIX, Speed
from ...config.settings import LabSettings
from ..host import ownership
from ..host.cgroups import Cgroup, CgroupError, Features, lab_group
from ..host.tools import tool
from .speed_meter import Meter, cached

OPENSSL_MEMBERS = ("nginx", "uwsgi")       # the programs OpenSSL is told the model's features in


def host_flags(cpuinfo: str | None = None) -> set[str]:
    """This machine's instruction-set features (/proc/cpuinfo's first `flags` line)."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return set(m.group(1).split()) if m else set()


def host_name(cpuinfo: str | None = None) -> str:
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    return m.group(1).strip() if m else "unknown CPU"


def openssl_version() -> str:
    return subprocess.run([tool("openssl"), "version"], capture_output=True, text=True).stdout.strip()


@dataclass(frozen=True)
class Emulation:
    """What the lab does for `cpu.model`: the mask, the code path and the ratio, each with its numbers."""
    model: str
    mask: str
    masked: tuple[str, ...]
    lacking: tuple[str, ...]
    path: str
    suite: str
    why: str
    model_mbps: float
    host_mbps: float
    ratio: float
    emulate: bool
    speed: Speed | None = None          # the measurement host_mbps is from (its runs, how busy the machine was)

    def note(self) -> str:
        m = cpu_models.resolve(self.model) if isinstance(self.model, str) else None
        src = f" ({m.paths[self.path].source}; clock: {m.clock_source})" if m else ""
        slow = (f"each process of nginx, uwsgi and docker-proxy held to 1/{self.ratio:.2f} = {1 / self.ratio:.3f} "
                f"of a core per thread (CFS quota)" if self.emulate and self.ratio > 1 else
                "no slowdown: this machine is no faster on that path" if self.emulate else
                "model_speed native: this machine's speed")
        busy = ", BUSY machine: see cpu speed" if self.speed and self.speed.busy else ""
        return (f"cpu.model {self.model}: OPENSSL_ia32cap={self.mask} for nginx and uwsgi; {self.why}; "
                f"published {self.model_mbps:.1f} MB/s per core{src} vs this machine on the same masked path "
                f"{self.host_mbps:.1f} MB/s (openssl speed{busy}) -> ratio {self.ratio:.2f}; {slow}")


def emulation(s: LabSettings, meter: Meter) -> Emulation | None:
    """The emulation `s.cpu.model` asks for on this machine, its speed from `meter` (None: host)."""
    m = cpu_models.resolve(s.cpu.model)
    if m is None:
        return None
    mask = cpu_models.ia32cap(m, host_flags())
    path, suite, why = cpu_models.code_path(s.tls, m, offer(s.client.tls_offer).suites())   # what its clients get
    sp = meter.speed(path, mask.env)
    name = s.cpu.model if isinstance(s.cpu.model, str) else s.cpu.model.name
    return Emulation(name, mask.env, mask.masked, mask.lacking, path, suite, why, round(m.mbps(path), 1), sp.mbps,
                     round(cpu_models.ratio(sp.mbps, m.mbps(path)), 3), s.cpu.model_speed == "emulate", sp)


def core_cpus(threads: int, ncpu: int, ratio: float, k: float, cap: float | None) -> float:
    """One process's quota in cores: its threads' worth (at most this machine's cores) of 1/ratio/k of a core,
    to a thousandth, never above the lab's cap `cap` (None: no cap). On cgroup v1 the kernel refuses a
    child's quota above its parent's (EINVAL, kernel/sched/core.c tg_cfs_schedulable_down): rounded up past
    the cap (ratio 2.596 at k = 2: 0.193 against 0.19260) the process's group was refused and removed."""
    cpus = round(max(0.01, min(threads, ncpu) / ratio / k), 3)
    return cpus if cap is None else min(cpus, math.floor(cap * 1e5) / 1e5)


class CoreModel:
    """The lab's CPU-model layer: the environment nginx and uwsgi start with, and a CPU group per process."""

    def __init__(self, lab: str, feats: Features, notes: list[str], meter: Meter):
        self.lab, self.feats, self.notes, self.meter = lab, feats, notes, meter
        self.emu: Emulation | None = None
        self.groups: dict[int, tuple[str, Cgroup]] = {}      # pid -> (member, its group)
        self.threads: dict[str, int] = {}
        self.k, self.vcpus = 1.0, None
        self.cap: float | None = None     # the server's programs together, in this machine's cores (None: no cap)

    def set(self, s: LabSettings) -> list[str]:
        """Work out the emulation for `s` (this machine measured once per code path, recorded in the lab's state
        for `Lab.attach`); notes for what cannot be done."""
        self.emu = emulation(s, self.meter)
        if self.emu:
            ownership.write(self.lab, cpu_speed=self.meter.records())
        self.notes[:] = [n for n in self.notes if not n.startswith(("cpu.model", "machine:", NOTE_PREFIX))]
        ncpu = os.cpu_count() or 1
        self.k, self.vcpus = s.machine.dilation, s.machine.vcpus
        cores = min(ncpu, self.vcpus) if self.vcpus else ncpu
        self.threads = {"nginx": 1, "uwsgi": min(s.uwsgi.threads, cores), "proxy": cores}
        self.cap = (self.vcpus / self.ratio / self.k if self.vcpus else ncpu / self.k if self.k > 1 else None)
        lines = []
        if self.cap is not None:
            lines.append(f"machine: {self.vcpus or ncpu} emulated cores at k = {self.k:g}, each "
                         f"{1 / self.ratio / self.k:.3f} of this machine's core (speed ratio {self.ratio:.2f}); "
                         f"nginx, uwsgi and docker-proxy together held to {self.cap:.3f} cores")
            if not self.feats.cpu_quota:
                lines.append(f"machine: no CPU quota here ({'; '.join(self.feats.missing)}): not dilated")
        if self.emu is None:
            self._note(lines)
            return lines
        lines = [self.emu.note(), self.emu.speed.note(), *lines]
        if self.emu.lacking:
            lines.append(f"cpu.model {self.emu.model}: this machine lacks {', '.join(self.emu.lacking)}, which the "
                         f"model has: OpenSSL cannot be given them (it reads "
                         f"{', '.join(f for f in self.emu.lacking if f in cpu_models.OPENSSL_READS) or 'none of them'})")
        if self.emu.emulate and self.emu.ratio > 1 and not self.feats.cpu_quota:
            lines.append(f"cpu.model {self.emu.model}: no CPU quota here ({'; '.join(self.feats.missing)}): "
                         "the instruction set is the model's, the speed this machine's")
        if s.cpu.model_speed == "emulate" and any(s.cpu.cpus(m) is not None for m in self.threads):
            lines.append("cpu.model with cpu.<program>_cpus: each process gets the model's per-core quota in a "
                         "group of its own; the program's own `cpus:` group no longer holds its CPU time")
        self._note(lines)
        return lines

    def _note(self, lines: list[str]) -> None:
        for line in lines:
            if line not in self.notes:
                self.notes.append(line)

    @property
    def ratio(self) -> float:
        """This machine's core / the model's on the lab's code path (1: the host's own CPU, or native speed)."""
        return self.emu.ratio if self.emu and self.emu.emulate else 1.0

    @property
    def slowing(self) -> bool:
        return bool(self.feats.cpu_quota and (self.ratio > 1 or self.cap is not None))

    def hold(self) -> list[str]:
        """The server's programs together held to `cap` (the lab's own CPU group; every server group is in it)."""
        if self.cap is None or not self.feats.cpu_quota:
            return []
        ownership.own(self.lab, "cgroups", "cgroups", {"lab": self.lab})
        lab_group(self.lab, self.feats, self.cap)
        return [f"machine: the server's programs together at most {self.cap:.3f} cores"]

    def env(self, member: str | None) -> dict[str, str]:
        """The environment a program of `member` starts with (OpenSSL's capability vector)."""
        return {"OPENSSL_ia32cap": self.emu.mask} if self.emu and member in OPENSSL_MEMBERS else {}

    def place(self, member: str | None, pids: list[int]) -> None:
        """Each process of `member` in a CPU group of its own at its threads' worth of the model's core."""
        if not self.slowing or member not in self.threads:
            return
        cpus = self._cpus(member)
        for pid in pids:
            if pid in self.groups:
                continue
            ownership.own(self.lab, "cgroups", "cgroups", {"lab": self.lab})
            g = Cgroup(self.lab, f"core-{member}-{pid}", self.feats, controllers=("cpu", "cpuacct"))
            try:
                g.create()
                g.set_cpus(cpus)                 # (rounded again to a thousandth it could pass the lab's cap)
                g.add(pid)
            except (CgroupError, OSError) as exc:       # a worker that just ended, or a quota refused
                with contextlib.suppress(CgroupError, OSError):
                    g.remove()
                if psutil.pid_exists(pid):
                    self._note([f"machine: {member} pid {pid} not held to its core ({exc})"])
                continue
            self.groups[pid] = (member, g)

    def _cpus(self, member: str) -> float:
        return core_cpus(self.threads[member], os.cpu_count() or 1, self.ratio, self.k, self.cap)

    def retune(self, s: LabSettings) -> list[str]:
        """New settings of the same model (another TLS suite: another code path, another ratio): the quotas
        follow. Another model is the "cpu" step's (the programs start again)."""
        name = s.cpu.model if isinstance(s.cpu.model, str) else s.cpu.model.name
        if self.emu is None or name != self.emu.model:
            return []
        lines = self.set(s)
        if self.slowing:
            for member, g in self.groups.values():
                with contextlib.suppress(CgroupError, OSError):
                    g.set_cpus(self._cpus(member))
        return lines

    def prune(self) -> None:
        """Remove the groups of processes that ended (a reloaded nginx's old workers)."""
        for pid in [p for p in self.groups if not psutil.pid_exists(p)]:
            with contextlib.suppress(CgroupError, OSError):
                self.groups.pop(pid)[1].remove()

    def info(self) -> dict:
        return asdict(self.emu) if self.emu else {"model": "host"}

    def remove(self) -> list[str]:
        done = []
        for _, g in self.groups.values():
            with contextlib.suppress(CgroupError, OSError):
                done += [f"removed cgroup {p}" for p in g.remove()]
        self.groups.clear()
        if self.cap is not None and self.feats.cpu_quota:
            with contextlib.suppress(CgroupError, OSError):
                lab_group(self.lab, self.feats, None)
                done.append("machine: the server's CPU cap lifted")
        return done


def compare(name: str, cache: Path, remeasure: bool = False) -> tuple[list[dict], cpu_models.Mask]:
    """Per code path of model `name`: its published cycles per byte and rate per core, this machine's
    rate as it is and with the model's features masked (openssl speed, cached in `cache`: this table's only, a
    lab measures at its start), and the ratio a lab started now would about use."""
    m = cpu_models.model(name)
    mask = cpu_models.ia32cap(m, host_flags())
    rows = []

    def measured(path: str, env: str | None) -> float:
        key = f"{host_name()} | {openssl_version()} | {env or 'unmasked'} | {path}"
        return cached(path, env, cache, remeasure, key)
    for path, cp in m.paths.items():
        masked = measured(path, mask.env)
        rows.append({"code path": path, "published c/B": round(cp.cycles_per_byte, 2),
                     f"{name} MB/s per core": round(m.mbps(path), 1),
                     "this machine MB/s": measured(path, None),
                     "this machine masked MB/s": masked,
                     "ratio": round(cpu_models.ratio(masked, m.mbps(path)), 2), "source": cp.source})
    return rows, mask
