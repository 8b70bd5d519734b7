"""Supervision of a running lab: one line per service, manifests at every vantage point, heal.

`Supervisor(name, running, plan, image, settings, trust_at, say)` is made for each look (the Lab's `status`, `health`,
`heal`, ...): the running programs (labkit.lab.running: it records new pids and puts a restarted
program in its groups), the plan, the image served, and the trust a client needs at a vantage point.
It works the same in the process that brought the lab up and in another one (`labkit status`,
`labkit heal`: `Lab.attach`), where the programs are known by their recorded pids and start times.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config.settings import LabSettings
from ..errors import LabError, LabkitError, ServiceDown, ServiceError
from ..path import Plan, Vantage
from ..app.catalog import Image
from ..clients.registry_api import Trust, fetch_manifest
from .running import Running


@dataclass(frozen=True)
class Supervisor:
    name: str
    running: Running
    plan: Plan
    image: Image | None
    settings: LabSettings
    trust_at: Callable[[Vantage], Trust | None]
    say: Callable[..., None]          # (line, warn=False): the lab's say

    @property
    def services(self) -> dict:
        return self.running.services

    def status(self) -> dict[str, str]:
        """One line per service: 'ok', or what is wrong (how it ended, orphans, its last log line)."""
        return {name: svc.status() for name, svc in self.services.items()}

    def manifest(self, vantage: str | None = None, timeout: float = 10) -> dict:
        """The image's manifest (`GET /api/container/<collection>/<name>:<tag>`; of an OCI registry,
        `GET /v2/<name>/manifests/<tag>`, its digest checked) asked at a vantage point."""
        v = self.plan.path.vantage(vantage) if vantage else self.plan.path.client_vantage
        if oci := [s for s in self.services.values() if hasattr(s, "fetch_manifest")]:
            return oci[0].fetch_manifest(*self.plan.endpoint(v), timeout=timeout, trust=self.trust_at(v))
        return fetch_manifest(*self.plan.endpoint(v), self.image.uri, timeout=timeout, trust=self.trust_at(v))

    def health(self) -> dict[str, str]:
        """Each service's status, and a real manifest request at every vantage point."""
        out = self.status()
        for v in [v for v in self.plan.path.vantages if self.plan.serves(v)]:
            try:
                self.manifest(v.name, timeout=5)
                out[f"manifest via {v.name}"] = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                out[f"manifest via {v.name}"] = f"{type(exc).__name__}: {exc}"
        return out

    def require_running(self) -> None:
        """Refuse to measure a path with a service down: that would report a broken path's throughput."""
        if self.image is None:
            raise LabError(f"lab '{self.name}' is not up: call lab.up() (or use `with Lab(...) as lab`)")
        down = {n: st for n, st in self.status().items() if not st.startswith(("ok", "running"))}
        if down:
            raise ServiceDown("not measuring: " + "; ".join(f"{n} {st}" for n, st in down.items())
                              + ". lab.heal() (or `labkit heal`) restarts it")

    def heal(self, timeout: float = 20.0) -> list[str]:
        """Restart every service that died, its orphaned workers ended first (by its process group), and
        say "healed" only once the path really serves again: each restarted program listening on its
        port itself (not an orphan in its place) and still running after a manifest was answered at
        every vantage point. Workers that died and were respawned by their master are noted.

        Returns one line per service it acted on; raises ServiceError naming what failed (with the
        program's own words from its log, e.g. nginx's bind() error), after trying every service."""
        done, failed, restarted = [], [], []
        for name, svc in list(self.services.items()):
            seen = svc.incidents()
            if seen:
                done.append(f"{name}: {len(seen)} worker death(s) seen, respawned by its master: {seen[-1]}")
            if svc.alive():
                continue
            orphans = svc.orphans()
            why = (f"it {svc.exit_reason()}" if hasattr(svc, "exit_reason") else svc.status()) + \
                (f"; ended its orphaned workers {orphans} (process group {svc.group_id})" if orphans else "")
            try:
                svc.restart()
            except LabkitError as exc:
                failed.append(f"{name}: NOT healed: restarted ({why}), but {exc}")
                continue
            self.running.place(svc)
            restarted.append((name, why))
        self.running.record_pids()
        if restarted:
            problems = self._serving(timeout, [n for n, _ in restarted])
            for name, why in restarted:
                if problems:
                    failed.append(f"{name}: NOT healed: restarted ({why}), but " + "; ".join(problems))
                else:
                    done.append(f"{name}: healed: restarted ({why}); {self._serves_line(name)}")
        for line in done + failed:
            self.say("heal: " + line, warn=True)
        if failed:
            raise ServiceError("\n".join(done + failed))
        return done

    def _serving(self, timeout: float, names: list[str]) -> list[str]:
        """What keeps the path from serving, waited on up to `timeout` s: a service not running or not
        listening itself, a vantage point whose manifest request fails, or a restarted program that
        ended after answering. [] when it serves."""
        deadline = time.monotonic() + timeout
        while True:
            problems = [f"{k}: {v}" for k, v in self.health().items() if v != "ok"]
            if not problems:      # still up after answering (a program that dies a moment later)
                problems = [f"{n}: {st}" for n in names if (st := self.services[n].status()) != "ok"]
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.2)

    def _serves_line(self, name: str) -> str:
        svc = self.services[name]
        where = f"pid {svc.pid} listening on {svc.ready_at[0]}:{svc.ready_at[1]}, " if getattr(svc, "ready_at", None) else ""
        return where + "the manifest answered via " + ", ".join(v.name for v in self.plan.path.vantages)

    def describe(self) -> list[dict]:
        """The nodes with their role, namespace, address, the services in them and the stages those carry
        under the lab's settings (the path's; e.g. nginx's node: "nginx, tls" with TLS on)."""
        node_of = {s.name: s.node for s in self.plan.path.services}    # a stage names its services
        return [{"node": n.name, "role": n.role, "namespace": self.plan.ns(n.name) or "(host)",
                 "address": self.plan.ip(n.name),
                 "services": ", ".join(f"{k} (pid {s.pid})" if s.pid else k
                                       for k, s in self.services.items() if s.node == n.name),
                 "stages": ", ".join(st.name for st in self.plan.path.carrying(self.settings)
                                     if any(node_of.get(p) == n.name for p in st.programs))}
                for n in self.plan.path.nodes]
