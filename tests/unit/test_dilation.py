"""The time-dilation plan with known answers: k = 1 is the identity, k = 2 halves every rate and doubles
every timeout, a machine too small is refused with the k that would fit, and tables are read back."""
import math
from pathlib import Path

import pandas as pd
import pytest

from labkit.config import dilation
from labkit.config.dilation import (Host, clients_fit, dilate, kernel_understatement, machine_problems,
                                    to_real_time)
from labkit.config.overrides import apply_overrides
from labkit.config.presets import preset
from labkit.config.render import lab_nginx_paths, render_nginx_server
from labkit.config.settings import LabSettings, MachineSettings, parse_settings
from labkit.errors import SettingsError

HOST = Host(cores=2, ratio=2.5)


def shaped(*extra):
    """A case that sets every rate, delay and timeout the rules name."""
    return apply_overrides(preset("sregistry-2018-10-https"), [
        "links.wan=6gbit", "storage.disk=loop", "storage.read_mbps=100", "storage.write_mbps=40",
        "storage.read_iops=1000", "storage.latency_ms=2", "client.dest=shared-fs", "client.fs_delay_ms=2",
        "client.fs_node_mbps=40", "cpu.nginx_cpus=1.5", "cpu.uwsgi_cpuset=0", "uwsgi.harakiri=20", *extra])


def test_k1_is_the_identity():
    s = shaped()
    plan = dilate(s, HOST)
    assert plan.settings == s and plan.changed == {} and plan.k == 1 and plan.time(900) == 900
    assert plan.core_share == pytest.approx(0.4) and plan.server_cores is None


def test_k2_halves_every_rate_and_doubles_every_timeout():
    s = shaped("machine.dilation=2")
    d = dilate(s, HOST).settings
    assert d.links.rate("wan") == "3000mbit"
    assert (d.storage.read_mbps, d.storage.write_mbps, d.storage.read_iops) == (50, 20, 500)
    assert d.storage.latency_ms == 4 and d.client.fs_delay_ms == 4 and d.client.fs_node_mbps == 20
    assert d.cpu.cpus("nginx") == 0.75 and d.cpu.cpuset("uwsgi") == "0"
    n, u = d.nginx, d.uwsgi
    assert (n.keepalive_timeout, n.client_body_timeout, n.send_timeout, n.uwsgi_read_timeout,
            n.uwsgi_send_timeout, n.uwsgi_connect_timeout) == (130, 240, 120, 120, 120, 120)
    assert (u.harakiri, u.socket_timeout, u.http_timeout) == (40, 240, 7200000)
    assert d.tls.session_timeout == "600s"
    # sizes and counts kept: a link's bandwidth-delay product is unchanged
    assert (n.worker_processes, u.processes, u.threads, n.uwsgi_buffers, d.kernel) == \
        (s.nginx.worker_processes, s.uwsgi.processes, s.uwsgi.threads, s.nginx.uwsgi_buffers, s.kernel)
    assert dilate(s, HOST).time(900) == 1800


def test_off_stays_off_and_a_default_dirty_bound_is_kept_at_k1s():
    s = apply_overrides(preset("sregistry-2018-early"), ["storage.disk=loop", "storage.write_mbps=40",
                                                        "machine.dilation=4"])
    d = dilate(s, HOST).settings
    assert d.uwsgi.harakiri == 0 and d.uwsgi.http_timeout is None and d.uwsgi.socket_timeout == 16
    assert d.storage.write_mbps == 10 and d.storage.dirty_mib == 76      # 2 s at 40 MB/s (80 MB), not at 10


def test_every_field_has_a_rule_or_is_kept_with_a_reason():
    for group, model in LabSettings.model_fields.items():
        fields = set(model.annotation.model_fields)
        named = {f for f in dilation.RULES.get(group, {}) if "*" not in f}
        assert group in dilation.KEPT or fields <= named, group
        for f in named:
            assert f in fields, f"{group}.{f}"


def test_the_timeouts_reach_nginx_only_when_changed():
    paths = lab_nginx_paths(Path("/run/x"), "127.0.0.1:80", "127.0.0.1:3031", Path("/srv/images"))
    plain = render_nginx_server(preset("sregistry-2018-10"), paths)
    assert "uwsgi_read_timeout" not in plain and "send_timeout" not in plain
    stretched = render_nginx_server(dilate(preset("sregistry-2018-10").changed(machine={"dilation": 3}), HOST).settings,
                                    paths)
    assert "uwsgi_read_timeout 180s;" in stretched and "send_timeout 180s;" in stretched


@pytest.mark.parametrize("value, words", [({"dilation": 0.5}, "dilation: k = 0.5 is below 1"),
                                          ({"dilation": 17}, "dilation: k = 17 is above 16"),
                                          ({"vcpus": 0}, "vcpus: 0 emulated cores: give 1..256")])
def test_bad_machine_values_are_refused_by_name(value, words):
    with pytest.raises(SettingsError, match=rf"^machine\.{words}"):
        parse_settings({"machine": value})
    assert MachineSettings().vcpus is None and MachineSettings().dilation == 1


def test_a_machine_too_large_is_refused_with_the_k_that_fits():
    # 8 Opteron cores at 1/2.5 of a core each = 3.2 cores; the server may take 75% of 2 = 1.5
    s = preset("seed-poster-https").changed(machine={"vcpus": 8, "dilation": 2})
    with pytest.raises(SettingsError, match=r"need 1.60 cores at k = 2.*at least 2.14"):
        dilate(s, HOST)
    assert machine_problems(8, 2.14, HOST) == [] and machine_problems(8, 2.13, HOST)
    plan = dilate(s.changed(machine={"dilation": 2.5}), HOST)
    assert plan.server_cores == pytest.approx(8 / 2.5 / 2.5) and plan.core_share == pytest.approx(0.16)
    assert machine_problems(None, 1, HOST) == []
    with pytest.raises(SettingsError):
        Host(cores=2, ratio=0.5)


def test_clients_say_when_they_may_bind():
    plan = dilate(preset("seed-poster-https").changed(machine={"vcpus": 8, "dilation": 4}), HOST)
    assert plan.server_cores == pytest.approx(0.8) and plan.client_node_cores == 0.25
    assert clients_fit(plan, HOST, 4) == ""
    assert "may bind" in clients_fit(plan, HOST, 8)


def test_a_table_read_back_into_real_time():
    t = pd.DataFrame({"parallel": [1, 40], "MBps": [8.0, 60.0], "seconds": [200.0, 1000.0], "ttfb_ms": [40.0, 80.0],
                      "cpu_s_per_GB_nginx": [14.0, 14.0], "failures": [0, 2], "busiest_pct": [25.0, 50.0],
                      "busiest": ["nginx", "nginx"]})
    with pytest.raises(SettingsError, match="busiest_pct"):      # a CPU share: of which cores? say it
        to_real_time(t, 4)
    r = to_real_time(t, 4, rules={"busiest_pct": "rate"})
    assert r.MBps.tolist() == [32.0, 240.0] and r.seconds.tolist() == [50.0, 250.0] and r.ttfb_ms.tolist() == [10, 20]
    assert r.cpu_s_per_GB_nginx.tolist() == [14, 14] and r.failures.tolist() == [0, 2] and r.parallel.tolist() == [1, 40]
    assert r.busiest_pct.tolist() == [100.0, 200.0] and (r.k == 4).all()
    assert to_real_time(t, 1, rules={"busiest_pct": "keep"}).drop(columns="k").equals(t)
    with pytest.raises(SettingsError, match="mystery"):
        to_real_time(t.assign(mystery=1.0), 2, rules={"busiest_pct": "keep"})
    assert to_real_time(t.assign(mystery=1.0), 2, rules={"mystery": "keep", "busiest_pct": "keep"}
                        ).mystery.tolist() == [1.0, 1.0]
    assert dilation.column_rule("spread_pct") == "keep" and dilation.column_rule("per_pull_min") == "rate"


def test_the_kernels_share_is_what_the_model_leaves_out():
    # softirq 1.6 s/GB here; the seed's slow cores paid 2.5x that; the dilated run pays it / k
    assert kernel_understatement(0, 35.0, 2.5, 4) == 0
    assert kernel_understatement(1.6, 35.0, 2.5, 1) == pytest.approx((4.0 - 1.6) / 39.0)
    assert kernel_understatement(1.6, 35.0, 2.5, 4) == pytest.approx((4.0 - 0.4) / 39.0)
    assert math.isclose(kernel_understatement(1.0, 0.0, 1.0, 1.0), 0.0)
    assert any(what == "kernel CPU" for what, _ in dilation.NOT_DILATED)
