"""The layers' pure parts: client command lines, the compose override with CPU limits, the disk
stages and their columns, CPU limits from settings, the write ceiling's dirty bound, what a lab owns."""
from __future__ import annotations

import pytest
import yaml

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.config.render import templates
from labkit.errors import SettingsError
from labkit.lab.conditions import cpu_limits, storage, writeback
from labkit.lab.host import ownership
from labkit.lab.host.cgroups import Features, IoCounters, IoLimits
from labkit.clients import program
from labkit.clients.command import render_command
from labkit.clients.kinds import KINDS
from labkit.records import PullResult
from labkit.measure.pull_at import PullRun
from labkit.path import PATH

MiB = 2**20
VALUES = {"host": "192.0.2.20", "port": "80", "uri": "library/servelab:1b", "url": "http://192.0.2.20/containers/1/download/s",
          "dest": "/run/x/a b/image.sif"}


def test_a_command_template_becomes_argv_with_each_value_one_word():
    argv = render_command("singularity pull {dest} shub://{host}:{port}/{uri}", VALUES)
    assert argv == ["singularity", "pull", "/run/x/a b/image.sif", "shub://192.0.2.20:80/library/servelab:1b"]
    assert render_command("sh -c 'curl -o \"$0\" \"$1\"' {dest} {url}", VALUES)[3:] == \
        ["/run/x/a b/image.sif", VALUES["url"]]


@pytest.mark.parametrize("template,message", [
    ("wget {link}", r"client\.command: 'wget \{link\}' uses \{link\}; a template may use \{host\}"),
    ("curl 'x", "client.command: .*No closing quotation"),
    ("x {", "client.command: .*Single '{'"),
])
def test_a_bad_template_is_refused_naming_the_setting(template, message):
    with pytest.raises(SettingsError, match=message):
        render_command(template, VALUES)
    with pytest.raises(SettingsError, match="client: command: "):
        SREGISTRY_SHIPPED.changed(client={"kind": "command", "command": template})


def test_curl_and_sregistry_cli_command_lines_and_environment(tmp_path):
    curl = KINDS["curl"]().argv(VALUES)
    assert curl[0] == "curl" and curl[1:] == ["-sS", "-f", "-L", "--max-redirs", "5", "--proto-redir", "=http,https", "-o", VALUES["dest"], VALUES["url"]]
    sreg = KINDS["sregistry-cli"]().argv(VALUES)
    assert sreg[0] == "sregistry" and sreg[1:] == ["pull", "library/servelab:1b"]
    env = KINDS["sregistry-cli"]().env(VALUES, tmp_path, tmp_path / "s.json")
    assert (env["SREGISTRY_CLIENT"], env["SREGISTRY_REGISTRY_BASE"], env["SREGISTRY_CLIENT_SECRETS"],
            env["SREGISTRY_TMPDIR"]) == ("registry", "http://192.0.2.20:80", str(tmp_path / "s.json"), str(tmp_path))
    assert "SREGISTRY_CLIENT" not in KINDS["curl"]().env(VALUES, tmp_path, tmp_path / "s.json")


def test_the_written_file_is_dest_or_else_the_largest_file(tmp_path):
    assert program.written_file(tmp_path) is None
    (tmp_path / "small").write_bytes(b"x")
    (tmp_path / "library-servelab:1b.sif").write_bytes(b"xyz")
    assert program.written_file(tmp_path).name == "library-servelab:1b.sif"
    (tmp_path / program.DEST).write_bytes(b"")
    assert program.written_file(tmp_path).name == program.DEST


def test_pulls_that_would_not_fit_are_refused_before_they_start(tmp_path):
    with pytest.raises(Exception, match="need .* bytes at .* fewer parallel pulls"):
        program.check_room(tmp_path, 4, 1 << 60)


def test_compose_override_carries_cpus_and_cpuset_per_service():
    s = SREGISTRY_SHIPPED.changed(cpu={"uwsgi_cpus": 0.25, "uwsgi_cpuset": "1", "nginx_cpus": 1.5, "proxy_cpus": 0.5})
    text = templates().get_template("compose-override.yml.j2").render(nofile=65536, sysctls={}, cpu=s.cpu)
    svc = yaml.safe_load(text)["services"]
    assert (svc["uwsgi"]["cpus"], svc["uwsgi"]["cpuset"], svc["nginx"]["cpus"]) == (0.25, "1", 1.5)
    assert "cpuset" not in svc["nginx"] and "docker-proxy is dockerd's child" in text
    plain = yaml.safe_load(templates().get_template("compose-override.yml.j2").render(
        nofile=65536, sysctls={}, cpu=SREGISTRY_SHIPPED.cpu))["services"]
    assert "cpus" not in plain["nginx"] and "cpus" not in plain["uwsgi"]


def test_cpu_limits_from_settings_and_what_a_machine_without_them_says():
    s = SREGISTRY_SHIPPED.changed(cpu={"uwsgi_cpus": 0.25, "nginx_cpuset": "0"}).cpu
    members = PATH.cpu_keys                     # keyed by the path's names
    assert members == ("uwsgi", "nginx", "proxy")
    lims = cpu_limits.limits(s, members)
    assert lims["uwsgi"] == cpu_limits.CpuLimit(0.25, None) and lims["nginx"].limited and not lims["proxy"].limited
    none = Features(None, missing=["no cgroup file system is mounted: no CPU or block I/O limits"])
    assert cpu_limits.missing_features(s, none, members) == [
        "cpu.uwsgi_cpus not applied: no cgroup file system is mounted: no CPU or block I/O limits",
        "cpu.nginx_cpuset not applied: no cgroup file system is mounted: no CPU or block I/O limits"]
    assert cpu_limits.missing_features(s, Features(1, cpu_quota=True, cpuset=True), members) == []


def test_storage_sizes_and_limits_from_settings():
    assert storage.disk_size(64 * MiB) == (64 + 40 * 64 + 256) * MiB and storage.disk_size(1) % 4096 == 0
    assert storage.disk_size(1536 * MiB) == 1536 * MiB + storage.MAX_ROOM + 256 * MiB   # 8 GiB of temp files at most
    s = SREGISTRY_SHIPPED.changed(storage={"disk": "loop", "read_mbps": 40, "write_iops": 100}).storage
    assert storage.io_limits(s) == IoLimits(read_bps=40_000_000, write_iops=100)


def test_the_dirty_bound_is_two_seconds_at_the_write_ceiling():
    assert writeback.dirty_cap(IoLimits(write_bps=30_000_000)) == 60_000_000
    assert writeback.dirty_cap(IoLimits(write_bps=1_000_000)) == 8 * MiB
    assert writeback.dirty_cap(IoLimits(write_iops=10)) == 16 * MiB
    assert writeback.writes_limited(IoLimits(write_iops=10)) and not writeback.writes_limited(IoLimits(read_bps=5))


def test_disk_stages_are_declared_with_columns_and_idle_modes():
    s = SREGISTRY_SHIPPED
    assert [d.name for d in PATH.disk_stages] == ["image read", "temp spooling", "client write"]
    assert [d.name for d in PATH.disk_stages if d.carries(s)] == ["image read", "temp spooling"]
    assert not PATH.disk_stage("temp spooling").carries(s.changed(app={"serve_mode": "accel"}))
    assert not PATH.disk_stage("temp spooling").carries(s.changed(nginx={"uwsgi_buffering": False}))
    assert PATH.disk_stage("client write").carries(s.changed(client={"dest": "local-disk"}))


def test_a_pull_row_carries_the_disk_stages_columns():
    r = PullResult(True, 100, 1.0, 1.0, True, start=0, end=1)
    run = PullRun("full path", 1, [r], "sha256", client="curl",
                  disk={"vm": IoCounters(bytes_read=67_108_864, bytes_written=2_000_000)}, path=PATH)
    row = run.row()
    assert (row["client"], row["disk_read_MB"], row["disk_write_MB"], row["client_write_MB"]) == ("curl", 67.1, 2.0, None)


def test_what_a_lab_owns_is_recorded_and_ended_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(ownership, "STATE_DIR", tmp_path)
    ended = []
    monkeypatch.setattr(ownership, "_enders", lambda: {k: (lambda rec, k=k: ended.append((k, rec["n"])) or [f"{k}"])
                                                      for k in ownership.ORDER})
    ownership.write("ly-own", pids={})
    for n, kind in enumerate(["loopdisk", "cgroups", "writeback", "delaymount", "loopdisk"]):
        ownership.own("ly-own", f"k{n}", kind, {"n": n})
    ownership.own("ly-own", "k0", "loopdisk", {"n": 10})      # the same key again: replaced, not added
    ownership.disown("ly-own", "k4")
    done = ownership.end_owned(ownership.read("ly-own"))
    assert ended == [("cgroups", 1), ("delaymount", 3), ("writeback", 2), ("loopdisk", 10)]
    assert done == ["cgroups", "delaymount", "writeback", "loopdisk"]


def test_a_resource_that_cannot_be_ended_does_not_keep_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(ownership, "STATE_DIR", tmp_path)

    def stuck(rec):
        raise OSError("device busy")
    monkeypatch.setattr(ownership, "_enders", lambda: {"loopdisk": stuck, "dir": lambda rec: ["rm"],
                                                      **{k: stuck for k in ("cgroups", "delaymount", "writeback")}})
    ownership.own("ly-own2", "a", "loopdisk", {})
    ownership.own("ly-own2", "b", "dir", {})
    done = ownership.end_owned(ownership.read("ly-own2"))
    assert done == ["FAILED to end loopdisk a: device busy", "rm"]


def test_the_verdict_cites_the_disk_stages_counted_at_the_client():
    import pandas as pd
    from labkit.analyze.verdict import disk_evidence, verdict
    point = PATH.client_vantage.name
    rows = [{"kind": "iperf3", "point": "compute→vm", "parallel": 1, "MBps": 2000.0, "failures": 0},
            {"kind": "pull", "point": point, "parallel": 1, "MBps": 40.0, "failures": 0, "busiest": "uwsgi",
             "busiest_cpu": 5.0, "disk_read_MB": 67.1, "disk_write_MB": 0.0, "client_write_MB": None},
            {"kind": "pull", "point": point, "parallel": 5, "MBps": 41.0, "failures": 0, "busiest": "uwsgi",
             "busiest_cpu": 5.0, "disk_read_MB": 335.5, "disk_write_MB": 0.0, "client_write_MB": None}]
    ev = disk_evidence(pd.DataFrame(rows), PATH)
    assert ev[0].startswith("image read, reading the image from the VM's disk") and "67 MB with 1 pull(s), 336 MB with 5" in ev[0]
    assert len(ev) == 2 and ev[1].startswith("temp spooling")
    assert ev[0] in verdict(pd.DataFrame(rows), path=PATH).evidence
    assert disk_evidence(pd.DataFrame(rows).drop(columns=["disk_read_MB", "disk_write_MB", "client_write_MB"]), PATH) == []


def test_a_warm_cache_on_the_labs_own_disk_reads_the_image_once_and_a_cold_one_or_the_host_disk_not(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from labkit.config.settings import StorageSettings
    from labkit.lab.conditions.base import Ground
    from labkit.lab.conditions.storage import VmStorage
    from labkit.app.catalog import Image
    st = VmStorage(Ground("t", tmp_path, tmp_path / "cache", False, []))
    st.images_dir.mkdir(parents=True)
    (st.images_dir / "img.sif").write_bytes(b"x" * (3 * 2**20 + 5))
    st.image = Image(1, "c", "n", "t", "img.sif", 3 * 2**20 + 5, "0" * 64, "s", "2018-10-01")
    read = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: read.append(p) or real_open(p, *a, **k))
    assert not st.warm() and not read                        # the host's disk: not the lab's to warm
    st.disk = SimpleNamespace()
    st.settings = StorageSettings(disk="loop", cache="cold")
    assert not st.warm() and not read                        # cold: before_pull drops it instead
    st.settings = StorageSettings(disk="loop", cache="warm")
    assert st.warm() and read == [st.images_dir / "img.sif"]
