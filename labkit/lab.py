"""The lab: the serving path in namespaces with its real programs, up and down as one thing.

    with Lab("main", image_size=64 * 2**20) as lab:
        lab.health()
"""
from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

import psutil

from . import netns, state
from .images import Image, ensure_image
from .procs import Service, ServiceError
from .render import UwsgiPaths, lab_nginx_paths, render_nginx, render_uwsgi
from .settings import SREGISTRY_SHIPPED, LabSettings
from .tools import tool
from .topology import BRIDGE_GW, BRIDGE_NET, BRIDGED, NODES, Plan, plan

DATA = Path(os.environ.get("SERVELAB_DATA", Path(__file__).resolve().parents[1] / "data"))
MiB = 1024 * 1024


class LabError(RuntimeError):
    pass


def _say(msg: str) -> None:
    print(f"[labkit] {msg}", file=sys.stderr, flush=True)


class Lab:
    def __init__(self, name: str = "main", settings: LabSettings = SREGISTRY_SHIPPED,
                 image_size: int = 64 * MiB, namespaced: bool | None = None, data_dir: Path = DATA,
                 keep: bool = False, quiet: bool = False):
        use_ns = netns.can_use_namespaces() if namespaced is None else namespaced
        if use_ns and not netns.can_use_namespaces():
            raise LabError("network namespaces need root; run as root or use namespaced=False")
        self.name = name
        self.settings = settings
        self.plan: Plan = plan(name, use_ns, settings.publish.host_port)
        self.image_size = image_size
        self.run_dir = Path(data_dir) / "run" / name
        self.images_dir = Path(data_dir) / "images"
        self.keep = keep
        self.say = (lambda m: None) if quiet else _say
        self.services: dict[str, Service] = {}
        self.image: Image | None = None
        self.notes: list[str] = []

    # --- lifecycle -------------------------------------------------------
    def up(self) -> "Lab":
        self._clean_before_start()
        state.write(self.name, **state.owner_stamp(), keep=self.keep, namespaced=self.plan.namespaced,
                    run_dir=str(self.run_dir), pids={})
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.image = ensure_image(self.images_dir, self.image_size)
            if self.plan.namespaced:
                self._build_network()
            else:
                self.notes += self.plan.caveats()
                for c in self.plan.caveats():
                    self.say("loopback mode: " + c)
            self._start_services()
        except BaseException:
            self.say("start failed: ending what was started")
            self.down()
            raise
        self.say(f"lab '{self.name}' is up ({'namespaces' if self.plan.namespaced else 'loopback'}, "
                 f"image {self.image.uri}, {self.image.size / MiB:.0f} MiB)")
        return self

    def down(self) -> None:
        for svc in reversed(list(self.services.values())):
            svc.stop()
        self.services.clear()
        for line in state.end(self.name):
            self.say(line)

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def _clean_before_start(self) -> None:
        for name in sorted({self.name, *state.stale()}):
            done = state.end(name)
            if done:
                self.say(f"cleaned {'stale ' if name != self.name else ''}lab '{name}': " + "; ".join(done))

    # --- network ---------------------------------------------------------
    def _build_network(self) -> None:
        p = self.plan
        feats = netns.kernel_features()
        if not feats["netem"]:
            self.notes.append("tc netem is not in this kernel: no added delay or loss; links are shaped with tbf only")
        for node in NODES:
            netns.add_ns(p.ns(node))
        ns = p.ns
        netns.veth(ns("vm"), "eth0", ns("compute"), "eth0")
        netns.addr(ns("vm"), "eth0", f"{p.ip('vm')}/24")
        netns.addr(ns("compute"), "eth0", f"{p.ip('compute')}/24")
        netns.bridge(ns("vm"), "docker0", f"{BRIDGE_GW}/24")
        for node in BRIDGED:
            netns.veth(ns(node), "eth0", ns("vm"), f"veth-{node}")
            netns.enslave(ns("vm"), f"veth-{node}", "docker0")
            netns.addr(ns(node), "eth0", f"{p.ip(node)}/24")
            netns.route(ns(node), "default", BRIDGE_GW)
        netns.route(ns("compute"), BRIDGE_NET, p.ip("vm"))
        netns.sysctl(ns("vm"), "net.ipv4.ip_forward", "1")
        self._shape_links(self.settings)
        self._apply_kernel(self.settings)

    def _shape_links(self, s: LabSettings) -> None:
        for link in self.plan.links:
            netns.shape(self.plan.ns(link.a), link.dev_a, getattr(s.links, link.name))

    def _apply_kernel(self, s: LabSettings) -> None:
        k = s.kernel
        for node in NODES:
            ns = self.plan.ns(node)
            if k.tcp_rmem:
                netns.sysctl(ns, "net.ipv4.tcp_rmem", " ".join(map(str, k.tcp_rmem)))
            if k.tcp_wmem:
                netns.sysctl(ns, "net.ipv4.tcp_wmem", " ".join(map(str, k.tcp_wmem)))
            if k.congestion_control:
                netns.sysctl(ns, "net.ipv4.tcp_congestion_control", k.congestion_control)

    # --- services --------------------------------------------------------
    def _service(self, name: str, node: str, argv: list[str], port: int, **kw) -> Service:
        svc = Service(name, self.plan.ns(node), argv, self.run_dir / "logs" / f"{name}.log",
                      port=(self.plan.ip(node), port), **kw)
        self.services[name] = svc
        return svc

    def _record_pids(self) -> None:
        pids = {}
        for name, svc in self.services.items():
            try:
                pids[name] = (svc.pid, psutil.Process(svc.pid).create_time())
            except (psutil.NoSuchProcess, TypeError):
                pass
        state.write(self.name, pids=pids)

    def _start(self, svc: Service) -> None:
        svc.start()
        self._record_pids()
        svc.wait_ready()

    def _start_services(self) -> None:
        for node in NODES:
            self._start(self._service(f"iperf3@{node}", node, [tool("iperf3"), "-s", "-p",
                                      str(self.plan.ports.iperf[node])], self.plan.ports.iperf[node]))
        self._start_uwsgi()
        self._start_nginx()
        self._start_proxy("docker-proxy", self.plan.ports.published, "nginx", self.plan.ports.nginx)
        self._start_proxy("docker-proxy@iperf3", self.plan.ports.iperf_published, "nginx",
                          self.plan.ports.iperf["nginx"])

    def _start_uwsgi(self) -> None:
        p, s = self.plan, self.settings
        ini = self.run_dir / "uwsgi.ini"
        ini.write_text(render_uwsgi(s, UwsgiPaths(
            socket=f"{p.ip('uwsgi')}:{p.ports.uwsgi_socket}", http_socket=f"{p.ip('uwsgi')}:{p.ports.uwsgi_http}",
            pidfile=str(self.run_dir / "uwsgi.pid"), catalog=str(self.images_dir / "catalog.json"))))
        self._start(self._service("uwsgi", "uwsgi", [tool("uwsgi"), "--ini", str(ini)], p.ports.uwsgi_http,
                                  stop_signal=signal.SIGINT))

    def _start_nginx(self) -> None:
        p, s = self.plan, self.settings
        (self.run_dir / "nginx-temp").mkdir(exist_ok=True)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(render_nginx(s, lab_nginx_paths(
            self.run_dir, f"{p.ip('nginx')}:{p.ports.nginx}", f"{p.ip('uwsgi')}:{p.ports.uwsgi_socket}",
            self.images_dir.resolve())))
        self._start(self._service("nginx", "nginx", [tool("nginx"), "-c", str(conf), "-p", str(self.run_dir),
                                  "-e", str(self.run_dir / "nginx-error.log"), "-g", "daemon off;"],
                                  p.ports.nginx))

    def _start_proxy(self, name: str, host_port: int, target: str, target_port: int) -> None:
        """Docker's docker-proxy, stand-alone: it reports start-up on fd 3 ('0' ok, '1<error>')."""
        p = self.plan
        r, w = os.pipe()
        argv = ["bash", "-c", f'exec "$0" "$@" 3>&{w} {w}>&-', tool("docker-proxy"), "-proto", "tcp",
                "-host-ip", p.ip("vm"), "-host-port", str(host_port),
                "-container-ip", p.ip(target), "-container-port", str(target_port)]
        svc = self._service(name, "vm", argv, host_port, pass_fds=(w,))
        try:
            svc.start()
            os.close(w)
            w = -1
            self._record_pids()
            ready, _, _ = select.select([r], [], [], 10)
            msg = os.read(r, 4096).decode(errors="replace") if ready else "(no answer in 10 s)"
            if not msg.startswith("0"):
                raise ServiceError(f"{name} did not start: {msg.strip()}\n{svc.log_tail()}")
            svc.wait_ready()
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    # --- looking at it ---------------------------------------------------
    def processes(self) -> dict[str, list[psutil.Process]]:
        return {name: svc.processes() for name, svc in self.services.items() if not name.startswith("iperf3")}

    def health(self) -> dict[str, str]:
        """Each service: 'ok', or what is wrong. HTTP services answer a real manifest request."""
        from .pull import fetch_manifest
        out = {}
        for name, svc in self.services.items():
            out[name] = "ok" if svc.alive() else f"not running:\n{svc.log_tail(5)}"
        for v in self.plan.vantages:
            if self.settings.app.serve_mode == "accel" and v.name == "uwsgi":
                continue
            try:
                fetch_manifest(self.plan.ns(v.client), v.host, v.port, self.image.uri, timeout=5)
                out[f"manifest via {v.name}"] = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                out[f"manifest via {v.name}"] = f"{type(exc).__name__}: {exc}"
        return out

    def describe(self) -> list[dict]:
        """The nodes with their namespace, address and the services in them."""
        rows = []
        for node in NODES:
            svcs = [f"{n} (pid {s.pid})" for n, s in self.services.items() if s.ns == self.plan.ns(node)
                    and (self.plan.namespaced or n.endswith(node) or node in n)]
            rows.append({"node": node, "namespace": self.plan.ns(node) or "(host)",
                         "address": self.plan.ip(node), "services": ", ".join(svcs)})
        return rows
