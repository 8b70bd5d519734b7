"""docker-compose.yml and Docker's daemon.json mapped onto the settings (pure: text in, ledger entries out).

compose: the nginx and uwsgi services' `cpus`/`cpuset` (and `cpu_quota`/`cpu_period`,
`deploy.resources.limits.cpus`) -> cpu.*, the port nginx publishes -> publish.host_port, the
volumes (which config file nginx reads where; where the images are), TCP sysctls -> kernel.*.
Both compose file formats: sregistry's v1 (services at the top, as at 0d1274df) and v2/v3
(`services:`). A key compose does not know is refused, as compose refuses it.

daemon.json: `iptables` -> publish.iptables, `userland-proxy` -> publish.userland_proxy, `ip` ->
publish.ip (labkit.config.settings.PublishSettings says what Docker does with each, citing
docker/libnetwork 02d0f9d6: with iptables on, Docker's default, a compute node's pull is DNATed
by the kernel and docker-proxy carries only the VM's own 127.0.0.1 and hairpin, whatever
userland-proxy says; with iptables off docker-proxy carries every byte). A key dockerd does not
know is refused, as dockerd refuses to start with it.
"""
from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .directives import Ledger, Origin

# compose-spec/compose-spec schema/compose-spec.json (service properties), plus compose file v1's own keys
SERVICE_KEYS = frozenset("""
annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs container_name
cpu_count cpu_percent cpu_shares cpu_quota cpu_period cpu_rt_period cpu_rt_runtime cpus cpuset credential_spec
depends_on deploy develop device_cgroup_rules devices dns dns_opt dns_search domainname entrypoint env_file
label_file environment expose extends provider external_links extra_hosts gpus group_add healthcheck hostname
image init ipc isolation labels links logging mac_address mem_limit mem_reservation mem_swappiness memswap_limit
network_mode models networks oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_stop
privileged profiles pull_policy pull_refresh_after read_only restart runtime scale security_opt shm_size secrets
sysctls stdin_open stop_grace_period stop_signal storage_opt tmpfs tty ulimits use_api_socket user uts userns_mode
volumes volumes_from working_dir
net log_driver log_opt dockerfile volume_driver
""".split())
TOP_KEYS = {"version", "name", "include", "services", "models", "networks", "volumes", "secrets", "configs"}

# dockerd's daemon.json keys on Linux: docker/cli docs/reference/dockerd.md ("a full example of the
# allowed configuration options on Linux", and the flags, whose names are the keys), plus keys of
# the 2018 releases since removed
DAEMON_KEYS = frozenset("""
allow-nondistributable-artifacts api-cors-header authorization-plugins bip bridge builder cdi-spec-dirs
cgroup-parent containerd containerd-namespace containerd-plugin-namespace containerd-plugins-namespace
cpu-rt-period cpu-rt-runtime cri-containerd data-root debug default-address-pools default-cgroupns-mode
default-gateway default-gateway-v6 default-ipc-mode default-network-opts default-runtime default-shm-size
default-ulimits dns dns-opts dns-search exec-opts exec-root experimental features fixed-cidr fixed-cidr-v6
group host-gateway-ip hosts http-proxy https-proxy no-proxy proxies icc init init-path insecure-registries ip
ip-forward ip-masq ip6tables iptables ipv6 labels live-restore log-driver log-format log-level log-opts
max-concurrent-downloads max-concurrent-uploads max-download-attempts metrics-addr mtu
network-control-plane-mtu no-new-privileges node-generic-resources oom-score-adjust pidfile raw-logs
registry-mirrors rootless runtimes seccomp-profile selinux-enabled shutdown-timeout storage-driver storage-opts
swarm-default-advertise-addr tls tlscacert tlscert tlskey tlsverify userland-proxy userland-proxy-path
userns-remap
graph cluster-store cluster-store-opts cluster-advertise disable-legacy-registry
""".split())

SYSCTL_SETTINGS = {"net.ipv4.tcp_rmem": "kernel.tcp_rmem", "net.ipv4.tcp_wmem": "kernel.tcp_wmem",
                   "net.ipv4.tcp_congestion_control": "kernel.congestion_control"}
IMAGES_DIR = "/var/www/images"          # sregistry's MEDIA_ROOT (shub/settings/main.py line 120 at 0d1274df)
SERVICE_REASONS = {
    "restart": "the restart policy: not about how the image is sent",
    "image": "the lab runs Debian's nginx / labkit's registry app under PyPI's uwsgi in place of the images",
    "build": "the lab runs Debian's nginx / labkit's registry app in place of built images",
    "environment": "the app's environment: the lab runs its own registry app",
    "env_file": "the app's environment: the lab runs its own registry app",
    "command": "options on the command line are not read: put them in uwsgi.ini / nginx.conf to import them",
    "entrypoint": "options on the command line are not read: put them in uwsgi.ini / nginx.conf to import them",
    "mem_limit": "a memory limit: not modelled (it would also limit the container's page cache)",
    "ulimits": "file-descriptor and other limits: the lab's come from its own; the bundle sets nofile",
    "network_mode": "the lab publishes nginx's port as Docker's bridge network does (DNAT, docker-proxy)",
    "cpu_shares": "a relative CPU weight, not a limit: not modelled",
    "expose": "documents a container port; publishes nothing",
    "logging": "where the container's output goes: not on the pull's path",
}
SERVICE_STRUCTURE = {
    "links": "the lab's network joins nginx and uwsgi as the declared path does",
    "depends_on": "the lab starts uwsgi before nginx",
    "networks": "the lab's network joins nginx and uwsgi as the declared path does",
    "volumes_from": "nginx sees uwsgi's volumes (the images directory): the lab's nginx reads its images directory",
}
GENERIC = "a compose key labkit's settings do not model"


@dataclass
class Compose:
    """A compose file's services with the line of every key, and the directory its relative paths start from."""
    file: str
    base: str
    services: dict[str, dict]
    lines: dict[tuple, int]
    prefix: tuple = ()
    top: dict = field(default_factory=dict)

    def origin(self, path: tuple, key: str, value: Any = "") -> Origin:
        line = self.lines.get(self.prefix + path, self.lines.get(self.prefix + path[:-1], 1))
        return Origin(self.file, line, key, value if isinstance(value, str) else json.dumps(value))

    def service_for(self, role: str, hint: str | None = None) -> str | None:
        """The nginx or uwsgi service: named so (or as uwsgi_pass names it), else the one whose image says so."""
        for name in (hint, role):
            if name in self.services:
                return name
        return next((n for n, s in self.services.items() if role in str((s or {}).get("image", ""))), None)

    def mounts(self, service: str | None) -> dict[str, str]:
        """container path -> host path of a service's bind mounts (relative sources resolved from `base`)."""
        out = {}
        for item in (self.services.get(service) or {}).get("volumes") or []:
            src, dst, _ = volume(item)
            if src and dst and (src.startswith((".", "/", "~"))):
                out[dst] = posixpath.normpath(posixpath.join(self.base, src))
        return out


def volume(item: Any) -> tuple[str | None, str | None, str]:
    """(source, target, mode) of a short ('./a:/b:ro') or long ({type, source, target}) volume."""
    if isinstance(item, dict):
        return item.get("source"), item.get("target"), "ro" if item.get("read_only") else "rw"
    parts = str(item).split(":")
    if len(parts) == 1:
        return None, parts[0], "rw"
    return parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"


def parse_compose(text: str, file: str, base: str, led: Ledger) -> Compose | None:
    """The YAML with each key's line (PyYAML's nodes); a syntax error or an unknown key is a problem."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        led.problem(f"{file}:{mark.line + 1 if mark else 1}", f"not YAML: {exc.problem or exc}")
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        led.problem(f"{file}:1", "not a compose file: the top level must be a mapping")
        return None
    lines: dict[tuple, int] = {}
    _node_lines(node, (), lines)
    v1 = "services" not in data and "version" not in data
    services = data if v1 else (data.get("services") or {})
    c = Compose(file, base, services, lines, () if v1 else ("services",), {} if v1 else data)
    for key in c.top:
        if key not in TOP_KEYS and not key.startswith("x-"):
            led.problem(Origin(file, lines.get((key,), 1), key), "not a compose file key")
    for name, svc in services.items():
        for key in (svc or {}) if isinstance(svc, dict) else []:
            if key not in SERVICE_KEYS and not key.startswith("x-"):
                led.problem(c.origin((name, key), f"{name}.{key}"), f"service {name}: not a compose service key")
    return c


def _node_lines(node, path: tuple, out: dict) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _node_lines(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _node_lines(v, path + (i,), out)


def read_compose(c: Compose, led: Ledger, uwsgi_host: str | None, listen_port: int | None,
                 config_files: dict[str, dict[str, str]], tls_port: int | None = None) -> None:
    """Every key of the nginx and uwsgi services into `led`; the other services are off the pull's path.

    `config_files`: per role (nginx, uwsgi), the files read (path -> the name printed), to say which
    volume brings which of them into its container.
    """
    nginx, uwsgi = c.service_for("nginx"), c.service_for("uwsgi", uwsgi_host)
    for key in c.top:
        if key != "services":
            led.ignore(c.origin((), key, c.top[key] if key == "version" else ""),
                       "the compose file format" if key == "version" else GENERIC)
    for name, svc in c.services.items():
        role = "nginx" if name == nginx else "uwsgi" if name == uwsgi else None
        if role is None:
            led.ignore(c.origin((name,), name), "a service off the pull's path (the database, redis, workers)")
            continue
        for key, value in (svc or {}).items():
            _service_key(c, name, role, key, value, led, listen_port, config_files.get(role, {}), tls_port)


def _service_key(c: Compose, name: str, role: str, key: str, value: Any, led: Ledger,
                 listen_port: int | None, config_files: dict[str, str], tls_port: int | None = None) -> None:
    o = c.origin((name, key), f"{name}.{key}", value)
    if key in ("cpus", "cpuset"):
        led.set(o, f"cpu.{role}_{key}", _cpus(value) if key == "cpus" else str(value))
    elif key == "cpu_quota":
        period = (c.services[name] or {}).get("cpu_period", 100000)
        led.set(o, f"cpu.{role}_cpus", round(int(value) / int(period), 3),
                f"cpu.{role}_cpus = {int(value) / int(period):.3g} (cpu_quota / cpu_period)")
    elif key == "cpu_period":
        led.modelled(o, "read with cpu_quota")
    elif key == "deploy":
        _deploy(c, name, role, value, led)
    elif key == "ports":
        for i, item in enumerate(value or []):
            _port(c.origin((name, key, i), f"{name}.ports", item), role, item, led, listen_port, tls_port)
    elif key == "volumes":
        for i, item in enumerate(value or []):
            _volume(c.origin((name, key, i), f"{name}.volumes", item), c, role, item, led, config_files)
    elif key == "sysctls":
        items = value.items() if isinstance(value, dict) else (str(v).split("=", 1) for v in value or [])
        for i, (k, v) in enumerate(items):
            so = c.origin((name, key, k if isinstance(value, dict) else i), f"{name}.sysctls {k}", str(v))
            if k in SYSCTL_SETTINGS:
                setting = SYSCTL_SETTINGS[k]
                val = str(v).split() if setting != "kernel.congestion_control" else str(v)
                led.set(so, setting, [int(x) for x in val] if isinstance(val, list) and all(
                    x.isdigit() for x in val) else val, f"{setting} = {v} (the lab sets it in every namespace)")
            else:
                led.ignore(so, "a sysctl labkit's settings do not model")
    elif key in SERVICE_STRUCTURE:
        led.modelled(o, SERVICE_STRUCTURE[key])
    else:
        led.ignore(o, SERVICE_REASONS.get(key, GENERIC))


def _cpus(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value                 # validation names it


def _deploy(c: Compose, name: str, role: str, value: Any, led: Ledger) -> None:
    limits = ((value or {}).get("resources") or {}).get("limits") or {}
    if "cpus" in limits:
        led.set(c.origin((name, "deploy", "resources", "limits", "cpus"), f"{name}.deploy.resources.limits.cpus",
                         limits["cpus"]), f"cpu.{role}_cpus", _cpus(limits["cpus"]))
    rest = {k for k in (value or {}) if k != "resources"} | {k for k in limits if k != "cpus"}
    if rest:
        led.ignore(c.origin((name, "deploy"), f"{name}.deploy", ", ".join(sorted(rest))),
                   "swarm deployment options other than the CPU limit: not modelled")


def port_mapping(text: str) -> tuple[int | None, int, bool, str] | None:
    """compose's short port syntax [HOST_IP:][HOST:]CONTAINER[/PROTOCOL] -> (host, container, ranged, protocol)."""
    body, _, proto = text.partition("/")
    if body.startswith("["):                           # [IPv6]:HOST:CONTAINER
        body = body.partition("]:")[2]
    parts = body.split(":")
    if len(parts) == 3:
        parts = parts[1:]                              # IPv4:HOST:CONTAINER
    if not 1 <= len(parts) <= 2 or not all(re.fullmatch(r"\d+(-\d+)?", p) for p in parts):
        return None
    ranged = any("-" in p for p in parts)
    host = int(parts[0].split("-")[0]) if len(parts) == 2 else None
    return host, int(parts[-1].split("-")[0]), ranged, proto or "tcp"


def _port(o: Origin, role: str, item: Any, led: Ledger, listen_port: int | None, tls_port: int | None = None) -> None:
    if isinstance(item, dict):
        host, target = item.get("published"), item.get("target")
        parsed = (int(host) if str(host or "").isdigit() else None, int(target), False,
                  item.get("protocol", "tcp")) if str(target).isdigit() else None
    else:
        parsed = port_mapping(str(item))
    if parsed is None:
        led.problem(o, f"{item!r} is not a port mapping ([HOST_IP:][HOST:]CONTAINER[/PROTOCOL])")
        return
    host, target, ranged, proto = parsed
    if role == "nginx" and proto == "tcp" and tls_port is not None and target == tls_port:
        led.modelled(o, f"Docker publishes nginx's https port {target} (tls.port) on host port {host}"
                        + ("" if host == target else f": the lab publishes it as {target}"))
    elif role != "nginx" or proto != "tcp" or (listen_port is not None and target != listen_port):
        led.ignore(o, f"publishes {role}'s port {target}/{proto}: not the port pulls arrive on"
                      + (f" (nginx listens on {listen_port})" if role == "nginx" else ""))
    elif ranged or host is None:
        led.problem(o, f"{item!r}: nginx's port is published on a {'range' if ranged else 'random host port'}; "
                       "give HOST:CONTAINER")
    else:
        led.set(o, "publish.host_port", host, f"publish.host_port = {host} (Docker publishes it to nginx's {target})")


def _volume(o: Origin, c: Compose, role: str, item: Any, led: Ledger, config_files: dict[str, str]) -> None:
    src, dst, _ = volume(item)
    host = posixpath.normpath(posixpath.join(c.base, src)) if src and src.startswith((".", "/", "~")) else None
    inside = sorted(shown for path, shown in config_files.items() if host and path.startswith(host.rstrip("/") + "/"))
    if host in config_files:
        led.modelled(o, f"{config_files[host]} is read as {dst}")
    elif inside:
        led.modelled(o, f"holds {', '.join(inside)}, read as the container sees it under {dst}")
    elif dst and (dst.rstrip("/") == IMAGES_DIR or dst.rstrip("/").startswith(IMAGES_DIR)):
        kind = "a bind mount of the VM's disk" if host else f"a {'named volume' if src else 'volume'} on the VM's disk"
        led.modelled(o, f"the images ({kind}): the lab serves its images from its data directory "
                        "(storage.disk says which disk that is)")
    else:
        led.ignore(o, "a volume no pull reads from")


# daemon.json's publishing keys -> (setting, what Docker then does, for false and true); docker/libnetwork
# 02d0f9d6 portmapper/mapper.go MapRange, iptables/iptables.go, drivers/bridge/setup_ip_tables.go
DAEMON_PUBLISH = {
    "iptables": ("publish.iptables", {
        True: "Docker's rules DNAT the published port in the kernel (conntrack, the bridge): a compute node's "
              "pull crosses no docker-proxy",
        False: "no NAT rules: docker-proxy carries every pull, from every client"}),
    "userland-proxy": ("publish.userland_proxy", {
        True: "docker-proxy runs, and with iptables on carries only the VM's own 127.0.0.1 and hairpin "
              "(a compute node's pull is DNATed either way)",
        False: "no docker-proxy: 127.0.0.1 and hairpin are DNATed too (hairpin mode)"}),
}


def _binding_ip(o: Origin, value: Any, led: Ledger) -> None:
    """daemon.json `ip` (the default binding address of published ports) -> publish.ip."""
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        led.problem(o, f"{value!r}: not an IP address")
        return
    if addr.is_unspecified:
        led.set(o, "publish.ip", "0.0.0.0", "publish.ip = 0.0.0.0: published ports on every address (Docker's default)")
    elif addr.is_loopback:
        led.set(o, "publish.ip", "127.0.0.1", f"publish.ip = 127.0.0.1: published ports on {addr} only: "
                                               "no compute node reaches them")
    else:
        led.set(o, "publish.ip", "eth0", f"publish.ip = eth0: published ports on {addr} only, taken as the VM's "
                                          "own address (the lab's VM has its own)")


def read_daemon(text: str, file: str, led: Ledger) -> None:
    """daemon.json: iptables, userland-proxy, ip -> publish.*; dockerd's other keys ignored with why; unknown refused."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        led.problem(f"{file}:{exc.lineno}", f"not JSON: {exc.msg}")
        return
    if not isinstance(data, dict):
        led.problem(f"{file}:1", "daemon.json must be a JSON object")
        return
    for key, value in data.items():
        m = re.search(rf'"{re.escape(key)}"\s*:', text)
        o = Origin(file, text.count("\n", 0, m.start()) + 1 if m else 1, key, json.dumps(value))
        if key not in DAEMON_KEYS:
            led.problem(o, "not a dockerd option (dockerd refuses to start: \"the following directives "
                           "don't match any configuration option\")")
        elif key in DAEMON_PUBLISH:
            setting, says = DAEMON_PUBLISH[key]
            if not isinstance(value, bool):
                led.problem(o, f"{value!r}: must be true or false")
            else:
                led.set(o, setting, value, f"{setting} = {str(value).lower()}: {says[value]}")
        elif key == "ip":
            _binding_ip(o, value, led)
        elif key == "userland-proxy-path":
            led.ignore(o, "which docker-proxy binary: the lab runs Debian's docker-proxy")
        elif key == "mtu":
            led.ignore(o, "the containers' MTU: the lab's links use 1500")
        else:
            led.ignore(o, "a dockerd option off the pull's path")
