"""The lab's shape as plain data: nodes, links, addresses, ports, iperf3 hops and pull vantage points.

    compute ──wan── vm(eth0) ── docker-proxy ──docker0 bridge── nginx ──uwsgi_pass── uwsgi

Namespaced: one network namespace per node, named `sl-<lab>-<node>`. Loopback (no root):
every node is 127.0.0.1 and the services differ by port only.
"""
from __future__ import annotations

from dataclasses import dataclass

NS_PREFIX = "sl-"
NODES = ("compute", "vm", "nginx", "uwsgi")

# Documentation address ranges (RFC 5737): they exist only inside the lab's namespaces.
WAN = {"compute": "192.0.2.10", "vm": "192.0.2.20"}
BRIDGE_NET, BRIDGE_GW = "198.51.100.0/24", "198.51.100.1"
BRIDGED = {"nginx": "198.51.100.2", "uwsgi": "198.51.100.3"}


@dataclass(frozen=True)
class Link:
    name: str          # the settings.links field that shapes it
    a: str             # node holding the shaped end (sends the download's data)
    dev_a: str
    b: str
    dev_b: str


@dataclass(frozen=True)
class Hop:
    """An iperf3 run: the client at `client`, the server sending back (-R) like a download."""
    name: str
    client: str
    host: str
    port: int


@dataclass(frozen=True)
class Vantage:
    """Where a pull is made from and which URL it starts at."""
    name: str
    client: str
    host: str
    port: int
    through: str       # what the bytes cross, for the reader


@dataclass(frozen=True)
class Ports:
    uwsgi_socket: int
    uwsgi_http: int
    nginx: int
    published: int
    iperf: dict[str, int]
    iperf_published: int


@dataclass(frozen=True)
class Plan:
    lab: str
    namespaced: bool
    ports: Ports

    def ns(self, node: str) -> str | None:
        return f"{NS_PREFIX}{self.lab}-{node}" if self.namespaced else None

    def ip(self, node: str) -> str:
        if not self.namespaced:
            return "127.0.0.1"
        return WAN.get(node) or BRIDGED[node]

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(n) for n in NODES] if self.namespaced else []

    @property
    def links(self) -> list[Link]:
        return [Link("wan", "vm", "eth0", "compute", "eth0"),
                Link("nginx", "nginx", "eth0", "vm", "veth-nginx"),
                Link("uwsgi", "uwsgi", "eth0", "vm", "veth-uwsgi")]

    @property
    def hops(self) -> list[Hop]:
        p = self.ports.iperf
        return [Hop("compute→vm", "compute", self.ip("vm"), p["vm"]),
                Hop("vm→nginx", "vm", self.ip("nginx"), p["nginx"]),
                Hop("nginx→uwsgi", "nginx", self.ip("uwsgi"), p["uwsgi"]),
                Hop("compute→published port→nginx", "compute", self.ip("vm"), self.ports.iperf_published),
                Hop("compute→uwsgi (routed)", "compute", self.ip("uwsgi"), p["uwsgi"])]

    @property
    def vantages(self) -> list[Vantage]:
        pp = self.ports
        return [Vantage("uwsgi", "nginx", self.ip("uwsgi"), pp.uwsgi_http, "uwsgi (its own HTTP socket)"),
                Vantage("nginx", "vm", self.ip("nginx"), pp.nginx, "nginx → uwsgi"),
                Vantage("published port", "vm", self.ip("vm"), pp.published, "publish (docker-proxy or DNAT) → nginx → uwsgi"),
                Vantage("full path", "compute", self.ip("vm"), pp.published,
                        "link → publish → nginx → uwsgi")]

    def vantage(self, name: str) -> Vantage:
        for v in self.vantages:
            if v.name == name:
                return v
        raise ValueError(f"vantage {name!r}: one of {', '.join(v.name for v in self.vantages)}")

    def caveats(self) -> list[str]:
        """Which hops this plan can no longer tell apart."""
        if self.namespaced:
            return []
        return ["no network namespaces (not root): every node is 127.0.0.1, so the iperf3 hops "
                "compute→vm, vm→nginx, nginx→uwsgi and routed all measure the same loopback",
                "'published port' and 'full path' pulls are the same (no link between compute node and VM)",
                "link rates (tc tbf) and per-namespace kernel settings cannot be applied"]


def plan(lab: str, namespaced: bool, host_port: int = 80) -> Plan:
    if not lab.replace("-", "").isalnum() or len(lab) > 20:
        raise ValueError(f"lab name {lab!r}: use up to 20 letters, digits or '-'")
    if namespaced:
        ports = Ports(uwsgi_socket=3031, uwsgi_http=8000, nginx=80, published=host_port,
                      iperf={n: 5201 for n in NODES}, iperf_published=5202)
    else:
        base = 18000 + 100 * (sum(map(ord, lab)) % 200)
        ports = Ports(uwsgi_socket=base + 31, uwsgi_http=base, nginx=base + 80, published=base + 81,
                      iperf={n: base + 41 + i for i, n in enumerate(NODES)}, iperf_published=base + 45)
    return Plan(lab, namespaced, ports)
