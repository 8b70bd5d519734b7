"""The path's links and each node's kernel as one condition: the namespaces, veth pairs and bridges
built (labkit.lab.host.network), each shaped link's rate (tc tbf), the TCP sysctls in every namespace.

Without namespaces (not root) the lab runs on loopback: nothing is built, and what that leaves out
(the plan's caveats, Docker's rules) goes into the notes.
"""
from __future__ import annotations

from ...config.settings import LabSettings
from ...path import Plan
from ...app.catalog import Image
from ..host import netns, network, ownership
from ..programs.publish import notes as publish_notes
from .base import Condition, Crew, Ground


class Links(Condition):
    steps = ("kernel", "links")

    def __init__(self, ground: Ground, plan: Plan):
        self.ground, self.plan = ground, plan       # its namespaces and addresses (a new TLS port leaves them)
        self.defaults: dict[str, str] = {}          # the kernel's own TCP sysctls, put back for a setting of None

    def up(self, s: LabSettings, image: Image) -> list[str]:
        g = self.ground
        if not self.plan.namespaced:
            g.notes.extend(self.plan.caveats() + publish_notes(s.publish, False))
            return ["loopback mode: " + c for c in self.plan.caveats()]
        if not netns.kernel_features()["netem"]:
            g.note("tc netem is not in this kernel: no added delay or loss; links are shaped with tbf only")
        self.defaults = network.build(self.plan, s)
        ownership.write(g.lab, kernel_defaults=self.defaults)
        return []

    def adopt(self, s: LabSettings, image: Image) -> None:
        self.defaults = (ownership.read(self.ground.lab) or {}).get("kernel_defaults", {})

    def change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        if step == "kernel":
            network.set_kernel(self.plan, s, self.defaults)
            return ["kernel: sysctls set in every namespace"]
        network.shape(self.plan, s)
        return ["links: tc tbf reshaped"]
