"""Docker's publishing as daemon.json's keys: which program carries each vantage point's pulls, the rules, the import."""
from __future__ import annotations

import json
import warnings

import pytest

from labkit.config.importer import SregistryFiles, import_files
from labkit.config.overrides import load_settings
from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.config.render import LabAccept, PublishedRule, render_nat
from labkit.config.settings import PublishSettings, SettingsError, parse_settings
from labkit.lab.programs.publish import lab_accepts
from labkit.lab.programs import DockerNat, DockerProxy, Site, nat_counters, publishing
from labkit.path import CLIENT, PATH, PROXY, plan, publish_route

S = SREGISTRY_SHIPPED


def pub(**kw) -> PublishSettings:
    return PublishSettings(**kw)


@pytest.mark.parametrize("kw,outside,host,loopback,hairpin", [
    ({}, "dnat", "dnat", PROXY, PROXY),                                   # Docker's defaults
    ({"userland_proxy": False}, "dnat", "dnat", "dnat", "dnat"),           # hairpin mode
    ({"iptables": False}, PROXY, PROXY, PROXY, PROXY),                     # docker-proxy carries everything
    ({"ip": "127.0.0.1"}, None, None, PROXY, None),
    ({"ip": "127.0.0.1", "userland_proxy": False}, None, None, "dnat", None),
    ({"ip": "eth0"}, "dnat", "dnat", None, PROXY),
])
def test_what_carries_each_arrival(kw, outside, host, loopback, hairpin):
    p = pub(**kw)
    assert [publish_route(a, p) for a in ("outside", "host", "loopback", "hairpin")] == [outside, host, loopback, hairpin]


def test_a_compute_nodes_pull_crosses_docker_proxy_only_with_iptables_off():
    assert PROXY not in PATH.programs_at("full path", S)
    assert PATH.programs_at("full path", S)[-1] == CLIENT
    assert PROXY in PATH.programs_at("VM loopback", S)
    off = S.changed(publish={"iptables": False})
    assert PROXY in PATH.programs_at("full path", off) and PROXY in PATH.programs_at("published port", off)
    stage = {s.name: s for s in PATH.carrying(S)}["published port"]
    assert stage.programs == ()
    assert {s.name: s for s in PATH.carrying(off)}["published port"].programs == (PROXY,)
    assert PATH.route_at("nginx", S) == "direct" and PATH.route_at("full path", S) == "dnat"


def test_the_loopback_vantage_dials_127_0_0_1_and_is_not_surveyed():
    pl = plan("t", namespaced=True)
    assert pl.endpoint(PATH.vantage("VM loopback"))[1:] == ("127.0.0.1", 80)
    assert pl.endpoint(PATH.vantage("published port"))[1] == PATH.node("vm").address
    assert "VM loopback" not in [v.name for v in PATH.vantages_for(S)]


def test_iptables_and_proxy_both_off_is_refused():
    with pytest.raises(SettingsError, match="publishes nothing"):
        S.changed(publish={"iptables": False, "userland_proxy": False})


def test_old_publish_mode_maps_to_daemon_json_keys_with_a_warning(tmp_path):
    f = tmp_path / "old.json"
    data = S.model_dump(mode="json")
    data["publish"] = {"mode": "dnat", "host_port": 8080}
    f.write_text(json.dumps(data))
    with pytest.warns(FutureWarning, match="publish.mode = 'dnat' is replaced"):
        s = load_settings(f)
    assert (s.publish.iptables, s.publish.userland_proxy, s.publish.host_port) == (True, False, 8080)
    with pytest.warns(FutureWarning, match="set publish.iptables = false"):
        assert parse_settings({"publish": {"mode": "userland-proxy"}}).publish == PublishSettings()
    with pytest.raises(SettingsError, match="publish.mode is replaced"):
        parse_settings({"publish": {"mode": "carrier-pigeon"}})


def test_rules_are_dockers():
    rules = [PublishedRule(80, "198.51.100.2", 80)]
    text = render_nat("t", "docker0", "198.51.100.0/24", rules, lab_accepts=[LabAccept("198.51.100.3", 5201, "hop")])
    lines = [x.strip() for x in text.splitlines()]
    for want in ("fib daddr type local counter jump docker",
                 "ip daddr != 127.0.0.0/8 fib daddr type local counter jump docker",
                 'iifname "docker0" return',
                 'iifname != "docker0" tcp dport 80 counter dnat to 198.51.100.2:80',
                 "type filter hook forward priority filter; policy drop;",
                 'oifname "docker0" ct state established,related counter accept',
                 'iifname != "docker0" oifname "docker0" ip daddr 198.51.100.2 tcp dport 80 counter accept',
                 'oifname != "docker0" ip saddr 198.51.100.0/24 masquerade'):
        assert want in lines, want
    assert any("servelab, not Docker" in x for x in lines)
    hp = render_nat("t", "docker0", "198.51.100.0/24", [PublishedRule(80, "198.51.100.2", 80, "127.0.0.1")], True)
    assert "fib daddr type local counter jump docker" in hp and "127.0.0.0/8" not in hp
    assert "ip daddr 127.0.0.1 tcp dport 80 counter dnat to 198.51.100.2:80" in hp
    assert 'oifname "docker0" fib saddr type local masquerade' in hp and 'iifname "docker0" return' not in hp


def test_counters_read_from_a_listing():
    listing = """
        iifname != "docker0" tcp dport 80 counter packets 7 bytes 420 dnat to 198.51.100.2:80
        iifname != "docker0" tcp dport 5202 counter packets 2 bytes 120 dnat to 198.51.100.2:5201
        oifname "docker0" ct state established,related counter packets 9000 bytes 1 accept
        iifname != "docker0" oifname "docker0" ip daddr 198.51.100.2 tcp dport 80 counter packets 7 bytes 420 accept
    """
    assert nat_counters(listing) == {"dnat": 9, "forward": 7}


def test_what_the_lab_runs_for_each_setting(tmp_path):
    site = Site(plan("t", namespaced=True), tmp_path, tmp_path, tmp_path)
    run = lambda st, p: publishing(st, st.plan.path.published, S.changed(publish=p.model_dump()))  # noqa: E731
    kinds = lambda p: [type(x).__name__ for x in run(site, p)]  # noqa: E731
    assert kinds(pub()) == ["DockerNat", "DockerProxy", "DockerProxy"]       # the rules first
    assert kinds(pub(userland_proxy=False)) == ["DockerNat"]
    assert kinds(pub(iptables=False)) == ["DockerProxy", "DockerProxy"]
    proxy = next(x for x in run(site, pub()) if isinstance(x, DockerProxy))
    assert proxy.argv()[proxy.argv().index("-host-ip") + 1] == "0.0.0.0"
    nat = next(x for x in run(site, pub()) if isinstance(x, DockerNat))
    assert [a.port for a in nat.lab_accepts] == [5201]            # the routed iperf3 hop to uwsgi
    assert nat.hairpin is False and next(x for x in run(site, pub(userland_proxy=False))).hairpin is True
    loop = Site(plan("t", namespaced=False), tmp_path, tmp_path, tmp_path)
    assert {type(x).__name__ for x in run(loop, pub())} == {"DockerProxy"}
    assert lab_accepts(site.plan, next(b for b in PATH.bridges if b.name == "docker0"))


def _import(tmp_path, daemon: str):
    (tmp_path / "daemon.json").write_text(daemon)
    return import_files(SregistryFiles.in_dir(tmp_path))


def test_daemon_json_iptables_false_imports_as_the_proxy_path(tmp_path):
    r = _import(tmp_path, '{\n  "iptables": false,\n  "ip": "0.0.0.0"\n}\n')
    s = r.settings
    assert (s.publish.iptables, s.publish.userland_proxy, s.publish.ip) == (False, True, "0.0.0.0")
    assert PROXY in PATH.programs_at("full path", s)
    e = {x.setting: x for x in r.entries if x.file == "daemon.json"}
    assert e["publish.iptables"].line == 2 and "docker-proxy carries every pull" in e["publish.iptables"].note


def test_daemon_json_defaults_and_ip(tmp_path):
    r = _import(tmp_path, '{"userland-proxy": false, "ip": "10.1.2.3"}')
    assert (r.settings.publish.userland_proxy, r.settings.publish.ip) == (False, "eth0")
    assert any("publish.iptables = true" in line and "Docker's default" in line for line in r.assumed)
    assert _import(tmp_path, '{"ip": "127.0.0.1"}').settings.publish.ip == "127.0.0.1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _import(tmp_path, '{}').settings.publish == PublishSettings()


def test_link_queue_books_bytes_one_after_another():
    from labkit.lab.conditions.bucket import LinkQueue
    now = [10.0]
    q = LinkQueue(1e6, clock=lambda: now[0])
    assert q.reserve(500_000) == pytest.approx(0.5)
    assert q.reserve(500_000) == pytest.approx(1.0)       # queued behind the first
    now[0] = 20.0
    assert q.reserve(1_000_000) == pytest.approx(1.0)     # the link was idle meanwhile


def test_shared_fs_ceiling_and_the_sizes_hypotheses_need():
    from labkit.analyze.hypotheses import HYPOTHESES, min_image_mib
    from labkit.lab.conditions.sharedfs import ceiling_MBps
    c = S.changed(client={"dest": "shared-fs", "fs_delay_ms": 8, "fs_request_kib": 128, "fs_node_mbps": 1000}).client
    assert ceiling_MBps(c) == pytest.approx(131072 / (0.008 + 131072 / 1e9) / 1e6)
    assert ceiling_MBps(c, streams=40) == pytest.approx(10 * ceiling_MBps(c))     # libfuse serves 10 at once
    narrow = c.model_copy(update={"fs_node_mbps": 20.0})
    assert ceiling_MBps(narrow, streams=8) == 20.0
    disk = S.changed(client={"dest": "local-disk", "write_mbps": 40, "dirty_mib": 8})
    assert min_image_mib(disk) == 32                                  # 4 x its 8 MiB of dirty pages
    assert min_image_mib(S.changed(client={"dest": "local-disk", "write_mbps": 40})) == 306   # 4 x 2 s at 40 MB/s
    assert min_image_mib(S) == 16
    assert all(h.min_image_mib >= 16 for h in HYPOTHESES)


def test_old_write_to_maps_to_dest():
    with pytest.warns(FutureWarning, match="client.write_to = 'disk' is replaced"):
        c = parse_settings({"client": {"write_to": "disk", "write_mbps": 30}}).client
    assert (c.dest, c.write_mbps) == ("local-disk", 30)
    with pytest.raises(SettingsError, match="needs dest = 'local-disk'"):
        parse_settings({"client": {"dest": "shared-fs", "write_mbps": 30}})


def test_singularity_26_client_command_and_its_pure_parts(tmp_path):
    from labkit.clients.kinds import KINDS
    from labkit.clients import singularity26_pull as sg
    argv = KINDS["singularity-2.6"]().argv({"host": "192.0.2.20", "port": "80", "uri": "a/b:c"})
    assert argv[1:4] == ["-m", "labkit.clients.singularity26_pull", "192.0.2.20:80"] and argv[-1] == "--http"
    tls = KINDS["singularity-2.6"]().argv({"host": "h", "port": "443", "uri": "a/b:c", "cacert": "/ca.pem"})
    assert "--http" not in tls and tls[-2:] == ["--cafile", "/ca.pem"]
    assert sg.pull_folder({"SINGULARITY_CACHEDIR": "/c", "SINGULARITY_PULLFOLDER": "/p"}, "/w").as_posix() == "/c"
    assert sg.pull_folder({"SINGULARITY_PULLFOLDER": "/p"}, "/w").as_posix() == "/p"
    assert sg.pull_folder({}, "/w").as_posix() == "/w"
    assert sg.split_uri("library/servelab:1b") == ("library", "servelab", "1b")
    assert sg.image_name({"name": "servelab", "tag": "1b", "collection": "library", "frozen": False}) == \
        "library-servelab-1b"
    assert sg.progress_line(1, 4, 8) == "\rProgress |==|-----|  25.0% "
    import gzip
    f = tmp_path / "img"
    f.write_bytes(gzip.compress(b"x" * 1000))
    assert sg.is_gzip(f) and sg.gunzip(f).read_bytes() == b"x" * 1000


def test_the_verdicts_view_keeps_the_publish_stage_under_dnat():
    import pandas as pd
    from labkit.analyze.evidence import path_view
    v = path_view(pd.DataFrame(columns=["kind", "point", "parallel"]), PATH, settings=S)
    assert "published port" not in [s.name for s in v.idle]
