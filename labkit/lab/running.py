"""The path's programs as they run: started in their conditions' groups, their pids recorded, restarted.

`Running` is what a condition's live change gets as its `crew` (labkit.lab.conditions.base.Crew):
the services it holds, stopped and started again around a change, or placed in their groups again.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import psutil
from pathlib import Path

from ..config.settings import LabSettings
from ..errors import ConfigRejected
from ..path import Plan
from .conditions.base import Condition
from .host import ownership
from .host.cgroups import joiner
from .programs import PROGRAMS, PUBLISHERS, Iperf3Server, Site, publishing


class Running:
    def __init__(self, lab: str, conditions: Iterable[Condition], site: Site):
        self.lab, self.conditions, self.site = lab, tuple(conditions), site
        self.services: dict = {}

    def programs(self, s: LabSettings) -> list:
        """The path's services (each with the class its program names), then what Docker runs for the
        published ports under `s` (labkit.lab.programs.publish), in start order; not started."""
        path = self.site.plan.path
        return [PROGRAMS[spec.program](self.site, spec, s) for spec in path.services] + \
            publishing(self.site, path.published, s)

    def republish(self, s: LabSettings) -> str:
        """The "publish" step of a live change: Docker's publishers under `s` in place of the running ones."""
        for svc in self.users(lambda v: isinstance(v, tuple(PUBLISHERS.values()))):
            self.services.pop(svc.name).stop()
        for svc in publishing(self.site, self.site.plan.path.published, s):
            self.start(svc)
        return f"publish: iptables {s.publish.iptables}, userland-proxy {s.publish.userland_proxy}, ip {s.publish.ip}"

    def replan(self, plan: Plan) -> None:
        """Every program sees the lab's new plan (TLS turned on or off moves the published port)."""
        self.site = replace(self.site, plan=plan)
        for svc in self.users(lambda v: hasattr(v, "site")):
            svc.site = self.site

    def join(self, svc) -> None:
        """Before `svc` starts: the groups it joins before it execs (the conditions' in order: on cgroup
        v2 the last, its CPU group, wins, under the lab) and the environment they give it."""
        svc.preexec = joiner([f for c in self.conditions for f in c.joins(svc)])
        if hasattr(svc, "env"):
            svc.env = {k: v for c in self.conditions for k, v in c.env(svc).items()}

    def place(self, svc) -> None:
        """After a (re)start or a new limit: every process of `svc` in its groups (those forked before a
        group existed included)."""
        pids = [p.pid for p in svc.processes()]
        for c in self.conditions:
            c.place(svc, pids)

    def start(self, svc) -> None:
        self.services[svc.name] = svc
        self.join(svc)
        svc.start()
        self.record_pids()
        svc.wait_ready()
        self.place(svc)

    def adopt(self, svc, recorded: dict) -> None:
        """A service another process of the lab started, known by its recorded pid and start time."""
        if svc.name in recorded:
            svc.adopt(*recorded[svc.name])
        self.join(svc)
        self.services[svc.name] = svc

    def stock(self, size: int, layout_dir: Path, push: bool) -> list[str]:
        """An OCI registry of the path gets the lab's OCI image (labkit.lab.programs.distribution)."""
        return [svc.stock(size, layout_dir, push=push) for svc in self.services.values() if hasattr(svc, "stock")]

    def oci_image(self):
        """The OCI image the path's registry serves once stocked (labkit.lab.oci_image.OciImage); None for sregistry."""
        return next((svc.image for svc in self.services.values() if hasattr(svc, "stock")), None)

    def stop_all(self) -> None:
        for svc in reversed(list(self.services.values())):
            svc.stop()
        self.services.clear()

    def record_pids(self) -> None:
        pids = {}
        for name, svc in self.services.items():
            if svc.pid is None:        # not a process (DNAT rules), or not running
                continue
            try:
                pids[name] = (svc.pid, psutil.Process(svc.pid).create_time())
            except psutil.NoSuchProcess:
                pass
        ownership.write(self.lab, pids=pids)

    # --- a live change -----------------------------------------------------------------
    def problems(self, steps: tuple[str, ...], new: LabSettings) -> list[str]:
        """What the programs the steps change say of `new` (nginx -t, say), before anything is applied."""
        out = []
        for svc in [v for step in steps if step in PROGRAMS for v in self.instances(step)]:
            try:
                if hasattr(svc, "check"):
                    svc.check(new)
            except ConfigRejected as exc:
                out.append(f"{svc.name}: {exc}")
        return out

    def do(self, step: str, s: LabSettings) -> list[str]:
        """One step of a live change (labkit.lab.changes.STEP_ORDER): the conditions' that own it, Docker's
        publishers under the new publish mode, or every instance of a program (the conditions around it)."""
        done = [line for c in self.conditions if step in c.steps for line in c.change(step, s, self)]
        if step == "publish":
            done.append(self.republish(s))
        elif step in PROGRAMS:
            for c in self.conditions:
                c.before_change(step, s)
            done += [svc.change(s) for svc in self.instances(step)]
            done += [line for c in self.conditions for line in c.after_change(step, s, self)]
        return done

    # --- a condition's crew --------------------------------------------------------------
    def users(self, holds: Callable[[object], bool]) -> list:
        return [v for v in self.services.values() if holds(v)]

    def restarting(self, users: list, change: Callable[[], list[str]]) -> list[str]:
        for svc in users:
            svc.stop()
        done = change()
        for svc in users:
            self.start(svc)
        return done

    def replace(self, svc) -> None:
        self.join(svc)
        self.place(svc)

    # --- looking at them -----------------------------------------------------------------
    def instances(self, program: str) -> list:
        """Every running service of `program` (a path may declare several nginx, say)."""
        return [v for v in self.services.values() if isinstance(v, PROGRAMS[program])]

    def processes(self) -> dict[str, list[psutil.Process]]:
        """The path's processes by service (iperf3 servers left out: they only serve the hops), and the
        conditions' own (the FUSE processes of disks with latency, of shared-fs mounts)."""
        out = {name: svc.processes() for name, svc in self.services.items() if not isinstance(svc, Iperf3Server)}
        for c in self.conditions:
            out.update(c.processes())
        return out
