"""nginx in front of its upstream (uwsgi_pass or proxy_pass): reloaded gracefully with SIGHUP."""
from __future__ import annotations

import re
import signal
import tempfile
from dataclasses import replace
import time
from pathlib import Path

import psutil

from ...config.render import lab_nginx_paths, render_nginx
from ...config.settings import LabSettings
from ...errors import ServiceError, UnknownName
from ...path import ServiceSpec
from ..conditions.tls import write_server_files
from ..host.tools import tool
from .base import Service, Site
from .checks import nginx_t


class Nginx(Service):
    deaths = re.compile(r"worker process \d+ exited on signal \d+")
    PROTOCOLS = ("uwsgi", "http")   # how it can speak to its upstream (uwsgi_pass, proxy_pass)
    server_template = "nginx-server.conf.j2"   # its server block (an OCI registry's front has its own)

    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings):
        super().__init__(site, spec, settings)
        if spec.upstream is None or spec.upstream.protocol not in self.PROTOCOLS:
            raise UnknownName(f"service {spec.name}: nginx needs an upstream it speaks to with "
                              f"{' or '.join(self.PROTOCOLS)}, not {spec.upstream}")
        self.conf = self.file(".conf")
        self.error_log = self.file("-error.log")
        # its temp files: on the VM's storage when it uses the VM's disk, else in the run directory
        self.temp_dir = site.temp_dir if self.uses_vm_disk else self.file("-temp")

    def render(self, s: LabSettings, tls_dir: Path | None = None) -> str:
        _, host, port = self.site.plan.endpoint(self.spec.upstream)
        listen = f"{self.ready_at[0]}:{self.ready_at[1]}"
        tls = f"{self.ready_at[0]}:{self.site.plan.port(self.spec.tls)}" if self.spec.tls else None
        return render_nginx(s, replace(lab_nginx_paths(self.site.run_dir, listen, f"{host}:{port}",
                                                       self.site.images_dir.resolve(), self.temp_dir, self.name,
                                                       self.spec.upstream.protocol, tls, tls_dir),
                                       server_template=self.server_template))

    def check(self, s: LabSettings) -> None:
        """`nginx -t` on the config `s` gives, in nginx's namespace (its listen address is there); with TLS
        turned on by `s` (its files not made yet), against a throwaway certificate."""
        trial = self.file("-check.conf")
        needed = ("server.pem", "server.key", *(("dhparam.pem",) if s.tls.dhparam else ()))
        with tempfile.TemporaryDirectory(prefix="servelab-tls-check-") as tmp:
            tls_dir = None
            if s.tls.enabled and not all((self.site.run_dir / "tls" / f).is_file() for f in needed):
                write_server_files(Path(tmp), ["127.0.0.1"], s.tls.dhparam)
                tls_dir = Path(tmp)
            trial.write_text(self.render(s, tls_dir))
            try:
                nginx_t(trial, self.ns)
            finally:
                trial.unlink(missing_ok=True)

    def logs(self) -> list[Path]:
        return [self.log, self.error_log]

    def argv(self) -> list[str]:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.render(self.settings))
        d = self.site.run_dir
        return [tool("nginx"), "-c", str(self.conf), "-p", str(d), "-e", str(self.error_log), "-g", "daemon off;"]

    def change(self, s: LabSettings, timeout: float = 15.0) -> str:
        """SIGHUP, then wait until none of the old workers is left and new ones run."""
        self.settings = s
        self.conf.write_text(self.render(s))
        master = psutil.Process(self.pid)
        old = {c.pid for c in master.children()}
        master.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = set()
            for c in master.children():
                try:
                    if c.status() != psutil.STATUS_ZOMBIE:
                        now.add(c.pid)
                except psutil.NoSuchProcess:   # an old worker that just exited
                    pass
            if now and not now & old:
                return f"{self.name}: reloaded gracefully"
            time.sleep(0.02)
        raise ServiceError(f"{self.name} did not replace its workers within {timeout:.0f}s:\n{self.log_tail()}")
