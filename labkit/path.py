"""The serving path, declared once as plain data; everything else is derived from it.

    compute ──wan── vm(eth0) ── publish (DNAT + conntrack; docker-proxy if iptables is off) ──docker0── nginx
        ──uwsgi_pass── uwsgi

    compute1 ─┐
    compute2 ─┼─ switch (bridge sw0) ──wan (one uplink)── vm(eth0) ── ...      registry_path(compute_nodes=N)
    computeN ─┘

A `ServingPath` says which nodes there are, how they are linked (and which end of each link is
shaped), the bridge, where each service listens, which hops iperf3 measures, where pulls
are made from, which TCP connections a download crosses (where they can be captured and who
sends on them) and the stages a byte crosses, in order, with the serve and publish modes in
which each stage carries the image. Building the namespaces, shaping, captures, the survey
plan, the verdict's stages and the drawings read this module; no other module names a hop,
a stage or a vantage point. (Mininet's `Topo` → `buildFromTopo` is the model.)

`plan(lab, namespaced)` places the path: namespace names, addresses and ports. Without root
every node is 127.0.0.1 and the services differ by port only.

`registry_path(compute_nodes=N)` declares N compute nodes, each its own node behind a
switch (a bridge in its own namespace) with one uplink to the VM, shaped by `links.wan` at
the VM's sending end; N=1 is the path above, unchanged. The first compute node is where the
hops, vantage points and captures of the single client are.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from pydantic import TypeAdapter

from .config.modes import modes_where
from .errors import SettingsError, UnknownName

NS_PREFIX = "sl-"
FRONT = "nginx_front"  # the port key of nginx's client-facing port: "nginx_tls" with TLS on, else "nginx"
CLIENT = "client"      # the program that pulls at a vantage point (its CPU is measured per pull)
MAX_COMPUTE_NODES = 64


@dataclass(frozen=True)
class Node:
    name: str
    role: str                      # what it stands for, for the reader
    address: str | None            # its address inside the lab's namespaces (None: a switch, no address)


@dataclass(frozen=True)
class Link:
    """A veth pair. `a` sends the download's data: with `shaped`, its egress is what
    `settings.links.<name>` shapes.

    With `bridge`, the device at `bridge_end` is a port of that bridge (on that end's node) and
    the other end holds its node's address in the bridge's subnet; without, a point-to-point /24.
    """
    name: str
    a: str
    dev_a: str
    b: str
    dev_b: str
    bridge: str | None = None
    bridge_end: str = "b"
    shaped: bool = False           # settings.links.<name> sets its rate (else it is never shaped)

    def end(self, which: str) -> tuple[str, str]:
        """(node, device) at end "a" or "b"."""
        return (self.a, self.dev_a) if which == "a" else (self.b, self.dev_b)


@dataclass(frozen=True)
class Bridge:
    name: str
    node: str
    subnet: str
    gateway: str | None            # the bridge's own address (None: a plain switch)


@dataclass(frozen=True)
class Route:
    node: str
    dest: str                      # a subnet, or "default"
    via: str                       # an address


@dataclass(frozen=True)
class Port:
    """A port the path's programs use: its number in the namespaces, and its offset from the lab's base
    port on loopback (without namespaces every service is 127.0.0.1 and they differ by port only)."""
    key: str
    number: int | None             # None: the published port settings.publish.host_port sets
    loopback: int


@dataclass(frozen=True)
class Upstream:
    """Where a service forwards requests: the node and port it dials, and how it speaks there."""
    node: str
    port: str
    protocol: str                  # "uwsgi" (uwsgi_pass) or "http" (proxy_pass)


@dataclass(frozen=True)
class ServiceSpec:
    """A long-running program of the path.

    `program`: its class, by name in `labkit.lab.programs.PROGRAMS`. `port`: where it answers
    when ready. `socket`: a second port it serves on (uwsgi's uwsgi-protocol socket). `upstream`:
    where it forwards (nginx: uwsgi's socket). `cpu`: its key in settings.cpu (`<cpu>_cpus`,
    `<cpu>_cpuset`; None: never limited). `disk`: the lab disk whose files it reads or writes
    ("vm": the VM's storage, whose block-I/O group it joins). `tls`: the port it answers https on when
    settings.tls is on (sregistry's https setup: nginx).
    """
    name: str
    program: str
    node: str
    port: str
    socket: str | None = None
    upstream: Upstream | None = None
    cpu: str | None = None
    disk: str | None = None
    tls: str | None = None         # the port it terminates TLS on (nginx, with settings.tls on)


@dataclass(frozen=True)
class Published:
    """A port Docker publishes on a host node, forwarded to a container's port.

    `proxy`: the program that copies its bytes when Docker publishes with its userland proxy;
    `cpu`: that program's key in settings.cpu.
    """
    name: str
    node: str
    host_port: str
    container: str
    container_port: str
    proxy: str = "docker-proxy"
    cpu: str = "proxy"


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
    """Where a pull is made from and where it dials; the connections it crosses, outermost first.

    `arrives`: how a pull from here meets Docker's published port (one of ARRIVALS; None: it dials
    a container directly), which decides what carries it (`publish_route`). `side`: a vantage off
    the way to the client (pulled on request, not in surveys). A "loopback" vantage dials 127.0.0.1.
    """
    name: str
    client: str
    server: str
    port: str
    crosses: tuple[str, ...]
    arrives: str | None = None
    side: bool = False


# How a connection meets a published port on the Docker host (docker/libnetwork 02d0f9d6):
#   outside   from another host, arriving on eth0: nat PREROUTING `-m addrtype --dst-type LOCAL -j DOCKER`
#   host      from the host itself to its own address: nat OUTPUT `! -d 127.0.0.0/8 -m addrtype ... -j DOCKER`
#   loopback  from the host itself to 127.0.0.1: OUTPUT skips 127.0.0.0/8 unless userland-proxy is off
#   hairpin   from a container to the host's address: `-A DOCKER -i docker0 -j RETURN` unless userland-proxy is off
# (iptables/iptables.go ProgramChain and Forward, drivers/bridge/setup_ip_tables.go setupIPTablesInternal)
ARRIVALS = ("outside", "host", "loopback", "hairpin")
PROXY = "docker-proxy"          # the program that carries a published port's bytes when the rules leave them to it


def publish_route(arrives: str, publish) -> str | None:
    """What carries a pull that meets the published port as `arrives` under PublishSettings `publish`:
    "dnat" (the kernel: conntrack, DNAT, the bridge), PROXY, or None (nothing answers there).

    Docker with `iptables` on DNATs every arrival its rules match, whatever `userland-proxy` says
    (portmapper/mapper.go MapRange installs the forward rule either way); docker-proxy then carries
    only what the rules leave out, loopback and hairpin, and only while userland-proxy is on (off,
    those are DNATed as well: "hairpin mode"). With `iptables` off docker-proxy carries everything.
    `ip` binds both the rule (`-d <ip>`) and the proxy's listening socket to one address.
    """
    if arrives not in ARRIVALS:
        raise UnknownName(f"arrival {arrives!r}: one of {', '.join(ARRIVALS)}")
    if publish.ip != "0.0.0.0" and (publish.ip == "127.0.0.1") != (arrives == "loopback"):
        return None
    if not publish.iptables:
        return PROXY if publish.userland_proxy else None
    if arrives in ("loopback", "hairpin") and publish.userland_proxy:
        return PROXY
    return "dnat"


@dataclass(frozen=True)
class Stage:
    """What a byte crosses between the vantage point before and `vantage`.

    `hop`: the iperf3 hop that bounds it. `capture`: the connections to look inside for it.
    `idle_when`: settings (group.field -> values) under which the stage does not carry the image.
    `programs`: the programs doing its work (their CPU is the stage's; CLIENT is the pulling client);
    a stage of Docker's publish step lists PROXY, which `Path.carrying` keeps only where docker-proxy
    carries its vantage's pulls under the settings (with DNAT the kernel does the work).
    `sends_on`: the connection over the stage's own link (a shaped link shows on its sender), if any.
    `reads_from`: the connection the stage's program receives the image on (None: it reads the file).
    """
    name: str
    adds: str
    vantage: str
    hop: str
    capture: tuple[str, ...]
    idle_when: dict[str, tuple] = field(default_factory=dict)
    programs: tuple[str, ...] = ()
    sends_on: str | None = None
    reads_from: str | None = None

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
    `column`: the pull row's column (MB). `idle_when` as for Stage. `stage`: the stage whose
    program does this I/O (None: whichever carrying stage reads the image file, the first).
    """
    name: str
    adds: str
    disk: str
    counter: str
    column: str
    idle_when: dict[str, tuple] = field(default_factory=dict)
    stage: str | None = None

    def carries(self, settings) -> bool:
        return _carries(self.idle_when, settings)


@dataclass(frozen=True)
class ServingPath:
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
    compute: tuple[str, ...] = ()  # the compute nodes (clients pull from them; a storm runs a worker on each)
    disk_stages: tuple[DiskStage, ...] = ()   # where the image is read from or written to a disk, in byte order
    ports: tuple[Port, ...] = ()   # every port key the services, hops and vantages name

    def node(self, name: str) -> Node:
        return _one(self.nodes, name, "node")

    def link(self, name: str) -> Link:
        return _one(self.links, name, "link")

    def service(self, name: str) -> ServiceSpec:
        return _one(self.services, name, "service")

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

    def links_between(self, a: str, b: str) -> list[Link]:
        """The links a packet crosses from node `a` to node `b`, in order (a bridge's ports are links too)."""
        seen, todo = {a: []}, [a]
        while todo:
            here = todo.pop(0)
            if here == b:
                return seen[here]
            for lk in self.links:
                if here in (lk.a, lk.b):
                    there = lk.b if here == lk.a else lk.a
                    if there not in seen:
                        seen[there] = [*seen[here], lk]
                        todo.append(there)
        raise UnknownName(f"no route from {a} to {b} in this path")

    @property
    def shaped_links(self) -> tuple[str, ...]:
        """The links settings.links can shape, by name."""
        return tuple(lk.name for lk in self.links if lk.shaped)

    @property
    def cpu_keys(self) -> tuple[str, ...]:
        """The names settings.cpu is keyed by (`<key>_cpus`, `<key>_cpuset`): a service's, or the publish proxy's."""
        return tuple(dict.fromkeys([*(s.cpu for s in self.services if s.cpu), *(pb.cpu for pb in self.published)]))

    @property
    def keyed_settings(self) -> dict[str, tuple[str, ...]]:
        """The settings groups keyed by this path's names, and the entries each can have."""
        return {"links": self.shaped_links,
                "cpu": tuple(f"{k}_{kind}" for kind in ("cpus", "cpuset") for k in self.cpu_keys)}

    def cpu_key(self, program: str) -> str | None:
        """The settings.cpu key that limits a stage's program (a service's name, or the publish proxy)."""
        svc = next((s for s in self.services if s.name == program), None)
        if svc is not None:
            return svc.cpu
        return next((pb.cpu for pb in self.published if pb.proxy == program), None)

    def problems(self, settings) -> list[str]:
        """Settings keyed by this path's names (links, cpu) that name nothing in it, and publishing that
        leaves the client no way in; [] when all is well."""
        out = []
        for link in settings.links.names():
            if link not in self.shaped_links:
                out.append(f"links.{link}: no link {link!r} to shape in this path; links: {', '.join(self.shaped_links)}")
        for key in settings.cpu.keys():
            if key not in self.cpu_keys:
                out.append(f"cpu.{key}_cpus/_cpuset: nothing named {key!r} can be CPU-limited in this path; "
                           f"names: {', '.join(self.cpu_keys)}")
        arrives = self.client_vantage.arrives
        if arrives and publish_route(arrives, settings.publish) is None:
            out.append(f"publish.ip: {settings.publish.ip}: Docker binds the published port there, so a compute "
                       "node cannot reach it (use 0.0.0.0 or eth0)")
        return out

    @property
    def client_vantage(self) -> Vantage:
        """Where the real client pulls from: the vantage of the last stage (the whole path)."""
        return self.vantage(self.stages[-1].vantage)

    @property
    def client_stage(self) -> Stage:
        """The stage of the pulling client (the last one: the whole path)."""
        return self.stages[-1]

    def carrying(self, settings) -> list[Stage]:
        """The stages that carry the image under `settings`, each with the programs that do its work then."""
        return [replace(s, programs=self.stage_programs(s, settings)) for s in self.stages if s.carries(settings)]

    def stage_programs(self, stage: Stage, settings) -> tuple[str, ...]:
        """A stage's programs under `settings`: PROXY only where docker-proxy carries its vantage's pulls."""
        if PROXY not in stage.programs:
            return stage.programs
        arrives = self.vantage(stage.vantage).arrives
        if arrives and publish_route(arrives, settings.publish) == PROXY:
            return stage.programs
        return tuple(p for p in stage.programs if p != PROXY)

    def programs_at(self, vantage: str, settings) -> tuple[str, ...]:
        """The programs a pull from `vantage` crosses under `settings`, from the file to the client
        (PROXY where Docker's rules leave the published port to it)."""
        v = self.vantage(vantage)
        if v.arrives is None:         # dials a container: the stages up to its own
            order = [s.name for s in self.stages]
            own = [s for s in self.stages if s.vantage == v.name]
            upto = order.index(own[0].name) + 1 if own else 0
            stages = [s for s in self.stages[:upto] if s.carries(settings)]
            return tuple(dict.fromkeys(p for s in stages for p in s.programs if p not in (PROXY, CLIENT)))
        route = publish_route(v.arrives, settings.publish)
        inner = [p for s in self.stages if s.carries(settings) for p in s.programs if p not in (PROXY, CLIENT)]
        return tuple(dict.fromkeys(inner + ([PROXY] if route == PROXY else []) + [CLIENT]))

    def flows(self, settings) -> dict[str, tuple[str, ...]]:
        """Declared connections that are one TCP flow under `settings`, innermost first, by each of them.

        Where Docker's DNAT carries the client's pull no program stands at the published port: the
        connection made to it is the container's own (its sender is the container's socket), so
        e.g. "link" and "docker0→nginx" are one flow, crossing both links. Without DNAT each stands alone.
        """
        out = {c.name: (c.name,) for c in self.connections}
        if publish_route(self.client_vantage.arrives, settings.publish) != "dnat":
            return out
        for pb in self.published:
            inner = [c.name for c in self.connections if (c.sender, c.port) == (pb.container, pb.container_port)]
            outer = [c.name for c in self.connections if (c.sender, c.port) == (pb.node, pb.host_port)]
            for name in inner + outer:
                out[name] = tuple(inner + outer)
        return out

    def route_at(self, vantage: str, settings) -> str | None:
        """"dnat", PROXY or None (unreachable) for a vantage that dials a published port; "direct" otherwise."""
        v = self.vantage(vantage)
        return publish_route(v.arrives, settings.publish) if v.arrives else "direct"

    def stage_at(self, vantage: str) -> Stage:
        """The stage that a pull at `vantage` ends with."""
        return next(s for s in self.stages if s.vantage == vantage)

    @property
    def registry(self) -> str:
        """The registry.kind this path serves: the one whose backend program runs on it (BACKENDS)."""
        programs = {s.program for s in self.services}
        return next(k for k, b in BACKENDS.items() if b.program in programs)

    @property
    def backend(self) -> str:
        """The registry's own service (sregistry's uwsgi, distribution's registry): where its blobs are read."""
        return BACKENDS[self.registry].node

    def stage_of_program(self, program: str) -> Stage:
        """The stage whose work `program` does."""
        return next(s for s in self.stages if program in s.programs)

    def stage_of_link(self, link: str) -> Stage:
        """The stage whose own link is `link` (the connection it sends on crosses it)."""
        return next(s for s in self.stages if s.sends_on and link in self.crossed_by(s.sends_on))

    def crossed_by(self, connection: str) -> list[str]:
        """The links a connection's data crosses, from its sender to where it is seen (a switch's uplink too)."""
        c = self.connection(connection)
        return [lk.name for lk in self.links_between(c.sender, self.link(c.seen_on[0]).end(c.seen_on[1])[0])]

    def vantages_for(self, settings) -> list[Vantage]:
        """The vantage points whose pulls cross only stages that carry the image under `settings`."""
        idle = {s.vantage for s in self.stages if not s.carries(settings)}
        return [v for v in self.vantages if v.name not in idle and not v.side
                and (v.arrives is None or publish_route(v.arrives, settings.publish) is not None)]

    def to_dict(self) -> dict:
        """The path as JSON-ready data (a survey saves the path it was measured on)."""
        return _adapter().dump_python(self, mode="json")

    @classmethod
    def from_dict(cls, data: dict) -> "ServingPath":
        """A saved path; one saved before vantages said how they meet the published port gets it from where
        it dials from: another node arrives from outside, the VM itself as the host."""
        for v in data.get("vantages", ()):
            if v.get("port") == "published" and "arrives" not in v:
                v["arrives"] = "host" if v.get("client") == v.get("server") else "outside"
        return _adapter().validate_python(data)


def _adapter():
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(ServingPath)
    return _ADAPTER


_ADAPTER = None


def _one(items, name: str, what: str):
    for item in items:
        if item.name == name:
            return item
    raise UnknownName(f"{what} {name!r}: one of {', '.join(i.name for i in items)}")


def compute_names(n: int) -> tuple[str, ...]:
    """The compute nodes' names: "compute" alone, or compute1 … computeN behind a switch."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_COMPUTE_NODES:
        raise SettingsError(f"compute_nodes {n!r}: use a whole number in 1..{MAX_COMPUTE_NODES}")
    return ("compute",) if n == 1 else tuple(f"compute{i}" for i in range(1, n + 1))


def _edge(computes: tuple[str, ...], vm: str, switched: bool) -> tuple[tuple[Node, ...], tuple[Link, ...], tuple[Bridge, ...], tuple[str, str]]:
    """The compute side: nodes, links, bridges, and where the first client's connection is captured.

    One compute node: a point-to-point link from the VM. Several (or `switched`): each on its own
    port of a switch, which has one uplink to the VM (the link `links.wan` shapes at the VM's end).
    """
    if not switched:
        return ((Node(computes[0], "compute node", "192.0.2.10"),),  # RFC 5737 documentation ranges:
                (Link("wan", vm, "eth0", computes[0], "eth0", shaped=True),),  # they exist only inside the lab
                (), ("wan", "b"))
    switch, bridge = "switch", "sw0"
    nodes = (*(Node(c, f"compute node {i}", f"192.0.2.{100 + i}") for i, c in enumerate(computes, 1)),
             Node(switch, "switch (the compute nodes' bridge, one uplink to the VM)", None))
    links = (Link("wan", vm, "eth0", switch, "uplink", bridge=bridge, shaped=True),
             *(Link(f"port{i}", switch, f"port{i}", c, "eth0", bridge=bridge, bridge_end="a")
               for i, c in enumerate(computes, 1)))
    return nodes, links, (Bridge(bridge, switch, "192.0.2.0/24", None),), ("port1", "b")


def iperf_ports(nodes) -> tuple[Port, ...]:
    """An iperf3 server's port on each of `nodes` (the same number in every namespace)."""
    return tuple(Port(f"iperf@{n}", 5201, 41 + i) for i, n in enumerate(nodes))


@dataclass(frozen=True)
class Backend:
    """The registry container behind nginx: its node (and service) name, its program, the port a client
    dials it on directly (`http`) and the one nginx forwards to (`upstream`, spoken with `protocol`), the
    front's program, what each stage adds, and the settings under which a stage idles."""
    node: str
    role: str
    program: str
    http: Port
    upstream: Port
    protocol: str
    front: str
    adds: str
    front_adds: str
    image_read: str
    idle: dict[str, tuple] = field(default_factory=dict)           # the registry's stage (and nginx's temp files)
    spooling_off: dict[str, tuple] = field(default_factory=dict)   # nginx writes no temp files


# sregistry (uwsgi + the Django app, nginx uwsgi_pass) and distribution (docker-registry, nginx proxy_pass
# on /v2/): settings.registry.kind picks one; the rest of the path is the same
BACKENDS: dict[str, Backend] = {
    "sregistry": Backend(
        "uwsgi", "uwsgi container", "uwsgi", Port("uwsgi_http", 8000, 0), Port("uwsgi_socket", 3031, 31), "uwsgi",
        "nginx", "the registry app in uwsgi: how it reads and sends the file",
        "nginx in front of uwsgi: uwsgi_pass, buffering, temp files",
        "reading the image from the VM's disk, sregistry's bind mount",
        {"app.serve_mode": modes_where(lambda m: not m.app_sends_image)},
        {"nginx.uwsgi_buffering": (False,), "nginx.uwsgi_max_temp_file_size": ("0",)}),
    "distribution": Backend(
        "registry", "registry container (distribution, docker-registry 2.8)", "distribution",
        Port("registry_http", 5000, 0), Port("registry_http", 5000, 0), "http", "nginx-oci",
        "the OCI registry (distribution): how it reads blobs from its filesystem driver and sends them",
        "nginx in front of the registry: proxy_pass on /v2/, buffering, temp files",
        "reading the blobs from the VM's disk, the registry's filesystem driver root",
        {}, {"nginx.proxy_buffering": (False,), "nginx.proxy_max_temp_file_size": ("0",)}),
}


def registry_path(compute_nodes: int = 1, load_balancer: bool = False, registry: str = "sregistry") -> ServingPath:
    """sregistry's docker-compose deployment on a VM (or, `registry` "distribution", an OCI registry behind
    nginx in its place), with `compute_nodes` compute nodes pulling from it (through a load-balancing nginx
    in front of the VM with `load_balancer`: the compute nodes then sit on a switch, whatever their number)."""
    computes = compute_names(compute_nodes)
    if registry not in BACKENDS:
        raise SettingsError(f"registry.kind {registry!r}: one of {', '.join(BACKENDS)}")
    path = _registry(computes, switched=len(computes) > 1 or load_balancer, b=BACKENDS[registry])
    return _load_balanced(path) if load_balancer else path


def _registry(computes: tuple[str, ...], switched: bool, b: Backend = BACKENDS["sregistry"]) -> ServingPath:
    client, vm, vm_ip = computes[0], "vm", "192.0.2.20"
    edge_nodes, edge_links, edge_bridges, client_link = _edge(computes, vm, switched)
    # nginx answers plain http on "nginx" and, with TLS on, https on "nginx_tls"; FRONT is the one Docker
    # publishes to the compute nodes (the TLS port when TLS is on: sregistry's https compose)
    nginx_port, front, reg, up = "nginx", FRONT, b.node, b.upstream.key
    app_idle = b.idle
    iperf_nodes = (client, vm, "nginx", reg)
    socket = up if up != b.http.key else None
    hop_in = f"nginx→{reg}"
    return ServingPath(
        nodes=(*edge_nodes,
               Node(vm, "VM (docker host)", vm_ip),
               Node("nginx", "nginx container", "198.51.100.2"),
               Node(reg, b.role, "198.51.100.3")),
        links=(*edge_links,
               Link("nginx", "nginx", "eth0", vm, "veth-nginx", bridge="docker0", shaped=True),
               Link(reg, reg, "eth0", vm, f"veth-{reg}", bridge="docker0", shaped=True)),
        bridges=(*edge_bridges, Bridge("docker0", vm, "198.51.100.0/24", "198.51.100.1")),
        routes=(*(Route(c, "198.51.100.0/24", vm_ip) for c in computes),
                Route("nginx", "default", "198.51.100.1"),
                Route(reg, "default", "198.51.100.1")),
        forwarders=(vm,),
        services=(*(ServiceSpec(f"iperf3@{n}", "iperf3", n, f"iperf@{n}") for n in iperf_nodes),
                  ServiceSpec(reg, b.program, reg, b.http.key, socket=socket, cpu=reg, disk="vm"),
                  ServiceSpec("nginx", b.front, "nginx", nginx_port, upstream=Upstream(reg, up, b.protocol),
                              cpu="nginx", disk="vm", tls="nginx_tls")),
        published=(Published("registry", vm, "published", "nginx", front),
                   Published("iperf3", vm, "iperf_published", "nginx", "iperf@nginx")),
        hops=(Hop("compute→vm", client, vm, "iperf@vm"),
              Hop("vm→nginx", vm, "nginx", "iperf@nginx"),
              Hop(hop_in, "nginx", reg, f"iperf@{reg}"),
              Hop("compute→published port→nginx", client, vm, "iperf_published"),
              Hop(f"compute→{reg} (routed)", client, reg, f"iperf@{reg}")),
        connections=(Connection("link", vm, "published", client_link),
                     Connection("docker0→nginx", "nginx", front, ("nginx", "b")),
                     Connection(hop_in, reg, up, (reg, "b")),
                     Connection(f"{reg} http", reg, b.http.key, ("nginx", "a"))),
        vantages=(Vantage(reg, "nginx", reg, b.http.key, (f"{reg} http",)),
                  Vantage("nginx", vm, "nginx", nginx_port, ("docker0→nginx", hop_in)),
                  Vantage("nginx (tls)", vm, "nginx", "nginx_tls", ("docker0→nginx", hop_in)),
                  Vantage("published port", vm, vm, "published", ("docker0→nginx", hop_in), "host"),
                  Vantage("full path", client, vm, "published", ("link", "docker0→nginx", hop_in),
                          "outside"),
                  Vantage("VM loopback", vm, vm, "published", ("docker0→nginx", hop_in), "loopback",
                          side=True)),
        stages=(Stage(reg, b.adds, reg, hop_in, (hop_in,), app_idle, (reg,), hop_in),
                Stage("nginx", b.front_adds, "nginx",
                      "vm→nginx", ("docker0→nginx", hop_in), programs=("nginx",),
                      sends_on="docker0→nginx", reads_from=hop_in),
                Stage("tls", "TLS at nginx: every byte encrypted by the one worker that holds the connection",
                      "nginx (tls)", "vm→nginx", ("docker0→nginx",), {"tls.enabled": (False,)}, ("nginx",),
                      sends_on="docker0→nginx", reads_from=hop_in),
                Stage("published port", "Docker's publish step: DNAT and conntrack in the kernel, or docker-proxy "
                      "copying every byte with iptables off", "published port", "compute→published port→nginx",
                      ("link", "docker0→nginx"), programs=(PROXY,), reads_from="docker0→nginx"),
                Stage("full path", "the link from the VM to the compute node", "full path",
                      "compute→vm", ("link",), programs=(CLIENT,), sends_on="link", reads_from="link")),
        compute=computes,
        disk_stages=(DiskStage("image read", b.image_read,
                               "vm", "bytes_read", "disk_read_MB"),
                     DiskStage("temp spooling", "nginx spooling the response to temp files on its container layer",
                               "vm", "bytes_written", "disk_write_MB",
                               {**b.spooling_off, **app_idle}),
                     DiskStage("client write", "the client writing the image to the compute node's local disk",
                               "compute", "bytes_written", "client_write_MB",
                               {"client.dest": ("memory", "shared-fs")}, "full path")),
        ports=(*dict.fromkeys((b.http, b.upstream)), Port(nginx_port, 80, 80),
               Port("nginx_tls", 443, 83), Port("published", None, 81), Port("iperf_published", 5202, 40), *iperf_ports(iperf_nodes)),
    )


def _load_balanced(p: ServingPath, lb: str = "lb", address: str = "192.0.2.30") -> ServingPath:
    """`p` (its compute nodes on a switch) with a load-balancing nginx in front of the VM, on the same
    switch: the compute nodes pull from it, it proxies every request to the VM's published port.

        compute ──port1── switch ──lb── lb (nginx, proxy_pass) ──(switch)──wan── vm ── publish ── nginx ── uwsgi
    """
    client, pub = p.compute[0], p.published[0]
    vm, bridge = pub.node, p.link("wan").bridge
    client_port = next(lk.name for lk in p.links if lk.bridge == bridge and client in (lk.a, lk.b))
    iperf = [s for s in p.services if s.program == "iperf3"]
    last, outer = p.stages[-1], p.client_vantage
    # the client now dials the load balancer, which meets the VM's published port from outside as the
    # client did (so a pull from either still arrives there that way: what carries it, DNAT or docker-proxy)
    lb_vantage = Vantage("load balancer", lb, lb, lb, outer.crosses, outer.arrives)
    client_vantage = replace(outer, server=lb, port=lb, crosses=("edge", *outer.crosses))
    return replace(
        p, nodes=(*p.nodes, Node(lb, "load balancer (nginx in front of the VM)", address)),
        links=(*p.links, Link(lb, p.link("wan").b, lb, lb, "eth0", bridge=bridge, bridge_end="a")),
        services=(*p.services, ServiceSpec(f"iperf3@{lb}", "iperf3", lb, f"iperf@{lb}"),
                  ServiceSpec(lb, "nginx", lb, lb, upstream=Upstream(vm, pub.host_port, "http"), cpu=lb)),
        ports=(*p.ports, Port(lb, 80, 82), Port(f"iperf@{lb}", 5201, 41 + len(iperf))),
        hops=(*p.hops, Hop(f"compute→{lb}", client, lb, f"iperf@{lb}"), Hop(f"{lb}→vm", lb, vm, f"iperf@{vm}")),
        connections=(*(replace(c, seen_on=(lb, "b")) if c.name == "link" else c for c in p.connections),
                     Connection("edge", lb, lb, (client_port, "b"))),
        vantages=tuple(x for v in p.vantages for x in ((lb_vantage, client_vantage) if v == outer else (v,))),
        stages=(*p.stages[:-1],
                Stage("load balancer", "the load balancer in front of the VM (nginx proxying to the published "
                      "port) and the WAN to it", "load balancer", f"{lb}→vm", ("edge", "link"), programs=(lb,),
                      sends_on="link", reads_from="link"),
                replace(last, adds="the link from the load balancer to the compute node", hop=f"compute→{lb}",
                        capture=("edge",), sends_on="edge", reads_from="edge")))


PATH = registry_path()     # the default a lab is built on; everything after the lab reads the lab's own path
# every node name any registry_path(n) can have: to find a lab's namespaces without knowing its n
NODE_NAMES = frozenset(n.name for k in (1, MAX_COMPUTE_NODES) for lb in (False, True) for r in BACKENDS
                       for n in registry_path(k, lb, r).nodes)


@dataclass(frozen=True)
class Plan:
    """The path placed on this machine: namespace names, addresses and ports for one lab."""
    lab: str
    namespaced: bool
    ports: dict[str, int]
    path: ServingPath = PATH
    tls: bool = False                     # FRONT (what Docker publishes) is nginx's TLS port

    def ns(self, node: str) -> str | None:
        return f"{NS_PREFIX}{self.lab}-{node}" if self.namespaced else None

    def ip(self, node: str) -> str | None:
        return self.path.node(node).address if self.namespaced else "127.0.0.1"

    def port(self, key: str) -> int:
        if key == FRONT:
            key = "nginx_tls" if self.tls else "nginx"
        return self.ports[key]

    def dev(self, link: str, end: str) -> str:
        """The interface name at one end of a link ("lo" without namespaces)."""
        return self.path.link(link).end(end)[1] if self.namespaced else "lo"

    def link_node(self, link: str, end: str) -> str:
        return self.path.link(link).end(end)[0]

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(n.name) for n in self.path.nodes] if self.namespaced else []

    def serves(self, item: Hop | Vantage) -> bool:
        """Whether anything answers where `item` dials (nginx's TLS port only with TLS on)."""
        return item.port != "nginx_tls" or self.tls

    def tls_at(self, item: Hop | Vantage) -> bool:
        """Whether dialling `item` reaches nginx's TLS port (directly, or through a port Docker publishes to it)."""
        if item.port == "nginx_tls":
            return True
        published = {pb.host_port: pb.container_port for pb in self.path.published}
        return self.tls and FRONT in (item.port, published.get(item.port))

    def endpoint(self, item: Hop | Vantage | Upstream) -> tuple[str | None, str, int]:
        """(namespace of the client, address, port) to dial for a hop or a vantage point
        (for an upstream: no namespace, the address and port its service dials; a loopback vantage: 127.0.0.1)."""
        if isinstance(item, Upstream):
            return None, self.ip(item.node), self.port(item.port)
        host = "127.0.0.1" if getattr(item, "arrives", None) == "loopback" else self.ip(item.server)
        return self.ns(item.client), host, self.port(item.port)

    def compute_endpoints(self) -> list[tuple[str, str | None, str, int]]:
        """(compute node, its namespace, address, port) for a pull of the whole path from every compute node."""
        v = self.path.client_vantage
        return [(c, self.ns(c), self.ip(v.server), self.port(v.port)) for c in self.path.compute]

    def caveats(self) -> list[str]:
        """Which hops this plan can no longer tell apart."""
        if self.namespaced:
            return []
        p = self.path
        return ["no network namespaces (not root): every node is 127.0.0.1, so the iperf3 hops "
                f"{', '.join(h.name for h in p.hops if h.port.startswith('iperf@'))} all measure the same loopback",
                f"pulls from {' and '.join(repr(v.name) for v in p.vantages if v.port == p.client_vantage.port)} "
                "are the same (no link between compute node and VM)",
                "link rates (tc tbf) and per-namespace kernel settings cannot be applied"] + (
                [f"the {len(p.compute)} compute nodes are all this host: they share no uplink"]
                if len(p.compute) > 1 else [])


def plan(lab: str, namespaced: bool, host_port: int = 80, path: ServingPath = PATH,
         tls_port: int | None = None) -> Plan:
    """The path placed for lab `lab`: its ports' numbers (a port declared without one is `host_port`,
    the published port settings.publish.host_port sets), or on loopback the lab's base port plus each offset.
    `tls_port`: TLS is on, nginx's https port, published on the VM as the same port (compose's "443:443")."""
    if not lab.replace("-", "").isalnum() or len(lab) > 20:
        raise SettingsError(f"lab name {lab!r}: use up to 20 letters, digits or '-'")
    if namespaced:
        ports = {p.key: (tls_port or host_port) if p.number is None else p.number for p in path.ports}
        if tls_port and "nginx_tls" in ports:
            ports["nginx_tls"] = tls_port
    else:
        base = 18000 + 100 * (sum(map(ord, lab)) % 200)
        ports = {p.key: base + p.loopback for p in path.ports}
    return Plan(lab, namespaced, ports, path, tls=tls_port is not None)
