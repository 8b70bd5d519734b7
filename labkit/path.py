"""The serving path, declared once as plain data; everything else is derived from it.

    compute ──wan── vm(eth0) ── publish (docker-proxy or DNAT) ──docker0── nginx ──uwsgi_pass── uwsgi

`PATH` says which nodes there are, how they are linked (and which end of each link is
shaped), the bridge, where each service listens, which hops iperf3 measures, where pulls
are made from, which TCP connections a download crosses (where they can be captured and who
sends on them) and the stages a byte crosses, in order, with the serve and publish modes in
which each stage carries the image. Building the namespaces, shaping, captures, the survey
plan, the verdict's stages and the drawings read this module; no other module names a hop,
a stage or a vantage point. (Mininet's `Topo` → `buildFromTopo` is the model.)

`plan(lab, namespaced)` places the path: namespace names, addresses and ports. Without root
every node is 127.0.0.1 and the services differ by port only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SettingsError, UnknownName

NS_PREFIX = "sl-"


@dataclass(frozen=True)
class Node:
    name: str
    role: str                      # what it stands for, for the reader
    address: str                   # its address inside the lab's namespaces


@dataclass(frozen=True)
class Link:
    """A veth pair. `a` sends the download's data: its egress is what `settings.links.<name>` shapes."""
    name: str
    a: str
    dev_a: str
    b: str
    dev_b: str
    bridge: str | None = None      # dev_b is a port of this bridge on node b (else a point-to-point /24)


@dataclass(frozen=True)
class Bridge:
    name: str
    node: str
    subnet: str
    gateway: str


@dataclass(frozen=True)
class Route:
    node: str
    dest: str                      # a subnet, or "default"
    via: str                       # an address


@dataclass(frozen=True)
class ServiceSpec:
    """A long-running program: the kind (one class each in labkit.lab.programs), its node and port."""
    name: str
    program: str
    node: str
    port: str                      # a key of the plan's ports: where it answers when ready


@dataclass(frozen=True)
class Published:
    """A port Docker publishes on a host node, forwarded to a container's port."""
    name: str
    node: str
    host_port: str
    container: str
    container_port: str


@dataclass(frozen=True)
class Hop:
    """An iperf3 run: the client at `client`, the server at `server` sending back (-R) like a download."""
    name: str
    client: str
    server: str                    # the node whose address the client dials
    port: str


@dataclass(frozen=True)
class Connection:
    """A TCP connection a download crosses: who sends the image on it, where it can be captured."""
    name: str
    sender: str                    # node of the sending socket (for `ss`)
    port: str                      # the server port the connection is made to
    seen_on: tuple[str, str]       # (link name, "a" or "b"): the interface a capture listens on


@dataclass(frozen=True)
class Vantage:
    """Where a pull is made from and where it dials; the connections it crosses, outermost first."""
    name: str
    client: str
    server: str
    port: str
    crosses: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """What a byte crosses between the vantage point before and `vantage`.

    `hop`: the iperf3 hop that bounds it. `capture`: the connections to look inside for it.
    `idle_when`: settings (group.field -> values) under which the stage does not carry the image.
    """
    name: str
    adds: str
    vantage: str
    hop: str
    capture: tuple[str, ...]
    idle_when: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def carries(self, settings) -> bool:
        return _carries(self.idle_when, settings)


def _carries(idle_when: dict[str, tuple], settings) -> bool:
    for dotted, values in idle_when.items():
        group, _, name = dotted.partition(".")
        if getattr(getattr(settings, group), name) in values:
            return False
    return True


@dataclass(frozen=True)
class DiskStage:
    """Where the image touches a disk of the lab, counted on that disk's device during each pull.

    `disk`: the lab's disk ("vm": the VM's, holding the images and nginx's temp dir; "compute":
    the compute node's, where the client writes). `counter`: the IoCounters field it reads.
    `column`: the pull row's column (MB). `idle_when` as for Stage.
    """
    name: str
    adds: str
    disk: str
    counter: str
    column: str
    idle_when: dict[str, tuple] = field(default_factory=dict)

    def carries(self, settings) -> bool:
        return _carries(self.idle_when, settings)


@dataclass(frozen=True)
class Path:
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    bridges: tuple[Bridge, ...]
    routes: tuple[Route, ...]
    forwarders: tuple[str, ...]    # nodes that route between their interfaces (ip_forward)
    services: tuple[ServiceSpec, ...]
    published: tuple[Published, ...]
    hops: tuple[Hop, ...]
    connections: tuple[Connection, ...]
    vantages: tuple[Vantage, ...]
    stages: tuple[Stage, ...]      # in the order a byte crosses them, from the file to the client
    disk_stages: tuple[DiskStage, ...] = ()   # where the image is read from or written to a disk, in byte order

    def node(self, name: str) -> Node:
        return _one(self.nodes, name, "node")

    def link(self, name: str) -> Link:
        return _one(self.links, name, "link")

    def hop(self, name: str) -> Hop:
        return _one(self.hops, name, "iperf3 hop")

    def vantage(self, name: str) -> Vantage:
        return _one(self.vantages, name, "vantage point")

    def stage(self, name: str) -> Stage:
        return _one(self.stages, name, "stage")

    def disk_stage(self, name: str) -> DiskStage:
        return _one(self.disk_stages, name, "disk stage")

    def connection(self, name: str) -> Connection:
        return _one(self.connections, name, "connection")

    def link_for(self, hop: Hop) -> Link:
        """The link a hop's two nodes share directly (the one whose shaping bounds it)."""
        for lk in self.links:
            if {lk.a, lk.b} == {hop.client, hop.server}:
                return lk
        raise UnknownName(f"no link joins {hop.client} and {hop.server} directly")

    @property
    def client_vantage(self) -> Vantage:
        """Where the real client pulls from: the vantage of the last stage (the whole path)."""
        return self.vantage(self.stages[-1].vantage)

    def carrying(self, settings) -> list[Stage]:
        return [s for s in self.stages if s.carries(settings)]

    def vantages_for(self, settings) -> list[Vantage]:
        """The vantage points whose pulls cross only stages that carry the image under `settings`."""
        idle = {s.vantage for s in self.stages if not s.carries(settings)}
        return [v for v in self.vantages if v.name not in idle]


def _one(items, name: str, what: str):
    for item in items:
        if item.name == name:
            return item
    raise UnknownName(f"{what} {name!r}: one of {', '.join(i.name for i in items)}")


def registry_path() -> Path:
    """sregistry's docker-compose deployment on a VM, with one compute node pulling from it."""
    nginx_port, uwsgi_port = "nginx", "uwsgi_socket"
    accel_like = {"app.serve_mode": ("accel", "nginx-alias")}
    return Path(
        nodes=(Node("compute", "compute node", "192.0.2.10"),     # RFC 5737 documentation ranges:
               Node("vm", "VM (docker host)", "192.0.2.20"),      # they exist only inside the lab
               Node("nginx", "nginx container", "198.51.100.2"),
               Node("uwsgi", "uwsgi container", "198.51.100.3")),
        links=(Link("wan", "vm", "eth0", "compute", "eth0"),
               Link("nginx", "nginx", "eth0", "vm", "veth-nginx", bridge="docker0"),
               Link("uwsgi", "uwsgi", "eth0", "vm", "veth-uwsgi", bridge="docker0")),
        bridges=(Bridge("docker0", "vm", "198.51.100.0/24", "198.51.100.1"),),
        routes=(Route("compute", "198.51.100.0/24", "192.0.2.20"),
                Route("nginx", "default", "198.51.100.1"),
                Route("uwsgi", "default", "198.51.100.1")),
        forwarders=("vm",),
        services=(*(ServiceSpec(f"iperf3@{n}", "iperf3", n, f"iperf@{n}") for n in ("compute", "vm", "nginx", "uwsgi")),
                  ServiceSpec("uwsgi", "uwsgi", "uwsgi", "uwsgi_http"),
                  ServiceSpec("nginx", "nginx", "nginx", nginx_port)),
        published=(Published("registry", "vm", "published", "nginx", nginx_port),
                   Published("iperf3", "vm", "iperf_published", "nginx", "iperf@nginx")),
        hops=(Hop("compute→vm", "compute", "vm", "iperf@vm"),
              Hop("vm→nginx", "vm", "nginx", "iperf@nginx"),
              Hop("nginx→uwsgi", "nginx", "uwsgi", "iperf@uwsgi"),
              Hop("compute→published port→nginx", "compute", "vm", "iperf_published"),
              Hop("compute→uwsgi (routed)", "compute", "uwsgi", "iperf@uwsgi")),
        connections=(Connection("link", "vm", "published", ("wan", "b")),
                     Connection("docker0→nginx", "nginx", nginx_port, ("nginx", "b")),
                     Connection("nginx→uwsgi", "uwsgi", uwsgi_port, ("uwsgi", "b")),
                     Connection("uwsgi http", "uwsgi", "uwsgi_http", ("nginx", "a"))),
        vantages=(Vantage("uwsgi", "nginx", "uwsgi", "uwsgi_http", ("uwsgi http",)),
                  Vantage("nginx", "vm", "nginx", nginx_port, ("docker0→nginx", "nginx→uwsgi")),
                  Vantage("published port", "vm", "vm", "published", ("docker0→nginx", "nginx→uwsgi")),
                  Vantage("full path", "compute", "vm", "published", ("link", "docker0→nginx", "nginx→uwsgi"))),
        stages=(Stage("uwsgi", "the registry app in uwsgi (how it reads and sends the file)", "uwsgi",
                      "nginx→uwsgi", ("nginx→uwsgi",), accel_like),
                Stage("nginx", "nginx in front of uwsgi (uwsgi_pass, buffering, temp files)", "nginx",
                      "vm→nginx", ("docker0→nginx", "nginx→uwsgi")),
                Stage("published port", "Docker's publish step (docker-proxy copying every byte, or DNAT)",
                      "published port", "compute→published port→nginx", ("link", "docker0→nginx")),
                Stage("full path", "the link from the VM to the compute node", "full path",
                      "compute→vm", ("link",))),
        disk_stages=(DiskStage("image read", "reading the image from the VM's disk (sregistry's bind mount)",
                               "vm", "bytes_read", "disk_read_MB"),
                     DiskStage("temp spooling", "nginx spooling the response to temp files on its container layer",
                               "vm", "bytes_written", "disk_write_MB",
                               {"nginx.uwsgi_buffering": (False,), "nginx.uwsgi_max_temp_file_size": ("0",),
                                **accel_like}),
                     DiskStage("client write", "the client writing the image to the compute node's disk",
                               "compute", "bytes_written", "client_write_MB", {"client.write_to": ("discard",)})),
    )


PATH = registry_path()


@dataclass(frozen=True)
class Plan:
    """The path placed on this machine: namespace names, addresses and ports for one lab."""
    lab: str
    namespaced: bool
    ports: dict[str, int]
    path: Path = PATH

    def ns(self, node: str) -> str | None:
        return f"{NS_PREFIX}{self.lab}-{node}" if self.namespaced else None

    def ip(self, node: str) -> str:
        return self.path.node(node).address if self.namespaced else "127.0.0.1"

    def port(self, key: str) -> int:
        return self.ports[key]

    def dev(self, link: str, end: str) -> str:
        """The interface name at one end of a link ("lo" without namespaces)."""
        if not self.namespaced:
            return "lo"
        lk = self.path.link(link)
        return lk.dev_a if end == "a" else lk.dev_b

    def link_node(self, link: str, end: str) -> str:
        lk = self.path.link(link)
        return lk.a if end == "a" else lk.b

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(n.name) for n in self.path.nodes] if self.namespaced else []

    def endpoint(self, item: Hop | Vantage) -> tuple[str | None, str, int]:
        """(namespace of the client, address, port) to dial for a hop or a vantage point."""
        return self.ns(item.client), self.ip(item.server), self.port(item.port)

    def caveats(self) -> list[str]:
        """Which hops this plan can no longer tell apart."""
        if self.namespaced:
            return []
        p = self.path
        return ["no network namespaces (not root): every node is 127.0.0.1, so the iperf3 hops "
                f"{', '.join(h.name for h in p.hops if h.port.startswith('iperf@'))} all measure the same loopback",
                f"pulls from {' and '.join(repr(v.name) for v in p.vantages if v.port == 'published')} "
                "are the same (no link between compute node and VM)",
                "link rates (tc tbf) and per-namespace kernel settings cannot be applied"]


def plan(lab: str, namespaced: bool, host_port: int = 80, path: Path = PATH) -> Plan:
    if not lab.replace("-", "").isalnum() or len(lab) > 20:
        raise SettingsError(f"lab name {lab!r}: use up to 20 letters, digits or '-'")
    nodes = [n.name for n in path.nodes]
    if namespaced:
        ports = {"uwsgi_socket": 3031, "uwsgi_http": 8000, "nginx": 80, "published": host_port,
                 "iperf_published": 5202, **{f"iperf@{n}": 5201 for n in nodes}}
    else:
        base = 18000 + 100 * (sum(map(ord, lab)) % 200)
        ports = {"uwsgi_socket": base + 31, "uwsgi_http": base, "nginx": base + 80, "published": base + 81,
                 "iperf_published": base + 40, **{f"iperf@{n}": base + 41 + i for i, n in enumerate(nodes)}}
    return Plan(lab, namespaced, ports, path)
