"""The time-dilated model's machinery with known answers: a PullRun read back once (x k, never twice), the
timeouts rendered x k, the client's CPU load judged, the lab's cap kept, the shared fs verifying as bytes
arrive and keeping none."""
import hashlib
import os
from dataclasses import replace

import pandas as pd
import pytest

from labkit.bundle.export import DEPLOY_NGINX, DEPLOY_UWSGI
from labkit.clients.streamed import Streamed
from labkit.config.dilation import ClientLoad, Host, client_cap, dilate, row_to_real_time
from labkit.config.overrides import apply_overrides
from labkit.config.presets import preset
from labkit.config.render import render_nginx, render_nginx_server, render_uwsgi
from labkit.config.settings import LabSettings
from labkit.errors import SettingsError
from labkit.lab.conditions.cpu_emulation import core_cpus
from labkit.lab.conditions.delayfs import DiscardPassthrough
from labkit.lab.conditions.machine import ScaleModel
from labkit.lab.conditions.speed_meter import Meter
from labkit.lab.conditions.streamdigest import StreamDigest
from labkit.lab.host.cgroups import cfs_quota_us, parse_quota, parse_throttling
from labkit.measure.dilated import read_back
from labkit.measure.pull_at import PullRun, spread_counts
from labkit.measure.survey import summarize_runs
from labkit.path import registry_path
from labkit.records import PullResult
from labkit.units import KiB, MiB

HOST = Host(cores=2, ratio=2.5)


# --- every timeout x k, rendered --------------------------------------------------------------------------------
def _rendered(k: float) -> dict[str, str]:
    s = apply_overrides(preset("sregistry-2018-10-https"), ["uwsgi.harakiri=20", f"machine.dilation={k:g}"])
    run = dilate(s, HOST).settings
    tls = replace(DEPLOY_NGINX, listen_tls="*:443", tls_certificate="/etc/ssl/certs/x.crt",
                  tls_certificate_key="/etc/ssl/private/x.key", tls_dhparam="/etc/ssl/certs/dhparam.pem")
    return {"main": render_nginx(run, tls), "server": render_nginx_server(run, tls),
            "uwsgi": render_uwsgi(run, DEPLOY_UWSGI)}


def test_the_rendered_configs_carry_every_timeout_at_k1_and_x4_at_k4():
    one, four = _rendered(1), _rendered(4)
    assert "keepalive_timeout 65;" in one["main"] and "keepalive_timeout 260;" in four["main"]
    for name in ("send_timeout", "uwsgi_read_timeout", "uwsgi_send_timeout", "uwsgi_connect_timeout"):
        assert f"{name} " not in one["server"], name                  # nginx's 60 s default, not written
        assert f"{name} 240" in four["server"], name                  # 60 s x 4, written
    assert "client_body_timeout 120;" in one["server"] and "client_body_timeout 480;" in four["server"]   # sregistry's
    assert "ssl_session_timeout 5m;" in one["server"] and "ssl_session_timeout 1200s;" in four["server"]
    for line in ("harakiri = 20", "socket-timeout = 120", "http-timeout = 3600000"):
        assert line in one["uwsgi"], line
    for line in ("harakiri = 80", "socket-timeout = 480", "http-timeout = 14400000"):
        assert line in four["uwsgi"], line


def test_the_labs_own_deadline_and_the_clients_timeout_are_stretched_in_one_place(tmp_path):
    model = ScaleModel(LabSettings().changed(machine={"dilation": 4}), Meter())
    assert model.k == 4 and model.time(300) == 1200 and model.time(30) == 120
    assert ScaleModel(LabSettings(), Meter()).time(300) == 300


# --- a PullRun read back once -----------------------------------------------------------------------------------
def _result(mb: float, seconds: float, start: float = 0.0, cpu_s: float = 0.5) -> PullResult:
    return PullResult(ok=True, bytes=int(mb * 1e6), seconds=seconds, ttfb_ms=40.0, sha256_ok=True, start=start,
                      end=start + seconds, cpu_s=cpu_s, check="sha256")


def _run(k: float, **kw) -> PullRun:
    return PullRun("full path", 2, [_result(100, 10.0), _result(100, 8.0, 1.0)], "sha256", busiest="nginx",
                   busiest_cpu=40.0, path=registry_path(), cpu_s={"nginx": 4.0}, softirq_s=1.0, k=k, **kw)


def test_a_pull_run_reports_real_time_and_says_k():
    raw, run = _run(1), _run(4)
    assert raw.measured_mbps == run.measured_mbps == pytest.approx(20.0)       # 200 MB over 10 s
    assert run.mbps == pytest.approx(80.0) and raw.mbps == pytest.approx(20.0)
    r1, r4 = raw.row(), run.row()
    assert (r1["k"], r4["k"]) == (1, 4)
    assert r4["MBps"] == pytest.approx(4 * r1["MBps"]) and r4["per_pull_min"] == pytest.approx(40.0)
    assert r4["ttfb_ms"] == pytest.approx(10.0) and r4["busiest_cpu"] == pytest.approx(160.0)
    assert r4["cpu_s_per_GB_nginx"] == r1["cpu_s_per_GB_nginx"] and r4["failures"] == 0
    assert r4["kernel_share"] == r1["kernel_share"] == pytest.approx(1.0 / 6.0, abs=1e-3)   # 1 of 1 + 4 + 0.5 + 0.5
    assert any(n.startswith("time dilation k = 4") for n in run.notes()) and raw.notes() == []
    assert any("not dilated: the kernel's softirq work at full path x2" in n for n in run.notes())


def test_a_survey_reads_its_runs_back_once():
    row, _ = summarize_runs([_run(4), _run(4), _run(4)])
    assert row["MBps"] == pytest.approx(20.0)                                  # as measured
    table, notes = read_back(pd.DataFrame([{"kind": "pull", **row}]), 4, registry_path())
    assert table.MBps.iloc[0] == pytest.approx(_run(4).mbps) == pytest.approx(80.0)   # x k once, not x 16
    assert (table.k == 4).all() and notes


def test_a_row_without_a_rule_is_refused_by_name():
    assert row_to_real_time({"MBps": 10.0, "point": "x", "ok": True}, 2) == {"MBps": 20.0, "point": "x", "ok": True,
                                                                             "k": 2}
    with pytest.raises(SettingsError, match="mystery"):
        row_to_real_time({"mystery": 1.0}, 2)


def test_a_client_near_its_cap_binds_and_says_so():
    s = LabSettings().changed(machine={"dilation": 4})
    assert client_cap(s) == 0.25
    busy = ClientLoad("compute1", 0.25, cpu_s=2.3, span_s=10.0, periods=100, throttled=80)
    idle = ClientLoad("compute2", 0.25, cpu_s=0.5, span_s=10.0, periods=100, throttled=0)
    assert busy.binds and busy.use == pytest.approx(0.92) and busy.throttled_share == 0.8
    assert not idle.binds and idle.use == pytest.approx(0.2)
    assert busy.note().startswith("client binds: the clients on compute1 used 92%")
    run = _run(4, clients=[idle, busy])
    assert run.client_binds and run.row()["client_cap_use"] == pytest.approx(0.92) and run.row()["client_binds"]
    assert run.row()["client_cap"] == 0.25 and any(n.startswith("client binds") for n in run.notes())
    assert _run(4).row()["client_binds"] is None                               # no group: nothing to judge


def test_pulls_spread_round_robin_over_compute_nodes():
    assert spread_counts(40, 8) == [5] * 8 and spread_counts(5, 3) == [2, 2, 1] and spread_counts(1, 1) == [1]


# --- the lab's CPU cap kept ---------------------------------------------------------------------------------------
def test_an_emulated_cores_quota_never_exceeds_the_labs_cap():
    cap = 1 / 2.596 / 2                                              # 0.19260 cores: quota 19260 us
    assert round(max(0.01, 1 / 2.596 / 2), 3) == 0.193               # rounded up past the cap: v1 says EINVAL
    cpus = core_cpus(1, 2, 2.596, 2, cap)
    assert cfs_quota_us(cpus, 2) <= cfs_quota_us(cap, 2)
    assert core_cpus(1, 2, 2.5, 2, None) == 0.2 and core_cpus(4, 2, 2.5, 1, 0.8) == 0.8


def test_quota_and_throttling_files_read():
    assert parse_quota("19260\n") and not parse_quota("-1\n")
    assert parse_quota("19260 100000\n") and not parse_quota("max 100000\n") and not parse_quota("")
    assert parse_throttling("nr_periods 120\nnr_throttled 30\nthrottled_time 900\n") == (120, 30)
    assert parse_throttling("usage_usec 5\nnr_periods 7\nnr_throttled 0\nthrottled_usec 0\n") == (7, 0)


# --- the shared fs: verified as bytes arrive, none kept -------------------------------------------------------------
def test_a_stream_digest_in_order_with_a_gap_and_broken():
    data = os.urandom(300 * KiB)
    d = StreamDigest()
    d.add(0, data[:100 * KiB])
    d.add(200 * KiB, data[200 * KiB:])                                # ahead of a gap: held
    assert not d.value().whole and d.value().bytes == 100 * KiB
    d.add(100 * KiB, data[100 * KiB:200 * KiB])
    assert d.value() == Streamed(hashlib.sha256(data).hexdigest(), len(data), True)
    d.add(0, b"x")                                                     # a rewrite of hashed bytes
    assert not d.value().whole
    small = StreamDigest(hold=KiB)
    small.add(10 * KiB, b"y" * (2 * KiB))
    assert small.broken and not small.value().whole


def test_the_discarding_fs_keeps_no_byte_and_answers_the_digest_through_renames(tmp_path):
    fs = DiscardPassthrough(tmp_path, delay_ms=0)
    data = os.urandom(3 * MiB)
    fh = fs.create("/img.tmp", 0o644, os.O_WRONLY)
    for off in range(0, len(data), 128 * KiB):
        assert fs.write("/img.tmp", data[off:off + 128 * KiB], off, fh) == 128 * KiB
    fs.release("/img.tmp", fh)
    fs.rename("/img.tmp", "/img.simg")
    st = os.stat(tmp_path / "img.simg")
    assert st.st_size == len(data) and st.st_blocks * 512 < 64 * KiB     # its length, no stored bytes
    got = Streamed.decode(fs.getxattr("/img.simg", "user.servelab.sha256"))
    assert got.matches(hashlib.sha256(data).hexdigest(), len(data))
    assert not got.matches(hashlib.sha256(data).hexdigest(), len(data) + 1)
    with pytest.raises(OSError):
        fs.getxattr("/img.simg", "security.capability")
    fs.unlink("/img.simg")
    assert fs.sums == {}
