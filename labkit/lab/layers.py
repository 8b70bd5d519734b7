"""The layers under the path's programs: the VM's storage, the compute node's storage, CPU per service.

The lab's TLS files (a CA and the VM's certificate, labkit.lab.conditions.tls) are made here too, first.

A mixin of Lab (like Supervision): it reads `name`, `settings`, `services`, `image`, `notes`,
`run_dir`, `images_dir` and `plan`, and is what the Lab calls at start, before each program starts
(`_joins`), after (`_place`), before each pull (`before_pull`), for the disks' counters
(`disk_counters`), and for the "storage", "cpu" and "client" steps of a live change.
"""
from __future__ import annotations

import contextlib

import psutil

from ..config.settings import LabSettings
from ..errors import SettingsError
from .host import cgroups
from .host.cgroups import IoCounters, joiner
from .conditions.cpu_limits import CpuGroups
from .conditions.cpu_emulation import CoreModel
from .conditions.storage import ClientStorage, VmStorage
from .conditions.tls import LabTls
from ..path import FRONT


LAYER_STEPS = ("storage", "cpu", "client")


class Layers:
    def _layers_init(self) -> None:
        self._feats: cgroups.Features | None = None
        self.storage = VmStorage(self.name, self.run_dir, self.images_dir, self.cgroup_features, self.notes)
        self.cpu = CpuGroups(self.name, self.cgroup_features, self.notes, self.plan.path.cpu_keys)
        self.client_storage = ClientStorage(self.name, self.run_dir, self.cgroup_features, self.notes,
                                            self.plan.path.compute)
        self.tls = LabTls(self.name, self.run_dir)
        self.core = CoreModel(self.name, self.cgroup_features, self.notes, self.run_dir.parent / "cpu-speed.json")

    @property
    def cgroup_features(self) -> cgroups.Features:
        """What this machine's cgroups offer (read once); every missing piece is also in `notes`."""
        if self._feats is None:
            self._feats = cgroups.features() if self.plan.namespaced else \
                cgroups.Features(None, missing=["loopback mode (not root): no cgroups"])
        return self._feats

    def layer_problems(self, s: LabSettings) -> list[str]:
        """What this machine cannot do of `s`'s storage and client layers (CPU limits it cannot
        apply are noted, not refused: the lab still runs)."""
        out = []
        if not self.plan.namespaced:
            if s.storage.disk == "loop":
                out.append("storage.disk: 'loop' needs root (loop devices, mounts); this lab runs on loopback")
            if s.client.dest != "memory":
                out.append(f"client.dest: {s.client.dest!r} needs root (the compute node's disk or mounts)")
        return out

    def _layers_up(self) -> None:
        self.say_all(self.tls.up(self.settings.tls.enabled, self.settings.tls.dhparam, self._tls_addresses()))
        self.say_all(self.storage.up(self.settings.storage, self.image))
        self.say_all(self.cpu.set(self.settings.cpu))
        self.say_all(self.core.set(self.settings))
        self.say_all(self.client_storage.up(self.settings.client, self.image.size))
        if self.cgroup_features.missing and (self.storage.disk or self.cpu.groups or self.client_storage.disk):
            for m in self.cgroup_features.missing:
                if m not in self.notes:
                    self.notes.append(m)

    def _layers_adopt(self) -> None:
        """For a lab another process brought up: its disks and groups by their fixed names (to heal, measure)."""
        self.storage.adopt(self.settings.storage, self.image)
        self.cpu.adopt()
        self.client_storage.adopt(self.settings.client)
        self.tls.adopt(self.settings.tls.enabled)
        self.core.set(self.settings)

    def _layers_down(self) -> list[str]:
        done = []
        for part in (self.client_storage.down, self.core.remove, self.cpu.remove, self.storage.down, self.tls.down):
            try:
                done += part()
            except Exception as exc:  # noqa: BLE001 - the rest must still be ended; ownership retries
                done.append(f"FAILED: {exc}")
        return done

    def _tls_addresses(self) -> list[str]:
        """Where an https pull dials: the nodes Docker publishes nginx's port on, nginx's own, and the
        host's 127.0.0.1 where a vantage dials it (the VM loopback's pulls and health checks)."""
        p = self.plan
        return [p.ip(pb.node) for pb in p.path.published if pb.container_port == FRONT] + \
               [p.ip(s.node) for s in p.path.services if s.program == "nginx"] + \
               (["127.0.0.1"] if any(v.arrives == "loopback" for v in p.path.vantages) else [])

    def say_all(self, lines: list[str]) -> None:
        for line in lines:
            self.say(line)

    # --- the programs in their groups -------------------------------------------------
    def _joins(self, svc) -> None:
        """Before `svc` starts: the groups it joins before it execs (its CPU group, its disk's)."""
        files = self.cpu.procs_files(getattr(svc, "cpu_member", None))
        if getattr(svc, "uses_vm_disk", False):
            files = self.storage.procs_files() + files   # v2: the CPU group (last) wins, under the lab
        svc.preexec = joiner(files)
        if hasattr(svc, "env"):
            svc.env = self.core.env(getattr(svc, "cpu_member", None))

    def _place(self, svc) -> None:
        """After a (re)start or a new limit: every process of `svc` in its groups (those forked
        before a group existed included)."""
        pids = [p.pid for p in svc.processes()]
        if getattr(svc, "uses_vm_disk", False):
            self.storage.add(pids)
        self.cpu.add(getattr(svc, "cpu_member", None), pids)
        self.core.place(getattr(svc, "cpu_member", None), pids)

    # --- measuring -------------------------------------------------------------------
    def layer_processes(self) -> dict[str, list[psutil.Process]]:
        """The FUSE delay processes by disk (with latency they do the disk's I/O, and use CPU for it)."""
        out = {}
        for part in (self.storage, self.client_storage):
            fuse = part.disk.fuse if part.disk else None
            if fuse is not None and fuse.pid:
                with contextlib.suppress(psutil.NoSuchProcess):
                    out[f"delayfs@{part.disk.role}"] = [psutil.Process(fuse.pid)]
        for node, pid in (self.client_storage.shared.processes() if self.client_storage.shared else {}).items():
            with contextlib.suppress(psutil.NoSuchProcess):
                out[f"sharedfs@{node}"] = [psutil.Process(pid)]
        return out

    def before_pull(self) -> None:
        """What every pull needs first: with storage.cache = cold, the image dropped from the page cache;
        with a CPU model, every process (a respawned worker too) in its core's group."""
        self.storage.before_pull()
        if self.core.slowing:
            self.core.prune()
            for svc in self.services.values():
                if getattr(svc, "cpu_member", None):
                    self.core.place(svc.cpu_member, [p.pid for p in svc.processes()])

    def warm_image(self) -> bool:
        """With storage.cache = warm on a loop disk: the image into the VM's page cache before measuring, as on a
        registry that has served it before (labkit.lab.conditions.storage.VmStorage.warm)."""
        return self.storage.warm()

    def _nginx_changed(self, s: LabSettings) -> list[str]:
        """After nginx reloaded with `s`: a new TLS suite may mean another code path (the quotas follow), and
        its new workers go to their groups."""
        lines = self.core.retune(s) if self.core.emu else []
        self.before_pull()
        return lines

    def disk_counters(self) -> dict[str, IoCounters]:
        """Device counters of the lab's own disks, by role ("vm", "compute"); absent when not a loop disk."""
        out = {}
        for role, part in (("vm", self.storage), ("compute", self.client_storage)):
            c = part.counters()
            if c is not None:
                out[role] = c
        return out

    # --- live changes ------------------------------------------------------------------
    def _change_layer(self, step: str, s: LabSettings, restart) -> list[str]:
        """One of LAYER_STEPS of a live change (labkit.lab.changes plans them)."""
        if step == "storage":
            return self._change_storage(s, restart)
        return self._change_cpu(s, restart) if step == "cpu" else self._change_client(s)

    def _change_storage(self, s: LabSettings, restart) -> list[str]:
        """Limits and cache apply live; another disk kind or latency stops nginx and uwsgi, rebuilds, starts them."""
        if self.storage.limits_only(s.storage):
            return self.storage.set_limits(s.storage) or [f"storage: cache {s.storage.cache}"]
        users = [v for v in self.services.values() if getattr(v, "uses_vm_disk", False)]
        for svc in users:
            svc.stop()
        done = self.storage.change(s.storage)
        for svc in users:
            restart(svc)
        return done + [f"storage: restarted {', '.join(v.name for v in users)}"]

    def _change_cpu(self, s: LabSettings, restart=None) -> list[str]:
        old = self.core.emu
        if (old.model if old else "host") != (s.cpu.model if isinstance(s.cpu.model, str) else s.cpu.model.name) or \
                (old is not None and old.emulate != (s.cpu.model_speed == "emulate")):
            return self._change_model(s, restart)
        done = self.cpu.set(s.cpu)
        for svc in self.services.values():
            if getattr(svc, "cpu_member", None):
                self._joins(svc)
                self._place(svc)
        return done

    def _change_model(self, s: LabSettings, restart) -> list[str]:
        """Another CPU model: OpenSSL reads its capability vector at start, so the programs start again."""
        users = [v for v in self.services.values() if getattr(v, "cpu_member", None)]
        for svc in users:
            svc.stop()
        done = self.core.remove() + self.cpu.set(s.cpu) + self.core.set(s)
        for svc in users:
            restart(svc)
        return done + [f"cpu: model {s.cpu.model if isinstance(s.cpu.model, str) else s.cpu.model.name}: "
                       f"restarted {', '.join(v.name for v in users)}"]

    def _change_client(self, s: LabSettings) -> list[str]:
        if self.image is None:
            raise SettingsError("client: the lab is not up")
        return self.client_storage.change(s.client, self.image.size)
