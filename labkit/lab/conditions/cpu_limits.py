"""CPU per service as docker-compose gives it to a container: a CFS quota (`cpus:`) and a cpuset.

Each limited program gets one group `servelab/<lab>/<key>` in the cpu, cpuacct and cpuset
hierarchies, keyed as settings.cpu is, by the path's names (nginx, uwsgi, proxy: the docker-proxy
processes together) (v1; v2: one tree). A program
started while its group exists joins it before it execs (`procs_files`), so every worker it forks
is born inside; a program already running is moved with all its processes (`add`). A limit set
back to None lifts it (quota max, every CPU of the parent) and the processes stay where they are.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ...config.settings import CpuSettings
from ..host import ownership
from ..host.cgroups import Cgroup, CgroupError, Features, parse_cpu_list

@dataclass(frozen=True)
class CpuLimit:
    cpus: float | None = None
    cpuset: str | None = None

    @property
    def limited(self) -> bool:
        return self.cpus is not None or self.cpuset is not None


def limits(s: CpuSettings, members: tuple[str, ...]) -> dict[str, CpuLimit]:
    """Member (a key of the path's, `ServingPath.cpu_keys`) -> its limit, from the settings (pure)."""
    return {m: CpuLimit(s.cpus(m), s.cpuset(m)) for m in members}


def missing_features(s: CpuSettings, feats: Features, members: tuple[str, ...]) -> list[str]:
    """One sentence per asked-for limit this machine cannot apply (pure)."""
    out = []
    for m, lim in limits(s, members).items():
        if lim.cpus is not None and not feats.cpu_quota:
            out.append(f"cpu.{m}_cpus not applied: " + "; ".join(feats.missing))
        if lim.cpuset is not None and not feats.cpuset:
            out.append(f"cpu.{m}_cpuset not applied: " + "; ".join(feats.missing))
    return out


class CpuGroups:
    """The lab's CPU groups, made when a limit first asks for one."""

    def __init__(self, lab: str, feats: Features, notes: list[str], members: tuple[str, ...]):
        self.lab, self.feats, self.notes, self.members = lab, feats, notes, members
        self.groups: dict[str, Cgroup] = {}
        self.settings = CpuSettings()

    def _group(self, member: str) -> Cgroup:
        if member not in self.groups:
            ownership.own(self.lab, "cgroups", "cgroups", {"lab": self.lab})
            self.groups[member] = Cgroup(self.lab, member, self.feats,
                                         controllers=("cpu", "cpuacct", "cpuset")).create()
        return self.groups[member]

    def adopt(self) -> None:
        """The groups a lab of this name made in another process (found by their names)."""
        if not self.usable():
            return
        for m in self.members:
            g = Cgroup(self.lab, m, self.feats, controllers=("cpu", "cpuacct", "cpuset"))
            if all(d.is_dir() for d in g.dirs):
                self.groups[m] = g

    def usable(self) -> bool:
        return self.feats.cpu_quota or self.feats.cpuset

    def set(self, s: CpuSettings) -> list[str]:
        """Make the groups `s` needs and write its limits; what was done (and notes for what cannot be)."""
        self.settings = s
        for line in missing_features(s, self.feats, self.members):
            if line not in self.notes:
                self.notes.append(line)
        if not self.usable():
            return []
        done = []
        for m, lim in limits(s, self.members).items():
            if not lim.limited and m not in self.groups:
                continue
            g = self._group(m)
            if self.feats.cpu_quota:
                g.set_cpus(lim.cpus)
            if self.feats.cpuset:
                g.pin(lim.cpuset if lim.cpuset is not None else self._all_cpus(g))
            done.append(f"cpu: {m} cpus={lim.cpus if lim.cpus is not None else 'unlimited'} "
                        f"cpuset={lim.cpuset or 'all'}")
        return done

    @staticmethod
    def _all_cpus(g: Cgroup) -> list[int]:
        return parse_cpu_list((g.path("cpuset").parent / "cpuset.cpus").read_text())

    def procs_files(self, member: str | None) -> list[Path]:
        """What a program of `member` joins before it execs ([] when it has no group)."""
        g = self.groups.get(member) if member else None
        return g.procs_files() if g else []

    def add(self, member: str | None, pids) -> None:
        g = self.groups.get(member) if member else None
        if g is None:
            return
        for pid in pids:
            with contextlib.suppress(CgroupError, OSError):   # a worker that just ended
                g.add(pid)

    def usage_ns(self, member: str) -> int | None:
        g = self.groups.get(member)
        if g is None or not self.feats.cpu_usage:
            return None
        return g.cpu_usage_ns()

    def remove(self) -> list[str]:
        done = []
        for m, g in self.groups.items():
            done += [f"removed cgroup {p}" for p in g.remove()]
        self.groups.clear()
        return done
