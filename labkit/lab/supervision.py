"""Supervision of a running lab: one line per service, manifests at every vantage point, heal.

A mixin of Lab: it reads `services`, `plan`, `image` and `name`, and records new pids
through `_record_pids` after a restart.
"""
from __future__ import annotations

from ..errors import LabError, ServiceDown
from ..registry.client import fetch_manifest


class Supervision:
    def status(self) -> dict[str, str]:
        """One line per service: 'ok', or what is wrong (how it ended, orphans, its last log line)."""
        return {name: svc.status() for name, svc in self.services.items()}

    def manifest(self, vantage: str | None = None, timeout: float = 10) -> dict:
        """The image's manifest (`GET /api/container/<collection>/<name>:<tag>`) asked at a vantage point."""
        v = self.plan.path.vantage(vantage) if vantage else self.plan.path.client_vantage
        return fetch_manifest(*self.plan.endpoint(v), self.image.uri, timeout=timeout,
                              trust=self.tls.client() if self.plan.tls_at(v) else None)

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

    def heal(self) -> list[str]:
        """Restart every service that died (ending its orphaned workers first); note respawned workers."""
        done = []
        for name, svc in list(self.services.items()):
            seen = svc.incidents()
            if seen:
                done.append(f"{name}: {len(seen)} worker death(s) seen, respawned by its master: {seen[-1]}")
            if not svc.alive():
                why, orphans = svc.status(), svc.orphans()
                svc.restart()
                done.append(f"{name}: restarted ({why})" + (f", ended orphans {orphans}" if orphans else ""))
        self._record_pids()
        for line in done:
            self.say("heal: " + line)
        return done

    def describe(self) -> list[dict]:
        """The nodes with their role, namespace, address, the services in them and the stages those carry
        under the lab's settings (the path's; e.g. nginx's node: "nginx, tls" with TLS on)."""
        node_of = {s.program: s.node for s in self.plan.path.services}
        return [{"node": n.name, "role": n.role, "namespace": self.plan.ns(n.name) or "(host)",
                 "address": self.plan.ip(n.name),
                 "services": ", ".join(f"{k} (pid {s.pid})" if s.pid else k
                                       for k, s in self.services.items() if s.node == n.name),
                 "stages": ", ".join(st.name for st in self.plan.path.carrying(self.settings)
                                     if any(node_of.get(p) == n.name for p in st.programs))}
                for n in self.plan.path.nodes]
