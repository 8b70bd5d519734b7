"""Docker's docker-proxy for one published port, stand-alone (`userland-proxy` on)."""
from __future__ import annotations

import os
import select

from ...config.settings import LabSettings
from ...errors import ServiceError
from ...path import Published
from ..host.process import Process
from ..host.tools import tool
from .base import Site
from .publish import binding_ip


class DockerProxy(Process):
    """Docker's docker-proxy for one published port, stand-alone: it reports start-up on fd 3 ('0' ok, '1<error>').

    It listens where dockerd binds it (daemon.json's `ip`; Docker's default 0.0.0.0, every address
    of the host); with Docker's rules in place it only gets what they leave to it
    (labkit.path.publish_route: the host's own 127.0.0.1, hairpin).
    """

    def __init__(self, site: Site, spec: Published, settings: LabSettings):
        p, name = site.plan, f"{spec.proxy}@{spec.name}"
        self.host_ip = binding_ip(p, spec.node, settings.publish.ip) if p.namespaced else p.ip(spec.node)
        # ready when it answers: on 0.0.0.0 ask at 127.0.0.1, which Docker's rules leave to it
        ready = "127.0.0.1" if self.host_ip == "0.0.0.0" else self.host_ip
        super().__init__(name, spec.node, p.ns(spec.node), site.log(name), (ready, p.port(spec.host_port)))
        self.target = (p.ip(spec.container), p.port(spec.container_port))
        self.cpu_member = spec.cpu

    @classmethod
    def publishing(cls, site: Site, published: tuple[Published, ...], settings: LabSettings) -> list:
        """One docker-proxy per published port, as dockerd starts them with `userland-proxy` on (and,
        without namespaces, where the lab cannot build Docker's rules)."""
        if not (settings.publish.userland_proxy or not site.plan.namespaced):
            return []
        return [cls(site, pb, settings) for pb in published]

    def argv(self) -> list[str]:
        return [tool("docker-proxy"), "-proto", "tcp", "-host-ip", self.host_ip,
                "-host-port", str(self.ready_at[1]),
                "-container-ip", self.target[0], "-container-port", str(self.target[1])]

    def command(self) -> list[str]:
        # docker-proxy writes its start-up answer to fd 3: give it the pipe's write end there
        return ["bash", "-c", f'exec "$0" "$@" 3>&{self._fd3} {self._fd3}>&-', *self.argv()]

    def start(self, pass_fds: tuple[int, ...] = ()) -> None:
        r, self._fd3 = os.pipe()
        try:
            super().start(pass_fds=(self._fd3,))
            os.close(self._fd3)
            self._fd3 = -1
            ready, _, _ = select.select([r], [], [], 10)
            msg = os.read(r, 4096).decode(errors="replace") if ready else "(no answer in 10 s)"
            if not msg.startswith("0"):
                raise ServiceError(f"{self.name} did not start: {msg.strip()}\n{self.log_tail()}")
        finally:
            os.close(r)
            if self._fd3 >= 0:
                os.close(self._fd3)
