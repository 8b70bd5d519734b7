"""The compute nodes' CPU in a time-dilated lab: each node's clients in a CFS group at their share / k.

DieCast slows every resource by k, the clients too: a compute node's pulling programs get their share of
a core at k = 1 (labkit.config.dilation.CLIENT_NODE_CORES) / k, together, in a group of their own,
`servelab/<lab>.clients/<node>` (cpu and cpuacct). Not under the lab's own group `servelab/<lab>`:
that one caps the server's programs together (labkit.lab.conditions.cpu_emulation). A client program
joins its node's group before it execs (`procs_files`, with the node's disk group: ClientDest.preexec);
labkit's own client, whose pulls are threads of the measuring process, runs them in a child process
there (labkit.clients.own_child). Each group's CPU time and CFS throttling are read around a pull
(`counters`), so the run says whether a client bound (labkit.config.dilation.ClientLoad).

Only a lab that asks for a machine model (`machine.dilation` > 1 or `machine.vcpus`) has these groups:
real time without a model runs the clients as before. Recorded under the lab's name (ownership), ended
with it and by the next start after a killed owner.
"""
from __future__ import annotations

from pathlib import Path

from ...config.dilation import client_cap
from ...config.settings import LabSettings
from ..host import ownership
from ..host.cgroups import Cgroup, CgroupError
from .base import Ground
from .machine import asks


def clients_group(lab: str) -> str:
    """The name under `servelab/` of the lab's client groups (beside the lab's own, not under its cap)."""
    return f"{lab}.clients"


class ClientCpu:
    def __init__(self, ground: Ground, nodes: tuple[str, ...]):
        self.ground, self.nodes = ground, nodes
        self.groups: dict[str, Cgroup] = {}
        self.cap: float | None = None          # each node's clients, in this machine's cores (None: not held)

    def up(self, s: LabSettings) -> list[str]:
        if not asks(s):
            return []
        g = self.ground
        if not (g.feats.cpu_quota and g.feats.cpu_usage):
            g.note("machine: the clients' CPU is not dilated: " + "; ".join(g.feats.missing))
            return []
        self.cap = client_cap(s)
        ownership.own(g.lab, "client:cpu", "cgroups", {"lab": clients_group(g.lab)})
        try:
            for node in self.nodes:
                grp = Cgroup(clients_group(g.lab), node, g.feats, controllers=("cpu", "cpuacct")).create()
                self.groups[node] = grp
                grp.set_cpus(round(self.cap, 4))
        except BaseException:
            self.down()
            raise
        line = (f"machine: each compute node's clients held to {self.cap:.3g} cores (their 1 core at k = 1 / "
                f"{s.machine.dilation:g}), measured for binding on every pull")
        g.note(line)
        return [line]

    def adopt(self, s: LabSettings) -> None:
        if asks(s) and self.ground.feats.cpu_quota:
            self.cap = client_cap(s)
            for node in self.nodes:
                grp = Cgroup(clients_group(self.ground.lab), node, self.ground.feats, controllers=("cpu", "cpuacct"))
                if all(d.is_dir() for d in grp.dirs):
                    self.groups[node] = grp

    @property
    def held(self) -> bool:
        return bool(self.groups)

    def procs_files(self, node: str | None) -> list[Path]:
        grp = self.groups.get(node or self.nodes[0])
        return grp.procs_files() if grp else []

    def counters(self) -> dict[str, tuple[int, int, int]]:
        """Per node: (CPU ns used, CFS periods, periods throttled) so far."""
        out = {}
        for node, grp in self.groups.items():
            try:
                out[node] = (grp.cpu_usage_ns(), *grp.throttling())
            except (CgroupError, OSError):
                continue
        return out

    def down(self) -> list[str]:
        done = []
        for grp in self.groups.values():
            done += [f"removed cgroup {p}" for p in grp.remove()]
        self.groups.clear()
        ownership.disown(self.ground.lab, "client:cpu")
        return done
