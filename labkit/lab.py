"""The lab: the serving path in namespaces with its real programs, up and down as one thing.

    with Lab("main", image_size=64 * 2**20) as lab:
        lab.health()
"""
from __future__ import annotations

import atexit
import os
import select
import signal
import sys
import tempfile
import time
from pathlib import Path

import psutil

from . import netns, state
from .images import Image, ensure_image
from .procs import Service, ServiceError
from .render import UwsgiPaths, lab_nginx_paths, render_nat, render_nginx, render_uwsgi
from .checks import ConfigRejected, nginx_t
from .settings import SREGISTRY_SHIPPED, SYSCTLS, LabSettings, SettingsError, as_text
from .tools import ToolMissing, tool
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
        self._kernel_defaults: dict[str, str] = {}

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
        """Set the TCP sysctls in every namespace; a setting of None puts the namespace default back."""
        if not self._kernel_defaults:
            self._kernel_defaults = {key: netns.read_sysctl(self.plan.ns("vm"), key) for key in SYSCTLS.values()}
        for node in NODES:
            for field, key in SYSCTLS.items():
                value = as_text(getattr(s.kernel, field)) or self._kernel_defaults[key]
                netns.sysctl(self.plan.ns(node), key, value)

    # --- services --------------------------------------------------------
    def _service(self, name: str, node: str, argv: list[str], port: int, **kw) -> Service:
        svc = Service(name, node, self.plan.ns(node), argv, self.run_dir / "logs" / f"{name}.log",
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
        self._publish_up()

    def _published(self) -> list[dict]:
        """The ports Docker publishes on the VM: the registry's, and nginx's iperf3 for the hop."""
        pp = self.plan.ports
        return [{"name": "docker-proxy", "host_port": pp.published, "container_ip": self.plan.ip("nginx"),
                 "container_port": pp.nginx},
                {"name": "docker-proxy@iperf3", "host_port": pp.iperf_published,
                 "container_ip": self.plan.ip("nginx"), "container_port": pp.iperf["nginx"]}]

    def _publish_up(self) -> None:
        if self.settings.publish.mode == "userland-proxy":
            for r in self._published():
                self._start_proxy(r["name"], r["host_port"], r["container_ip"], r["container_port"])
            return
        rules = self.run_dir / "publish.nft"
        rules.write_text(render_nat(self.plan.ip("vm"), self._published()))
        netns.sh(tool("nft"), "-f", str(rules), ns=self.plan.ns("vm"))

    def _publish_down(self) -> None:
        for r in self._published():
            if svc := self.services.pop(r["name"], None):
                svc.stop()
        if self.plan.namespaced:
            netns.sh("nft", "delete", "table", "ip", "servelab_publish", ns=self.plan.ns("vm"), check=False)

    def _uwsgi_ini(self, s: LabSettings) -> str:
        p = self.plan
        return render_uwsgi(s, UwsgiPaths(
            socket=f"{p.ip('uwsgi')}:{p.ports.uwsgi_socket}", http_socket=f"{p.ip('uwsgi')}:{p.ports.uwsgi_http}",
            pidfile=str(self.run_dir / "uwsgi.pid"), catalog=str(self.images_dir / "catalog.json")))

    def _nginx_conf(self, s: LabSettings) -> str:
        p = self.plan
        return render_nginx(s, lab_nginx_paths(self.run_dir, f"{p.ip('nginx')}:{p.ports.nginx}",
                                               f"{p.ip('uwsgi')}:{p.ports.uwsgi_socket}", self.images_dir.resolve()))

    def _start_uwsgi(self) -> None:
        ini = self.run_dir / "uwsgi.ini"
        ini.write_text(self._uwsgi_ini(self.settings))
        self._start(self._service("uwsgi", "uwsgi", [tool("uwsgi"), "--ini", str(ini)], self.plan.ports.uwsgi_http,
                                  stop_signal=signal.SIGINT))

    def _start_nginx(self) -> None:
        (self.run_dir / "nginx-temp").mkdir(exist_ok=True)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(self._nginx_conf(self.settings))
        self._start(self._service("nginx", "nginx", [tool("nginx"), "-c", str(conf), "-p", str(self.run_dir),
                                  "-e", str(self.run_dir / "nginx-error.log"), "-g", "daemon off;"],
                                  self.plan.ports.nginx))

    def _start_proxy(self, name: str, host_port: int, target_ip: str, target_port: int) -> None:
        """Docker's docker-proxy, stand-alone: it reports start-up on fd 3 ('0' ok, '1<error>')."""
        p = self.plan
        r, w = os.pipe()
        argv = ["bash", "-c", f'exec "$0" "$@" 3>&{w} {w}>&-', tool("docker-proxy"), "-proto", "tcp",
                "-host-ip", p.ip("vm"), "-host-port", str(host_port),
                "-container-ip", target_ip, "-container-port", str(target_port)]
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

    # --- changing it while it runs ----------------------------------------
    def check(self, new: LabSettings) -> list[str]:
        """The groups `new` changes; raises SettingsError (nothing applied) if it cannot be applied here."""
        old = self.settings
        groups = [g for g in LabSettings.model_fields if getattr(old, g) != getattr(new, g)]
        problems = []
        if not self.plan.namespaced:
            for g, why in (("kernel", "per-namespace TCP settings"), ("links", "link rates (tc)")):
                if g in groups:
                    problems.append(f"{g}: {why} need network namespaces (root); this lab runs on loopback")
            if new.publish.mode == "dnat":
                problems.append("publish.mode: dnat needs network namespaces (root); this lab runs on loopback")
        cc, available = new.kernel.congestion_control, self.congestion_controls()
        if cc and cc not in available:
            problems.append(f"kernel.congestion_control: {cc!r} is not available in this kernel "
                            f"(available: {', '.join(available)})")
        if new.publish.mode == "dnat":
            try:
                tool("nft")
            except ToolMissing:
                problems.append("publish.mode: dnat needs nftables (`nft`): run `make setup`")
        if "publish" in groups and new.publish.host_port != old.publish.host_port:
            problems.append("publish.host_port is set when the lab starts; bring it up again to change it")
        if "nginx" in groups:
            with tempfile.NamedTemporaryFile("w", suffix=".conf", dir=self.run_dir) as f:
                f.write(self._nginx_conf(new))
                f.flush()
                try:
                    nginx_t(Path(f.name), self.plan.ns("nginx"))
                except ConfigRejected as exc:
                    problems.append(f"nginx: {exc}")
        if problems:
            raise SettingsError("; ".join(problems))
        return groups

    def apply(self, new: LabSettings) -> list[str]:
        """Change the running lab to `new`, checked first; on a failure midway it goes back to the old settings.

        nginx reloads gracefully (SIGHUP), uwsgi restarts, sysctls and tc change in place,
        the publish mode switches between docker-proxy and DNAT. Returns what was done.
        """
        groups = self.check(new)
        old = self.settings
        try:
            done = self._apply_groups(new, groups)
        except BaseException:
            self.say("apply failed: going back to the previous settings")
            self._apply_groups(old, groups)
            raise
        self._record_pids()
        return done

    def _apply_groups(self, s: LabSettings, groups: list[str]) -> list[str]:
        done = []
        self.settings = s
        if "kernel" in groups:
            self._apply_kernel(s)
            done.append("kernel: sysctls set in every namespace")
        if "links" in groups:
            self._shape_links(s)
            done.append("links: tc tbf reshaped")
        if "publish" in groups:
            self._publish_down()
            self._publish_up()
            done.append(f"publish: {s.publish.mode}")
        if "uwsgi" in groups or "app" in groups:
            self.services.pop("uwsgi").stop()
            self._start_uwsgi()
            done.append("uwsgi: restarted with the new ini")
        if "nginx" in groups:
            self._reload_nginx(s)
            done.append("nginx: reloaded gracefully")
        return done

    def _reload_nginx(self, s: LabSettings, timeout: float = 15.0) -> None:
        """SIGHUP, then wait until none of the old workers is left and new ones run."""
        nginx = self.services["nginx"]
        (self.run_dir / "nginx.conf").write_text(self._nginx_conf(s))
        master = psutil.Process(nginx.pid)
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
                return
            time.sleep(0.02)
        raise ServiceError(f"nginx did not replace its workers within {timeout:.0f}s:\n{nginx.log_tail()}")

    @staticmethod
    def congestion_controls() -> list[str]:
        return Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()

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
        return [{"node": node, "namespace": self.plan.ns(node) or "(host)", "address": self.plan.ip(node),
                 "services": ", ".join(f"{n} (pid {s.pid})" for n, s in self.services.items() if s.node == node)}
                for node in NODES]
