"""The path's programs, one class each: how each starts, shows it is ready, changes settings and stops.

    Iperf3Server   iperf3 -s on a node
    Uwsgi          uwsgi with the registry app (restarted to change settings)
    Nginx          nginx in front of its upstream (reloaded gracefully with SIGHUP)
    DockerProxy    Docker's docker-proxy for one published port (reports start-up on fd 3)
    DockerNat      Docker's published-port rules (`"iptables": true`) as one nftables table: rules, not a process

Every class is built the same way, `Class(site, spec, settings)`: `site` says where the lab keeps
its files and how the path is placed, `spec` is the path's declaration of it (a ServiceSpec; a
publisher's, the published ports it carries), `settings` the lab's settings. A service of the
path names its class in PROGRAMS (`ServiceSpec.program`); the publishers are in PUBLISHERS, keyed
by the daemon.json key that turns each on (`iptables`: DockerNat, `userland-proxy`: DockerProxy;
labkit.lab.programs.publish says what Docker does with them). A new program is a class here and a line in
one of the two tables.
"""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ...config.render import PublishedRule, UwsgiPaths, lab_nginx_paths, render_nat, render_nginx, render_uwsgi
from ...config.settings import LabSettings
from ...errors import ServiceError, UnknownName
from ...path import Plan, Published, ServiceSpec
from ...registry import uwsgi_app_options
from ...registry.catalog import CATALOG
from ..host import netns
from .checks import nginx_t
from .publish import binding_ip, bridge_of, lab_accepts
from ..conditions.tls import write_server_files
from ..host.process import Process
from ..host.tools import tool


@dataclass(frozen=True)
class Site:
    plan: Plan
    run_dir: Path
    images_dir: Path          # where nginx and uwsgi find the images (the VM's storage)
    temp_dir: Path            # nginx's temp files (the container's own file system, on the VM's storage)

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def ready_at(self, node: str, port_key: str) -> tuple[str, int]:
        return self.plan.ip(node), self.plan.port(port_key)


class Service(Process):
    """A program the path declares (a ServiceSpec): its node, port, CPU key and disk come from there."""

    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings):
        super().__init__(spec.name, spec.node, site.plan.ns(spec.node), site.log(spec.name),
                         site.ready_at(spec.node, spec.port))
        self.site, self.spec, self.settings = site, spec, settings
        self.cpu_member, self.uses_vm_disk = spec.cpu, spec.disk == "vm"

    def file(self, suffix: str) -> Path:
        """One of its own files in the lab's run directory: `<service name><suffix>`."""
        return self.site.run_dir / f"{self.name}{suffix}"


class Iperf3Server(Service):
    def argv(self) -> list[str]:
        return [tool("iperf3"), "-s", "-p", str(self.ready_at[1])]


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


class Nginx(Service):
    deaths = re.compile(r"worker process \d+ exited on signal \d+")
    PROTOCOLS = ("uwsgi", "http")   # how it can speak to its upstream (uwsgi_pass, proxy_pass)

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
        return render_nginx(s, lab_nginx_paths(self.site.run_dir, listen, f"{host}:{port}",
                                               self.site.images_dir.resolve(), self.temp_dir, self.name,
                                               self.spec.upstream.protocol, tls, tls_dir))

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


class DockerNat:
    """Docker's rules for published ports (`"iptables": true`) as one nftables table in the host node's
    namespace (config/templates/nat.nft.j2): DNAT in prerouting and output, the forward filter with
    policy drop, masquerade; conntrack tracks every flow. The kernel forwards: no process copies.
    Docker's hairpin mode (`userland-proxy: false`) also DNATs 127.0.0.1 and hairpin, with
    route_localnet on the bridge as drivers/bridge/setup_ipv4.go setupLoopbackAddressesRouting sets it.
    `spec`: the published ports of one host node (one table holds them all).
    """
    TABLE = "servelab_docker"

    def __init__(self, site: Site, spec: tuple[Published, ...], settings: LabSettings):
        p = site.plan
        self.name, self.node, self.site = "docker-nat", spec[0].node, site
        self.bridge = bridge_of(p.path, spec[0].container)
        host_ip = binding_ip(p, self.node, settings.publish.ip)
        self.rules = [PublishedRule(p.port(pb.host_port), p.ip(pb.container), p.port(pb.container_port),
                                    None if host_ip == "0.0.0.0" else host_ip) for pb in spec]
        self.hairpin = not settings.publish.userland_proxy
        self.lab_accepts = lab_accepts(p, self.bridge)
        self.ns = p.ns(self.node)
        self.file = site.run_dir / "docker-nat.nft"
        self.pid = None

    @classmethod
    def publishing(cls, site: Site, published: tuple[Published, ...], settings: LabSettings) -> list:
        """One table per host node that publishes ports, with `iptables` on (in namespaces only)."""
        if not (settings.publish.iptables and site.plan.namespaced):
            return []
        nodes = sorted({pb.node for pb in published})
        return [cls(site, tuple(pb for pb in published if pb.node == n), settings) for n in nodes]

    def render(self) -> str:
        return render_nat(self.TABLE, self.bridge.name, self.bridge.subnet, self.rules, self.hairpin, self.lab_accepts)

    def counters(self) -> dict[str, int]:
        """Packets through the table's DNAT rules and forward accepts so far ("dnat", "forward")."""
        res = subprocess.run([*netns.exec_prefix(self.ns), tool("nft"), "list", "table", "ip", self.TABLE],
                             capture_output=True, text=True)
        return nat_counters(res.stdout)

    def start(self) -> None:
        self.file.write_text(self.render())
        netns.sysctl(self.ns, f"net.ipv4.conf.{self.bridge.name}.route_localnet", "1" if self.hairpin else "0")
        netns.sh(tool("nft"), "-f", str(self.file), ns=self.ns)

    def wait_ready(self, timeout: float = 0) -> None:
        if not self.alive():
            raise ServiceError(f"nft table {self.TABLE} is not in {self.ns} after loading {self.file}")

    def stop(self) -> None:
        netns.sh(tool("nft"), "delete", "table", "ip", self.TABLE, ns=self.ns, check=False)
        netns.sh("sysctl", "-q", "-w", f"net.ipv4.conf.{self.bridge.name}.route_localnet=0", ns=self.ns, check=False)

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


# The program classes by the name a ServiceSpec gives (`ServiceSpec.program`), and the publishers by the
# daemon.json key that turns each on, in the order they start: the lab builds every service and
# published port from these two tables.
PROGRAMS: dict[str, type[Service]] = {"iperf3": Iperf3Server, "uwsgi": Uwsgi, "nginx": Nginx}
PUBLISHERS: dict[str, type] = {"iptables": DockerNat, "userland-proxy": DockerProxy}


def publishing(site: Site, published: tuple[Published, ...], settings: LabSettings) -> list:
    """Everything Docker runs for `published` under settings.publish, in start order."""
    return [x for cls in PUBLISHERS.values() for x in cls.publishing(site, published, settings)]


def nat_counters(listing: str) -> dict[str, int]:
    """Packets counted by `nft list table` output's DNAT rules and forward accepts of published ports."""
    out = {"dnat": 0, "forward": 0}
    for line in listing.splitlines():
        m = re.search(r"counter packets (\d+) bytes \d+ (dnat|accept)", line)
        if m and (m.group(2) == "dnat" or "dport" in line):
            out["dnat" if m.group(2) == "dnat" else "forward"] += int(m.group(1))
    return out


def program_problems(path) -> list[str]:
    """Services of `path` whose program has no class here (one sentence each; [] when all have)."""
    return [f"service {s.name}: program {s.program!r} is not one of {', '.join(PROGRAMS)}"
            for s in path.services if s.program not in PROGRAMS]
