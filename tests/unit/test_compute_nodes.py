"""Many compute nodes, derived from the declared path: the data for N=1 and N=8 (no root needed)."""
import ipaddress

import pytest

from labkit.errors import SettingsError
from labkit.lab.host import ownership
from labkit.measure.capture import capture_points
from labkit.path import MAX_COMPUTE_NODES, NODE_NAMES, PATH, compute_names, plan, registry_path


@pytest.mark.parametrize("n,lb", [(1, False), (8, False), (1, True), (3, True)])
def test_every_reference_resolves(n, lb):
    p = registry_path(n, load_balancer=lb)
    for items in (p.nodes, p.links, p.services, p.hops, p.connections, p.vantages, p.stages, p.ports):
        names = [getattr(x, "name", None) or x.key for x in items]
        assert len(names) == len(set(names)), names
    nodes = {x.name for x in p.nodes}
    bridges = {b.name: b for b in p.bridges}
    conns = {c.name for c in p.connections}
    ports = set(plan("x", True, path=p).ports)
    for lk in p.links:
        assert {lk.a, lk.b} <= nodes and lk.bridge_end in ("a", "b")
        if lk.bridge:
            assert bridges[lk.bridge].node == lk.end(lk.bridge_end)[0]   # the port is on the bridge's node
            host = lk.end("b" if lk.bridge_end == "a" else "a")[0]
            assert ipaddress.ip_address(p.node(host).address) in ipaddress.ip_network(bridges[lk.bridge].subnet)
    assert {b.node for b in p.bridges} <= nodes
    assert {r.node for r in p.routes} | set(p.forwarders) | {s.node for s in p.services} <= nodes
    assert {s.port for s in p.services} | {h.port for h in p.hops} | {v.port for v in p.vantages} <= ports
    assert {pb.node for pb in p.published} | {pb.container for pb in p.published} <= nodes
    assert {c.seen_on[0] for c in p.connections} <= {lk.name for lk in p.links}
    for v in p.vantages:
        assert set(v.crosses) <= conns and {v.client, v.server} <= nodes
    for st in p.stages:
        p.vantage(st.vantage), p.hop(st.hop)
        assert set(st.capture) <= conns
    assert set(p.compute) <= nodes and len(p.compute) == n
    assert p.client_vantage.client == p.compute[0]
    assert set(capture_points(plan("x", True, path=p))) == conns


@pytest.mark.parametrize("n,lb", [(1, False), (8, False), (MAX_COMPUTE_NODES, False), (1, True), (8, True)])
def test_addresses_names_and_devices_are_unique(n, lb):
    p = registry_path(n, load_balancer=lb)
    addrs = [x.address for x in p.nodes if x.address] + [b.gateway for b in p.bridges if b.gateway]
    assert len(addrs) == len(set(addrs))
    assert len({x.name for x in p.nodes}) == len(p.nodes) and len({lk.name for lk in p.links}) == len(p.links)
    for node in (x.name for x in p.nodes):
        devs = [d for lk in p.links for end in "ab" for nd, d in [lk.end(end)] if nd == node]
        devs += [b.name for b in p.bridges if b.node == node]
        assert len(devs) == len(set(devs)) and all(len(d) <= 15 for d in devs), (node, devs)
    assert all("-" not in x.name for x in p.nodes)      # a namespace's node is the part after the last '-'
    routes = {(r.node, r.dest) for r in p.routes}
    assert len(routes) == len(p.routes) and all((c, "198.51.100.0/24") in routes for c in p.compute)
    lo = plan("x", False, path=p)
    assert len(set(lo.ports.values())) == len(lo.ports)   # without namespaces services differ by port only


def test_one_compute_node_is_todays_path():
    assert registry_path(1) == PATH and compute_names(1) == ("compute",)
    assert [lk.name for lk in PATH.links] == ["wan", "nginx", "uwsgi"] and PATH.bridges[0].name == "docker0"
    assert plan("main", True).namespaces == ["sl-main-compute", "sl-main-vm", "sl-main-nginx", "sl-main-uwsgi"]
    assert PATH.shaped_links == ("wan", "nginx", "uwsgi")


def test_eight_compute_nodes_share_one_shaped_uplink_behind_a_switch():
    p = registry_path(8)
    assert p.compute == tuple(f"compute{i}" for i in range(1, 9))
    assert p.shaped_links == ("wan", "nginx", "uwsgi")
    wan = p.link("wan")
    assert (wan.a, wan.b, wan.bridge) == ("vm", "switch", "sw0")           # shaped at the VM's sending end
    access = [lk for lk in p.links if lk.bridge == "sw0" and lk.name != "wan"]
    assert sorted(lk.b for lk in access) == sorted(p.compute) and {lk.a for lk in access} == {"switch"}
    assert p.node("switch").address is None and p.bridges[0].gateway is None
    pl = plan("lab", True, path=p)
    assert len(pl.namespaces) == 12 and pl.compute_endpoints()[3] == ("compute4", "sl-lab-compute4", "192.0.2.20", 80)
    assert [n for n in p.nodes if n.name in p.compute][0].address == "192.0.2.101"
    assert any("compute nodes are all this host" in c for c in plan("lab", False, path=p).caveats())


@pytest.mark.parametrize("bad", [0, -1, MAX_COMPUTE_NODES + 1, 2.5, "4", True])
def test_a_bad_count_is_refused_with_the_setting_named(bad):
    with pytest.raises(SettingsError, match="compute_nodes"):
        registry_path(bad)


def test_a_labs_namespaces_are_found_whatever_its_node_count(monkeypatch):
    monkeypatch.setattr(ownership.netns, "can_use_namespaces", lambda: True)
    names = ["sl-st-a-compute", "sl-st-a-vm", "sl-st-b-compute7", "sl-st-b-switch", "sl-st-b-uwsgi",
             "sl-st-a-b-vm", "sl-other-thing"]
    monkeypatch.setattr(ownership.netns, "list_ns", lambda prefix="": [n for n in names if n.startswith(prefix)])
    monkeypatch.setattr(ownership, "known", lambda: [])
    assert ownership.lab_namespaces("st-b") == ["sl-st-b-compute7", "sl-st-b-switch", "sl-st-b-uwsgi"]
    assert ownership.lab_namespaces("st-a") == ["sl-st-a-compute", "sl-st-a-vm"]
    assert ownership.orphan_labs() == {"st-a", "st-b", "st-a-b"}
    assert {"compute", "compute64", "switch", "vm"} <= NODE_NAMES


def test_a_load_balancer_sits_between_the_compute_nodes_and_the_vm():
    p = registry_path(1, load_balancer=True)
    assert p.client_vantage.server == "lb" and p.service("lb").upstream.node == "vm"
    assert [s.name for s in p.stages][-2:] == ["load balancer", "full path"]
    assert p.stage_of_link("wan").name == "load balancer" and p.cpu_key("lb") == "lb"
    assert "lb" in NODE_NAMES
