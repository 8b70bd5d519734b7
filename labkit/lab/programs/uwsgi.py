"""uwsgi with the registry app: restarted to change settings (it reads its ini at start)."""
from __future__ import annotations

import re
import signal
import time

from ...config.render import UwsgiPaths, render_uwsgi
from ...config.settings import LabSettings
from ...errors import ServiceError
from ...path import ServiceSpec
from ...app import uwsgi_app_options
from ...app.catalog import CATALOG
from ..host.tools import tool
from .base import Service, Site


class Uwsgi(Service):
    stop_signal = signal.SIGINT
    deaths = re.compile(r"DAMN ! worker \d+ \(pid: \d+\) died")

    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings):
        super().__init__(site, spec, settings)
        self.ini = self.file(".ini")

    def render(self, s: LabSettings) -> str:
        p, host = self.site.plan, self.site.plan.ip(self.node)
        return render_uwsgi(s, UwsgiPaths(
            socket=f"{host}:{p.port(self.spec.socket)}", http_socket=f"{host}:{self.ready_at[1]}",
            pidfile=str(self.file(".pid")),
            app_options=tuple(uwsgi_app_options(str(self.site.images_dir / CATALOG), s.app.serve_mode,
                                                s.app.chunk_size))))

    def argv(self) -> list[str]:
        self.ini.write_text(self.render(self.settings))
        return [tool("uwsgi"), "--ini", str(self.ini)]

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Listening, and every worker forked (the master binds its sockets before it forks them)."""
        super().wait_ready(timeout)
        deadline = time.monotonic() + timeout
        while len(self.processes()) < 1 + self.settings.uwsgi.processes:
            if time.monotonic() > deadline:
                raise ServiceError(f"uwsgi has {len(self.processes()) - 1} of {self.settings.uwsgi.processes} "
                                   f"workers after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def change(self, s: LabSettings) -> str:
        self.settings = s
        self.restart()
        return f"{self.name}: restarted with the new ini"
