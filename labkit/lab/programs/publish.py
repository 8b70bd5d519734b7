"""Docker's published ports in the lab, as dockerd sets them up from daemon.json's keys (the classes
are labkit.lab.programs.DockerNat and DockerProxy, in its PUBLISHERS table; this module holds what they share).

    iptables on   DockerNat: Docker's rules as one nftables table (DNAT in prerouting and output,
                  the forward filter with policy drop, masquerade; conntrack on every flow), and,
                  with userland-proxy on, also a docker-proxy per port, which then carries only
                  what the rules leave to it (the VM's own 127.0.0.1, hairpin).
    iptables off  a docker-proxy per port: it carries every pull.

docker/libnetwork 02d0f9d684d320c80105be781d6932481f30a543: portmapper/mapper.go MapRange starts
the proxy when `userland-proxy` is on and installs the forward rule either way (a no-op without
iptables: `forward` returns when no chain was set); drivers/bridge/setup_ip_tables.go:
`hairpinMode := !config.EnableUserlandProxy`. labkit.path.publish_route says, per vantage point,
which of them carries a pull. Without namespaces (not root) the lab cannot install rules in its
host's own namespace: docker-proxy then carries every pull, as with iptables off (a note says so).
"""
from __future__ import annotations

import ipaddress

from ...config.render import LabAccept
from ...config.settings import PublishSettings
from ...path import Plan, ServingPath


def bridge_of(path: ServingPath, container: str):
    """The bridge (and its node) a container's link is a port of: Docker's docker0 for nginx."""
    for lk in path.links:
        if lk.bridge and container in (lk.a, lk.b):
            return next(b for b in path.bridges if b.name == lk.bridge)
    raise ValueError(f"published container {container!r} is on no bridge of the path")


def binding_ip(plan: Plan, node: str, ip: str) -> str:
    """The address Docker binds (docker-proxy's -host-ip; the rule's `-d`) for daemon.json's `ip`."""
    return {"0.0.0.0": "0.0.0.0", "127.0.0.1": "127.0.0.1"}.get(ip) or plan.ip(node)


def lab_accepts(plan: Plan, bridge) -> list[LabAccept]:
    """The measuring hops that dial a container behind the bridge from beyond the VM (Docker's
    forward policy drops them: the lab lets them through, saying so in the rule)."""
    net = ipaddress.ip_network(bridge.subnet)
    out = []
    for h in plan.path.hops:
        server = plan.path.node(h.server).address
        client = plan.path.node(h.client).address
        if server and ipaddress.ip_address(server) in net and h.client != bridge.node and not (
                client and ipaddress.ip_address(client) in net):
            out.append(LabAccept(plan.ip(h.server), plan.port(h.port), f"the iperf3 hop {h.name}"))
    return out


def notes(pub: PublishSettings, namespaced: bool) -> list[str]:
    """What the lab cannot build of `pub` here."""
    if not namespaced and pub.iptables:
        return ["no network namespaces: Docker's DNAT rules cannot be built; docker-proxy carries every pull "
                "(as with publish.iptables = false)"]
    return []
