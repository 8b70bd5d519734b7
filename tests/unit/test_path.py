"""The declared path and what is derived from it, and the pure plan of a live change (no root needed)."""
import pytest

from labkit.config.presets import PRESETS, RECOMMENDED, SREGISTRY_SHIPPED
from labkit.config.settings import LabSettings
from labkit.lab.changes import HostFeatures, plan_changes
from labkit.measure.capture import capture_points
from labkit.path import PATH, plan, registry_path

FEATS = HostFeatures(namespaced=True, congestion_controls=("reno", "cubic"), nft=True)


def test_every_reference_in_the_path_names_something_declared():
    nodes = {n.name for n in PATH.nodes}
    links = {lk.name for lk in PATH.links}
    conns = {c.name for c in PATH.connections}
    ports = set(plan("x", True).ports)
    assert {lk.a for lk in PATH.links} | {lk.b for lk in PATH.links} <= nodes
    assert {lk.bridge for lk in PATH.links if lk.bridge} <= {b.name for b in PATH.bridges}
    assert {s.port for s in PATH.services} | {h.port for h in PATH.hops} | {v.port for v in PATH.vantages} <= ports
    assert {c.seen_on[0] for c in PATH.connections} <= links
    for v in PATH.vantages:
        assert set(v.crosses) <= conns and {v.client, v.server} <= nodes
    for st in PATH.stages:
        PATH.vantage(st.vantage), PATH.hop(st.hop)
        assert set(st.capture) <= conns


def test_links_and_cpu_are_keyed_by_the_paths_names_and_checked_against_it():
    assert PATH.shaped_links == tuple(lk.name for lk in PATH.links)
    good = SREGISTRY_SHIPPED.changed(links={"wan": "1gbit"}, cpu={"nginx_cpus": 0.5, "proxy_cpuset": "0"})
    assert PATH.problems(good) == []
    bad = SREGISTRY_SHIPPED.changed(links={"lan": "1gbit"}, cpu={"lb_cpus": 0.5})
    assert PATH.problems(bad) == [
        "links.lan: no link 'lan' to shape in this path; links: wan, nginx, uwsgi",
        "cpu.lb_cpus/_cpuset: nothing named 'lb' can be CPU-limited in this path; names: uwsgi, nginx, proxy"]
    assert registry_path(3).problems(SREGISTRY_SHIPPED.changed(links={"port2": "1gbit"}))[0].startswith("links.port2")


def test_the_client_pulls_through_every_stage():
    assert PATH.client_vantage.name == PATH.stages[-1].vantage
    assert PATH.client_vantage.client == "compute"


def test_accel_leaves_the_app_stage_without_the_image():
    assert [s.name for s in PATH.carrying(SREGISTRY_SHIPPED)] == [s.name for s in PATH.stages if s.name != "tls"]
    accel = SREGISTRY_SHIPPED.changed(app={"serve_mode": "accel"})
    idle = [s.name for s in PATH.stages if s.name not in [c.name for c in PATH.carrying(accel)]]
    assert idle == [PATH.stages[0].name, "tls"]
    assert PATH.stages[0].vantage not in [v.name for v in PATH.vantages_for(accel)]


def test_tls_is_a_stage_at_nginx_idle_when_tls_is_off():
    tls = PATH.stage("tls")
    assert tls.programs == ("nginx",) and PATH.stages[PATH.stages.index(tls) - 1].name == "nginx"
    assert tls not in PATH.carrying(SREGISTRY_SHIPPED)
    on = SREGISTRY_SHIPPED.changed(tls={"enabled": True})
    assert tls in PATH.carrying(on) and "nginx (tls)" in [v.name for v in PATH.vantages_for(on)]
    assert "nginx (tls)" not in [v.name for v in PATH.vantages_for(SREGISTRY_SHIPPED)]


def test_docker_publishes_nginx_tls_port_when_tls_is_on():
    from labkit.path import FRONT, plan
    off, on = plan("t", True), plan("t", True, tls_port=443)
    assert [pb.container_port for pb in PATH.published if pb.name == "registry"] == [FRONT]
    assert (off.port(FRONT), off.port("published")) == (80, 80)
    assert (on.port(FRONT), on.port("published"), on.port("nginx")) == (443, 443, 80)
    lo = plan("t", False, tls_port=443)
    assert lo.port(FRONT) == lo.port("nginx_tls") != lo.port("nginx")


def test_capture_points_are_derived_from_links_and_ports():
    pts = capture_points(plan("x", True))
    assert set(pts) == {c.name for c in PATH.connections}
    link = pts[PATH.client_vantage.crosses[0]]
    assert (link.node, link.iface, link.bpf) == ("compute", "eth0", "tcp port 80")
    lo = capture_points(plan("x", False))
    assert {p.iface for p in lo.values()} == {"lo"}


@pytest.mark.parametrize("change,steps", [
    ({"nginx": {"sendfile": False}}, ("nginx",)),
    ({"uwsgi": {"processes": 8}}, ("uwsgi",)),
    ({"app": {"serve_mode": "accel"}}, ("uwsgi", "nginx")),
    ({"links": {"wan": "1gbit"}}, ("links",)),
    ({"client": {"kind": "curl"}}, ()),
    ({"client": {"dest": "local-disk", "write_mbps": 50}}, ("client",)),
    ({"storage": {"disk": "loop", "read_mbps": 40}, "cpu": {"uwsgi_cpus": 0.5}}, ("storage", "cpu")),
    ({"kernel": {"congestion_control": "reno"}}, ("kernel",)),
    ({"publish": {"userland_proxy": False}, "nginx": {"sendfile": False}, "kernel": {"tcp_wmem": (4096, 16384, 4194304)}},
     ("kernel", "publish", "nginx")),
])
def test_a_change_plans_only_the_steps_it_needs_in_order(change, steps):
    ch = plan_changes(SREGISTRY_SHIPPED, SREGISTRY_SHIPPED.changed(**change), FEATS)
    assert ch.steps == steps and ch.problems == ()


def test_nothing_changes_nothing():
    assert plan_changes(RECOMMENDED, RECOMMENDED, FEATS).steps == ()


def test_problems_name_the_setting_and_why():
    loop = HostFeatures(namespaced=False, congestion_controls=("cubic",), nft=False)
    new = SREGISTRY_SHIPPED.changed(links={"wan": "1gbit"}, kernel={"congestion_control": "bbr"},
                                    publish={"userland_proxy": False, "host_port": 8080})
    text = "; ".join(plan_changes(SREGISTRY_SHIPPED, new, loop).problems)
    for needle in ("links: link rates (tc) need network namespaces",
                   "publish.userland_proxy: false needs network namespaces",
                   "'bbr' is not available in this kernel (available: cubic)",
                   "publish.host_port is set when the lab starts"):
        assert needle in text


def test_presets_plan_cleanly_from_each_other():
    for a in PRESETS.values():
        for b in PRESETS.values():
            if a.registry.kind != b.registry.kind:    # another registry is another path: set when the lab starts
                assert plan_changes(a, b, FEATS).problems == (
                    "registry.kind is set when the lab starts (it chooses the path); bring it up again to change it",)
                continue
            assert plan_changes(a, b, FEATS).problems == ()
            if a.tls.enabled != b.tls.enabled:       # Docker publishes another port
                assert "publish" in plan_changes(a, b, FEATS).steps


def test_settings_group_names_are_the_step_inputs():
    from labkit.lab.changes import STEP_FOR_GROUP
    assert set(STEP_FOR_GROUP) == set(LabSettings.model_fields)


def test_the_machine_model_is_refused_live():
    from labkit.config.overrides import apply_overrides
    base = SREGISTRY_SHIPPED
    ch = plan_changes(base, apply_overrides(base, ["machine.dilation=2"]), HostFeatures(True, ("cubic",), True))
    assert ch.groups == ("machine",) and ch.steps == () and "set when the lab starts" in ch.problems[0]
