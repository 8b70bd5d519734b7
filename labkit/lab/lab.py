"""The lab: the declared path built in namespaces with its real programs, up and down as one thing.

    with Lab("main", image_size=64 * 2**20) as lab:
        lab.health()

`compute_nodes=N` builds N compute nodes behind a switch with one uplink to the VM
(`labkit.path.registry_path`); pulls and surveys use the first, a storm all of them. `path=`
builds any other declared path instead (Mininet's `Mininet(topo=...)`): every service it declares
is started with the class its `program` names in `labkit.lab.programs.PROGRAMS`.
"""
from __future__ import annotations

import atexit
from dataclasses import replace
import logging
import os
from pathlib import Path

import psutil

from ..config.presets import SREGISTRY_SHIPPED
from ..config.settings import LabSettings, SettingsError
from ..errors import ConfigRejected, LabError, ToolMissing
from ..path import Plan, ServingPath, plan, registry_path
from . import netns, network, ownership
from .changes import HostFeatures, plan_changes, publish_problems
from ..registry.catalog import Image, ensure_image
from .layers import LAYER_STEPS, Layers
from .supervision import Supervision
from .programs import PROGRAMS, PUBLISHERS, Iperf3Server, Site, program_problems, publishing
from .publish import notes as publish_notes
from .tools import tool

DATA = Path(os.environ.get("SERVELAB_DATA", Path(__file__).resolve().parents[2] / "data"))
MiB = 1024 * 1024
log = logging.getLogger("labkit.lab")


class Lab(Supervision, Layers):
    """The path up and down as one thing; apply settings to it while it runs (supervision in
    Supervision; storage, CPU and client layers in Layers)."""

    def __init__(self, name: str = "main", settings: LabSettings = SREGISTRY_SHIPPED,
                 image_size: int = 64 * MiB, namespaced: bool | None = None, data_dir: Path = DATA,
                 keep: bool = False, quiet: bool = False, compute_nodes: int = 1, path: ServingPath | None = None):
        use_ns = netns.can_use_namespaces() if namespaced is None else namespaced
        if use_ns and not netns.can_use_namespaces():
            raise LabError("network namespaces need root; run as root or use namespaced=False")
        path = path or registry_path(compute_nodes)
        if problems := program_problems(path) + path.problems(settings):
            raise SettingsError("; ".join(problems))
        self.name = name
        self.settings = settings
        self.plan: Plan = plan(name, use_ns, settings.publish.host_port, path,
                               tls_port=settings.tls.port if settings.tls.enabled else None)
        self.compute_nodes = len(path.compute)
        self.image_size = image_size
        self.run_dir, self.images_dir = Path(data_dir) / "run" / name, Path(data_dir) / "images"
        self.keep = keep
        self._level = logging.DEBUG if quiet else logging.INFO
        self.services: dict = {}
        self.image: Image | None = None
        self.notes: list[str] = []
        self._kernel_defaults: dict[str, str] = {}
        self._layers_init()
        # the programs see the VM's storage (images, nginx's temp dir) where the storage layer puts it
        self.site = Site(self.plan, self.run_dir, self.storage.images_dir, self.storage.temp_dir)

    def say(self, msg: str, warn: bool = False) -> None:
        """A lab message: routine at INFO (DEBUG for a quiet lab); `warn`: one the reader must see (WARNING)."""
        log.log(logging.WARNING if warn else self._level, msg)

    @classmethod
    def attach(cls, name: str, data_dir: Path = DATA) -> "Lab":
        """The lab `name` that another process brought up (`labkit up`), to look at and heal."""
        st = ownership.read(name)
        if not st or "settings" not in st:
            raise LabError(f"no lab '{name}' is up on this machine (`labkit status` lists the labs)")
        path = (ServingPath.from_dict(st["path"]) if "path" in st
                else registry_path(st.get("compute_nodes", 1)))
        lab = cls(name, LabSettings.model_validate(st["settings"]), st["image_size"], st["namespaced"],
                  data_dir, keep=True, path=path)
        lab.image = ensure_image(lab.images_dir, lab.image_size)
        lab._kernel_defaults = st.get("kernel_defaults", {})
        lab._layers_adopt()
        for svc in lab._programs():
            if svc.name in st.get("pids", {}):
                svc.adopt(*st["pids"][svc.name])
            lab._joins(svc)
            lab.services[svc.name] = svc
        return lab

    # --- lifecycle -------------------------------------------------------
    def up(self) -> "Lab":
        if problems := self.layer_problems(self.settings) + publish_problems(self.settings, self.features()):
            raise SettingsError("; ".join(problems))
        self._clean_before_start()
        ownership.write(self.name, **ownership.owner_stamp(), keep=self.keep, namespaced=self.plan.namespaced,
                        run_dir=str(self.run_dir), pids={}, image_size=self.image_size,
                        compute_nodes=self.compute_nodes, path=self.plan.path.to_dict(),
                        settings=self.settings.model_dump(mode="json"))
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.image = ensure_image(self.images_dir, self.image_size)
            if self.plan.namespaced:
                if not netns.kernel_features()["netem"]:
                    self.notes.append("tc netem is not in this kernel: no added delay or loss; "
                                      "links are shaped with tbf only")
                self._kernel_defaults = network.build(self.plan, self.settings)
                ownership.write(self.name, kernel_defaults=self._kernel_defaults)
            else:
                self.notes += self.plan.caveats() + publish_notes(self.settings.publish, False)
                for c in self.plan.caveats():
                    self.say("loopback mode: " + c, warn=True)
            self._layers_up()
            for svc in self._programs():
                self._start(svc)
        except BaseException:
            self.say("start failed: ending what was started", warn=True)
            self.down()
            raise
        if not self.keep:  # a Jupyter kernel shut down normally ends its lab too
            atexit.register(self.down)
        self.say(f"lab '{self.name}' is up ({'namespaces' if self.plan.namespaced else 'loopback'}, "
                 f"image {self.image.uri}, {self.image.size / MiB:.0f} MiB)")
        return self

    def down(self) -> None:
        atexit.unregister(self.down)
        for svc in reversed(list(self.services.values())):
            svc.stop()
        self.services.clear()
        for line in self._layers_down() + ownership.end(self.name):
            self.say(line)

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def _clean_before_start(self) -> None:
        for name in sorted({self.name, *ownership.stale()}):
            done = ownership.end(name)
            if done:
                self.say(f"cleaned {'stale ' if name != self.name else ''}lab '{name}': " + "; ".join(done))

    # --- programs ----------------------------------------------------------
    def _programs(self) -> list:
        """The path's services (each with the class its program names), then its published ports."""
        services = [PROGRAMS[spec.program](self.site, spec, self.settings) for spec in self.plan.path.services]
        return services + self._publishers()

    def _publishers(self) -> list:
        """What Docker runs for the published ports under the settings (labkit.lab.publish)."""
        return publishing(self.site, self.plan.path.published, self.settings)

    def instances(self, program: str) -> list:
        """Every running service of `program` (a path may declare several nginx, say)."""
        return [v for v in self.services.values() if isinstance(v, PROGRAMS[program])]

    def _start(self, svc) -> None:
        self.services[svc.name] = svc
        self._joins(svc)
        svc.start()
        self._record_pids()
        svc.wait_ready()
        self._place(svc)

    def _record_pids(self) -> None:
        pids = {}
        for name, svc in self.services.items():
            if svc.pid is None:        # not a process (DNAT rules), or not running
                continue
            try:
                pids[name] = (svc.pid, psutil.Process(svc.pid).create_time())
            except psutil.NoSuchProcess:
                pass
        ownership.write(self.name, pids=pids)

    # --- changing it while it runs ----------------------------------------
    def features(self) -> HostFeatures:
        try:
            nft = bool(tool("nft"))
        except ToolMissing:
            nft = False
        return HostFeatures(self.plan.namespaced, tuple(self.congestion_controls()), nft)

    def check(self, new: LabSettings) -> list[str]:
        """The groups `new` changes; raises SettingsError (nothing applied) if it cannot be applied here."""
        changes = plan_changes(self.settings, new, self.features())
        problems = list(changes.problems) + self.plan.path.problems(new) + self.layer_problems(new)
        for step in changes.steps:
            for svc in self.instances(step) if step in PROGRAMS else []:
                if hasattr(svc, "check"):
                    try:
                        svc.check(new)
                    except ConfigRejected as exc:
                        problems.append(f"{svc.name}: {exc}")
        if problems:
            raise SettingsError("; ".join(problems))
        return list(changes.groups)

    def apply(self, new: LabSettings) -> list[str]:
        """Change the running lab to `new`, checked first; on a failure midway it goes back to the old settings.

        nginx reloads gracefully (SIGHUP), uwsgi restarts, sysctls and tc change in place,
        the publish mode switches between docker-proxy and DNAT; every instance of a program
        changes (each nginx of the path reloads). Returns what was done.
        """
        self.check(new)
        steps = plan_changes(self.settings, new, self.features()).steps
        old = self.settings
        try:
            done = self._do(new, steps)
        except BaseException:
            self.say("apply failed: going back to the previous settings", warn=True)
            self._do(old, steps)
            raise
        self._record_pids()
        ownership.write(self.name, settings=new.model_dump(mode="json"))
        return done

    def _do(self, s: LabSettings, steps: tuple[str, ...]) -> list[str]:
        done = self._replan(s)
        self.settings = s
        for step in steps:
            if step in LAYER_STEPS:
                done += self._change_layer(step, s, self._start)
            elif step == "kernel":
                network.set_kernel(self.plan, s, self._kernel_defaults)
                done.append("kernel: sysctls set in every namespace")
            elif step == "links":
                network.shape(self.plan, s)
                done.append("links: tc tbf reshaped")
            elif step == "publish":
                for svc in [v for v in self.services.values() if isinstance(v, tuple(PUBLISHERS.values()))]:
                    self.services.pop(svc.name).stop()
                for svc in self._publishers():
                    self._start(svc)
                done.append(f"publish: iptables {s.publish.iptables}, userland-proxy {s.publish.userland_proxy}, "
                            f"ip {s.publish.ip}")
            elif step in PROGRAMS:
                if step == "nginx" and s.tls.dhparam:
                    self.tls.ensure_dhparam()
                done += [svc.change(s) for svc in self.instances(step)]
                if step == "nginx":
                    done += self._nginx_changed(s)
        return done

    def _replan(self, s: LabSettings) -> list[str]:
        """TLS turned on or off (or its port moved): the plan's published port follows, every program sees the
        new plan, the lab's CA and certificate are made or removed (the "publish" and "nginx" steps follow)."""
        tls_port = s.tls.port if s.tls.enabled else None
        if (self.plan.tls, self.plan.port("nginx_tls") if self.plan.tls else None) == (tls_port is not None, tls_port):
            return []
        self.plan = plan(self.name, self.plan.namespaced, s.publish.host_port, self.plan.path, tls_port=tls_port)
        self.site = replace(self.site, plan=self.plan)
        for svc in self.services.values():
            if hasattr(svc, "site"):
                svc.site = self.site
        done = self.tls.down() + self.tls.up(s.tls.enabled, s.tls.dhparam, self._tls_addresses())
        ownership.write(self.name, settings=s.model_dump(mode="json"))
        return done + [f"tls: {'on, published on ' + str(tls_port) if tls_port else 'off'}"]

    @staticmethod
    def congestion_controls() -> list[str]:
        return Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()

    # --- looking at it ---------------------------------------------------
    def processes(self) -> dict[str, list[psutil.Process]]:
        """The path's processes by service (iperf3 servers left out: they only serve the hops), and
        the FUSE processes of disks with latency."""
        return {**{name: svc.processes() for name, svc in self.services.items()
                   if not isinstance(svc, Iperf3Server)}, **self.layer_processes()}
