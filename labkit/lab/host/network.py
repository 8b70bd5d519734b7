"""The path's network built from its declaration: namespaces, veth pairs, the bridge, routes, shaping, sysctls."""
from __future__ import annotations

import ipaddress

from ...config.settings import SYSCTLS, LabSettings, as_text
from ...path import Plan
from . import netns


def build(plan: Plan, settings: LabSettings) -> dict[str, str]:
    """Every node's namespace and links as `plan.path` declares them; returns the kernel's TCP defaults."""
    path, ns = plan.path, plan.ns
    for node in path.nodes:
        netns.add_ns(ns(node.name))
    for br in path.bridges:
        prefix = ipaddress.ip_network(br.subnet).prefixlen
        netns.bridge(ns(br.node), br.name, f"{br.gateway}/{prefix}" if br.gateway else None)
    for lk in path.links:
        netns.veth(ns(lk.a), lk.dev_a, ns(lk.b), lk.dev_b)
        if lk.bridge:
            (port_node, port_dev), (host, dev) = lk.end(lk.bridge_end), lk.end("a" if lk.bridge_end == "b" else "b")
            netns.enslave(ns(port_node), port_dev, lk.bridge)
            prefix = ipaddress.ip_network(_bridge(plan, lk.bridge).subnet).prefixlen
            netns.addr(ns(host), dev, f"{plan.ip(host)}/{prefix}")
        else:
            netns.addr(ns(lk.a), lk.dev_a, f"{plan.ip(lk.a)}/24")
            netns.addr(ns(lk.b), lk.dev_b, f"{plan.ip(lk.b)}/24")
    for r in path.routes:
        netns.route(ns(r.node), r.dest, r.via)
    for node in path.forwarders:
        netns.sysctl(ns(node), "net.ipv4.ip_forward", "1")
    defaults = {key: netns.read_sysctl(ns(path.nodes[0].name), key) for key in SYSCTLS.values()}
    shape(plan, settings)
    set_kernel(plan, settings, defaults)
    return defaults


def _bridge(plan: Plan, name: str):
    return next(b for b in plan.path.bridges if b.name == name)


def shape(plan: Plan, s: LabSettings) -> None:
    """tc tbf on each shaped link's sending end at the rate `settings.links.<link>` gives (absent: unshaped)."""
    for lk in plan.path.links:
        if lk.shaped:
            netns.shape(plan.ns(lk.a), lk.dev_a, s.links.rate(lk.name))


def set_kernel(plan: Plan, s: LabSettings, defaults: dict[str, str]) -> None:
    """The TCP sysctls in every namespace; a setting of None puts the namespace default back."""
    for node in plan.path.nodes:
        for field, key in SYSCTLS.items():
            netns.sysctl(plan.ns(node.name), key, as_text(getattr(s.kernel, field)) or defaults[key])
