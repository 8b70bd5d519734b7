"""The path's programs, one class each: how each starts, shows it is ready, changes settings and stops.

    Iperf3Server   iperf3 -s on a node
    Uwsgi          uwsgi with the registry app (restarted to change settings)
    Nginx          nginx in front of uwsgi (reloaded gracefully with SIGHUP)
    DockerProxy    Docker's docker-proxy for one published port (reports start-up on fd 3)
    DnatPublisher  nftables DNAT instead (`userland-proxy: false`): rules, not a process

Each is given a `Site`: where the lab keeps its files and how the path is placed.
"""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..config.render import UwsgiPaths, lab_nginx_paths, render_nat, render_nginx, render_uwsgi
from ..config.settings import LabSettings
from ..errors import ServiceError
from ..path import Plan, ServiceSpec
from ..registry import uwsgi_app_options
from ..registry.catalog import CATALOG
from . import netns
from .checks import nginx_t
from .process import Process
from .tools import tool


@dataclass(frozen=True)
class Site:
    plan: Plan
    run_dir: Path
    images_dir: Path          # where nginx and uwsgi find the images (the VM's storage)
    temp_dir: Path            # nginx's temp files (the container's own file system)

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def ready_at(self, node: str, port_key: str) -> tuple[str, int]:
        return self.plan.ip(node), self.plan.port(port_key)


class Iperf3Server(Process):
    def __init__(self, site: Site, spec: ServiceSpec):
        super().__init__(spec.name, spec.node, site.plan.ns(spec.node), site.log(spec.name),
                         site.ready_at(spec.node, spec.port))

    def argv(self) -> list[str]:
        return [tool("iperf3"), "-s", "-p", str(self.ready_at[1])]


class Uwsgi(Process):
    stop_signal = signal.SIGINT
    cpu_member, uses_vm_disk = "uwsgi", True
    deaths = re.compile(r"DAMN ! worker \d+ \(pid: \d+\) died")

    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings):
        super().__init__(spec.name, spec.node, site.plan.ns(spec.node), site.log(spec.name),
                         site.ready_at(spec.node, spec.port))
        self.site, self.settings = site, settings
        self.ini = site.run_dir / "uwsgi.ini"

    def render(self, s: LabSettings) -> str:
        p = self.site.plan
        return render_uwsgi(s, UwsgiPaths(
            socket=f"{p.ip(self.node)}:{p.port('uwsgi_socket')}", http_socket=f"{p.ip(self.node)}:{p.port('uwsgi_http')}",
            pidfile=str(self.site.run_dir / "uwsgi.pid"),
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
        return "uwsgi: restarted with the new ini"


class Nginx(Process):
    cpu_member, uses_vm_disk = "nginx", True
    deaths = re.compile(r"worker process \d+ exited on signal \d+")

    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings, upstream: str):
        super().__init__(spec.name, spec.node, site.plan.ns(spec.node), site.log(spec.name),
                         site.ready_at(spec.node, spec.port))
        self.site, self.settings, self.upstream = site, settings, upstream
        self.conf = site.run_dir / "nginx.conf"
        self.error_log = site.run_dir / "nginx-error.log"

    def render(self, s: LabSettings) -> str:
        p = self.site.plan
        listen = f"{self.ready_at[0]}:{self.ready_at[1]}"
        up = f"{p.ip(self.upstream)}:{p.port('uwsgi_socket')}"
        return render_nginx(s, lab_nginx_paths(self.site.run_dir, listen, up, self.site.images_dir.resolve(),
                                               self.site.temp_dir, f"{self.ready_at[0]}:{p.port('nginx_tls')}"))

    def check(self, s: LabSettings) -> None:
        """`nginx -t` on the config `s` gives, in nginx's namespace (its listen address is there)."""
        trial = self.site.run_dir / "nginx-check.conf"
        trial.write_text(self.render(s))
        try:
            nginx_t(trial, self.ns)
        finally:
            trial.unlink(missing_ok=True)

    def logs(self) -> list[Path]:
        return [self.log, self.error_log]

    def argv(self) -> list[str]:
        self.site.temp_dir.mkdir(parents=True, exist_ok=True)
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
                return "nginx: reloaded gracefully"
            time.sleep(0.02)
        raise ServiceError(f"nginx did not replace its workers within {timeout:.0f}s:\n{self.log_tail()}")


class DockerProxy(Process):
    """Docker's docker-proxy, stand-alone: it reports start-up on fd 3 ('0' ok, '1<error>')."""
    cpu_member = "proxy"

    def __init__(self, site: Site, name: str, node: str, host_port: int, target: tuple[str, int]):
        super().__init__(name, node, site.plan.ns(node), site.log(name), (site.plan.ip(node), host_port))
        self.target = target

    def argv(self) -> list[str]:
        return [tool("docker-proxy"), "-proto", "tcp", "-host-ip", self.ready_at[0],
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


class DnatPublisher:
    """Published ports as nftables DNAT in the VM's namespace: the kernel forwards, no process copies."""
    TABLE = "servelab_publish"

    def __init__(self, site: Site, node: str, rules: list[dict]):
        self.name, self.node, self.site, self.rules = "dnat", node, site, rules
        self.ns = site.plan.ns(node)
        self.file = site.run_dir / "publish.nft"
        self.pid = None

    def start(self) -> None:
        self.file.write_text(render_nat(self.site.plan.ip(self.node), self.rules))
        netns.sh(tool("nft"), "-f", str(self.file), ns=self.ns)

    def wait_ready(self, timeout: float = 0) -> None:
        if not self.alive():
            raise ServiceError(f"nft table {self.TABLE} is not in {self.ns} after loading {self.file}")

    def stop(self) -> None:
        netns.sh(tool("nft"), "delete", "table", "ip", self.TABLE, ns=self.ns, check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        res = subprocess.run([*netns.exec_prefix(self.ns), tool("nft"), "list", "table", "ip", self.TABLE],
                             capture_output=True)
        return res.returncode == 0

    def status(self) -> str:
        return "ok" if self.alive() else f"nft table {self.TABLE} is missing from {self.ns}"

    def processes(self) -> list:
        return []

    def orphans(self) -> list[int]:
        return []

    def incidents(self, peek: bool = False) -> list[str]:
        return []
