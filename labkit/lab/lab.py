"""The lab: the declared path built in namespaces with its real programs, up and down as one thing.

    with Lab("main", image_size=64 * MiB) as lab:
        lab.health()

`compute_nodes=N`: N compute nodes behind one uplink; `path=`: any declared path (Mininet's `Mininet(topo=...)`).
The Lab orchestrates: conditions (lab.conditions) own their lifecycles, `running` the programs, a Supervisor heals.
"""
from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path

from ..config.presets import SREGISTRY_SHIPPED
from ..config.settings import LabSettings, SettingsError
from ..errors import LabError
from ..path import Plan, ServingPath, Vantage, plan, registry_path
from ..app.catalog import ensure_image
from ..clients.apis import api_problems
from ..clients.registry_api import Trust
from ..units import MiB, format_size
from .changes import plan_changes, publish_problems, replanned
from .conditions.base import Condition, Ground, end_all
from .conditions.client_dest import ClientDest
from .conditions.links import Links
from .conditions.machine import ScaleModel
from .conditions.server_cpu import ServerCpu
from .conditions.speed_meter import Meter, current, session
from .conditions.storage import VmStorage
from .conditions.tls import LabTls, tls_addresses
from .host import netns, ownership
from .host.cgroups import IoCounters
from .programs import Site, program_problems
from .running import Running
from .supervision import Supervisor

DATA = Path(os.environ.get("SERVELAB_DATA", Path(__file__).resolve().parents[2] / "data"))
log = logging.getLogger("labkit.lab")


class Lab:
    """The path up and down as one thing; apply settings to it while it runs."""

    def __init__(self, name: str = "main", settings: LabSettings = SREGISTRY_SHIPPED,
                 image_size: int = 64 * MiB, namespaced: bool | None = None, data_dir: Path = DATA,
                 keep: bool = False, quiet: bool = False, compute_nodes: int = 1, path: ServingPath | None = None):
        use_ns = netns.can_use_namespaces() if namespaced is None else namespaced
        if use_ns and not netns.can_use_namespaces():
            raise LabError("network namespaces need root; run as root or use namespaced=False")
        self.path: ServingPath = path or registry_path(compute_nodes, registry=settings.registry.kind)
        if problems := program_problems(self.path) + self.path.problems(settings) + api_problems(settings):
            raise SettingsError("; ".join(problems))
        self.name, self.image_size, self.keep = name, image_size, keep
        # `settings`: the user's (experiments, bundles, export, what `labkit up` records); `run`: what runs, dilated by
        # `machine`'s scale model (refused here, before anything is made, if it cannot be; a CPU model's speed measured)
        self.machine = ScaleModel(settings, current())
        self.settings, self.run = settings, self.machine.running(settings)
        self.plan: Plan = plan(name, use_ns, settings.publish.host_port, self.path,
                               tls_port=settings.tls.port if settings.tls.enabled else None)
        self.run_dir, self.images_dir = Path(data_dir) / "run" / name, Path(data_dir) / "images"
        self._level, self.image, self.notes = logging.DEBUG if quiet else logging.INFO, None, self.machine.notes
        ground = Ground(name, self.run_dir, self.images_dir, use_ns, self.notes, self.machine.meter)
        self.links, self.tls, self.storage = Links(ground, self.plan), LabTls(ground, tls_addresses(self.plan)), \
            VmStorage(ground)
        self.cpu, self.client = ServerCpu(ground, self.path), ClientDest(ground, self.path)
        self.conditions: tuple[Condition, ...] = (self.links, self.tls, self.storage, self.cpu, self.client)  # up in order, down reversed
        # the programs see the VM's storage (images, nginx's temp dir) where the storage condition puts it
        self.running = Running(name, self.conditions, Site(self.plan, self.run_dir, self.storage.images_dir,
                                                           self.storage.temp_dir))
        # the running programs, asked of the lab: by name, their processes (by service), a program's instances
        self.services, self.processes, self.instances = \
            self.running.services, self.running.processes, self.running.instances

    def say(self, *lines: str, warn: bool = False) -> None:
        """Routine lines at INFO (DEBUG when quiet; the CLI shows them with -v); `warn`: at WARNING, always seen."""
        for line in lines:
            log.log(logging.WARNING if warn else self._level, line)

    @classmethod
    def attach(cls, name: str, data_dir: Path = DATA) -> "Lab":
        """The lab `name` that another process brought up (`labkit up`), to look at and heal."""
        st = ownership.read(name)
        if not st or "settings" not in st:
            raise LabError(f"no lab '{name}' is up on this machine (`labkit status` lists the labs)")
        path = ServingPath.from_dict(st["path"]) if "path" in st else registry_path(st.get("compute_nodes", 1))
        with session(Meter.recorded(st.get("cpu_speed", []))):     # the speed measured at its start, not again
            lab = cls(name, LabSettings.model_validate(st["settings"]), st["image_size"], st["namespaced"],
                      data_dir, keep=True, path=path)
        lab.image = ensure_image(lab.images_dir, lab.image_size)
        for c in lab.conditions:
            c.adopt(lab.run, lab.image)
        for svc in lab.running.programs(lab.run):
            lab.running.adopt(svc, st.get("pids", {}))
        lab.say(*lab.running.stock(lab.image_size, lab.images_dir / "oci", push=False))
        return lab

    # --- lifecycle -------------------------------------------------------
    def up(self) -> "Lab":
        feats = netns.host_features(self.plan.namespaced)
        if problems := self._problems(self.run) + publish_problems(self.run, feats):
            raise SettingsError("; ".join(problems))
        self.say(*ownership.begin(self.name, keep=self.keep, namespaced=self.plan.namespaced,
                                  run_dir=str(self.run_dir), pids={}, image_size=self.image_size,
                                  compute_nodes=len(self.path.compute), path=self.path.to_dict(),
                                  settings=self.settings.model_dump(mode="json")))
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.image = ensure_image(self.images_dir, self.image_size)
            for c in self.conditions:
                self.say(*c.up(self.run, self.image))
            for svc in self.running.programs(self.run):
                self.running.start(svc)
            self.say(*self.running.stock(self.image_size, self.images_dir / "oci", push=True))
        except BaseException:
            self.say("start failed: ending what was started", warn=True)
            self.down()
            raise
        if not self.keep:  # a Jupyter kernel shut down normally ends its lab too
            atexit.register(self.down)
        self.say(f"lab '{self.name}' is up ({'namespaces' if self.plan.namespaced else 'loopback'}, "
                 f"image {self.image.uri}, {format_size(self.image.size)})")
        return self

    def down(self) -> None:
        atexit.unregister(self.down)
        self.running.stop_all()
        self.say(*end_all(self.conditions), *ownership.end(self.name))

    __enter__ = up
    __exit__ = lambda self, *exc: self.down()     # noqa: E731 - the lab ends with its `with` block

    # --- changing it while it runs ----------------------------------------
    _problems = lambda self, s: [*api_problems(s), *(p for c in self.conditions for p in c.problems(s))]  # noqa: E731
    k = property(lambda self: self.machine.k, doc="the time dilation (1: real time): rates read back x k")

    def check(self, new: LabSettings) -> list[str]:
        """The groups the user's `new` changes; SettingsError (nothing applied) if it cannot be applied here."""
        new = self.machine.running(new)     # another machine.* is refused by plan_changes (set at start)
        changes = plan_changes(self.run, new, netns.host_features(self.plan.namespaced))
        problems = [*changes.problems, *self.path.problems(new), *self._problems(new),
                    *self.running.problems(changes.steps, new)]
        if problems:
            raise SettingsError("; ".join(problems))
        return list(changes.groups)

    def apply(self, new: LabSettings) -> list[str]:
        """Change the running lab to `new`, checked first; on a failure midway back to the old settings. Each step
        (labkit.lab.changes) is done by what owns it: a condition, Docker's publishers, or each program's instances."""
        self.check(new)
        given, new = new, self.machine.running(new)
        steps, old = plan_changes(self.run, new, netns.host_features(self.plan.namespaced)).steps, self.run
        try:
            done = self._do(new, steps)
        except BaseException:
            self.say("apply failed: going back to the previous settings", warn=True)
            self._do(old, steps)
            raise
        self.settings = given
        self.running.record_pids()
        ownership.write(self.name, settings=given.model_dump(mode="json"))
        return done

    def _do(self, s: LabSettings, steps: tuple[str, ...]) -> list[str]:
        done = self._replan(s)
        self.run = s
        return done + [line for step in steps for line in self.running.do(step, s)]

    def _replan(self, s: LabSettings) -> list[str]:
        """TLS on or off (or its port moved): a new plan for every program, the lab's CA made or removed."""
        if (new := replanned(self.plan, s)) is None:
            return []
        self.plan = new
        self.running.replan(new)
        return [*self.tls.down(), *self.tls.up(s, self.image),
                f"tls: {f'on, published on {s.tls.port}' if s.tls.enabled else 'off'}"]

    # --- measuring it and looking at it ------------------------------------------------
    def trust_at(self, vantage: Vantage) -> Trust | None:
        """What a client at `vantage` verifies the lab's nginx against (None: plain http there)."""
        return self.tls.trust() if self.plan.tls_at(vantage) else None

    def before_pull(self) -> None:
        """What every pull needs first (a cold cache drops the image; a CPU model's new workers held)."""
        for c in self.conditions:
            c.before_pull(self.running)

    def disk_counters(self) -> dict[str, IoCounters]:
        """Device counters of the lab's own disks, by role ("vm", "compute"); absent when not a loop disk."""
        return {c.disk_role: n for c in self.conditions if c.disk_role and (n := c.counters()) is not None}

    @property
    def watch(self) -> Supervisor:
        """The lab's supervision as it is now: status, health, manifest, require_running, heal, describe."""
        return Supervisor(self.name, self.running, self.plan, self.image, self.run, self.trust_at, self.say)

    # the supervisor's, called on the lab (labkit.lab.supervision.Supervisor says what each does)
    status, health, manifest, require_running, heal, describe = (property(lambda self, n=n: getattr(self.watch, n))
        for n in ("status", "health", "manifest", "require_running", "heal", "describe"))
