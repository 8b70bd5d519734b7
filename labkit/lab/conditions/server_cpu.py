"""The server's CPU as one condition: docker-compose's limits per program (`cpus:`, `cpuset:`;
labkit.lab.conditions.cpu_limits) and the CPU model's emulation (OpenSSL told the model's features,
each process held to its core's speed; labkit.lab.conditions.cpu_emulation).

A program joins its limit's group before it execs, starts with the model's OpenSSL capability
vector, and has each of its processes placed in its core's group once running. A live change of
the limits moves the running processes; another model starts the programs again (OpenSSL reads
its capability vector once); another TLS suite under the same model retunes the quotas when nginx
has reloaded.
"""
from __future__ import annotations

from pathlib import Path

from ...config.settings import LabSettings
from ...path import ServingPath
from ...app.catalog import Image
from ..host.cgroups import Cgroup
from .base import Condition, Crew, Ground
from .cpu_emulation import CoreModel, Emulation
from .cpu_limits import CpuGroups


def _model_name(s: LabSettings) -> str:
    return s.cpu.model if isinstance(s.cpu.model, str) else s.cpu.model.name


def _member(svc) -> str | None:
    return getattr(svc, "cpu_member", None)


class ServerCpu(Condition):
    steps = ("cpu",)

    def __init__(self, ground: Ground, path: ServingPath):
        self.ground = ground
        self.limits = CpuGroups(ground.lab, ground.feats, ground.notes, path.cpu_keys)
        self.model = CoreModel(ground.lab, ground.feats, ground.notes, ground.meter)

    # --- the lifecycle ---------------------------------------------------------------
    def up(self, s: LabSettings, image: Image) -> list[str]:
        done = self.limits.set(s.cpu) + self.model.set(s) + self.model.hold()
        if self.limits.groups or self.model.cap is not None:
            self.ground.cgroups_used()
        return done

    def adopt(self, s: LabSettings, image: Image) -> None:
        self.limits.adopt()
        self.model.set(s)

    def change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        old = self.model.emu
        if (old.model if old else "host") != _model_name(s) or \
                (old is not None and old.emulate != (s.cpu.model_speed == "emulate")):
            users = crew.users(lambda svc: bool(_member(svc)))
            done = crew.restarting(users, lambda: self.model.remove() + self.limits.set(s.cpu) + self.model.set(s)
                                   + self.model.hold())
            return done + [f"cpu: model {_model_name(s)}: restarted {', '.join(v.name for v in users)}"]
        done = self.limits.set(s.cpu)
        for svc in crew.users(lambda svc: bool(_member(svc))):
            crew.replace(svc)
        return done

    def after_change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        """nginx reloaded: a new TLS suite may mean another code path (the quotas follow), and its new
        workers go to their groups."""
        if step != "nginx":
            return []
        lines = self.model.retune(s) if self.model.emu else []
        self.before_pull(crew)
        return lines

    def down(self) -> list[str]:
        return self.model.remove() + self.limits.remove()

    # --- a program passing through ----------------------------------------------------
    def joins(self, svc) -> list[Path]:
        return self.limits.procs_files(_member(svc))

    def env(self, svc) -> dict[str, str]:
        return self.model.env(_member(svc))

    def place(self, svc, pids: list[int]) -> None:
        self.limits.add(_member(svc), pids)
        self.model.place(_member(svc), pids)

    def before_pull(self, crew: Crew) -> None:
        """With a CPU model: every process (a respawned worker too) in its core's group."""
        if self.model.slowing:
            self.model.prune()
            for svc in crew.users(lambda svc: bool(_member(svc))):
                self.model.place(_member(svc), [p.pid for p in svc.processes()])

    # --- what measuring reads -----------------------------------------------------------
    @property
    def emulation(self) -> Emulation | None:
        """The model's emulation on this machine (None: the host's own CPU)."""
        return self.model.emu

    @property
    def ratio(self) -> float:
        """How many times faster this machine's core is than the model's on the lab's code path (1: host)."""
        return self.model.emu.ratio if self.model.emu else 1.0

    def info(self) -> dict:
        return self.model.info()

    def usage_ns(self, member: str) -> int | None:
        """CPU time of a limited program's group (None: it has no group here)."""
        return self.limits.usage_ns(member)

    def core_groups(self) -> dict[int, Cgroup]:
        """Each process held to an emulated core, by pid: its group."""
        return {pid: g for pid, (_, g) in self.model.groups.items()}
