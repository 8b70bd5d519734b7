"""The lab's measurements on the OCI path (issue 27 item 3): distribution behind nginx with TLS, published by Docker's
NAT, pulled with labkit's own OCI client (kind `oci`) at every vantage point, surveyed and judged, captured, changed
live from the tuning panel, swept over an nginx knob, its remedies tried, its bundle checked by nginx -t and by the
registry itself; a client kind that does not speak /v2/ refused before anything starts.

Kept short: a 32 MiB image (3 layers: 2 + 2 + 28 MiB), 2 pulls at once.
"""
from __future__ import annotations

import hashlib
import shutil

import pytest
import yaml

from labkit.analyze.remedies import PROXY_NO_BUFFERING
from labkit.analyze.tcpflow import analyze
from labkit.analyze.verdict import verdict
from labkit.analyze.words import verdict_text
from labkit.config.presets import PRESETS
from labkit.config.settings import SettingsError
from labkit.errors import ConfigRejected
from labkit.experiments.bundles import check_bundle, export_bundle
from labkit.experiments.survey import fix
from labkit.experiments.tuning import TuningPanel
from labkit.lab.host import netns
from labkit.lab.lab import Lab
from labkit.measure.capture import capture_pull
from labkit.clients.kinds import KINDS
from labkit.measure.pull_at import lab_target, pull_at
from labkit.measure.survey import run_survey
from labkit.measure.sweep import one_at_a_time
from labkit.units import MiB
from tests.integration.labs import module_lab

pytestmark = pytest.mark.integration
NAME = "ocipath"
SETTINGS = PRESETS["distribution-2.8"]
IMAGE = 32 * MiB
SPOOLED = "an upstream response is buffered to a temporary file"


@pytest.fixture(scope="module")
def lab():
    yield from module_lab(NAME, SETTINGS, IMAGE)


@pytest.fixture
def as_it_was(lab):
    """Every test starts from the preset and leaves the lab at it."""
    if lab.settings != SETTINGS:
        lab.apply(SETTINGS)
    yield lab
    if lab.settings != SETTINGS:
        lab.apply(SETTINGS)


def registry_blob(lab, digest: str):
    """A blob's data file under the registry's filesystem driver root (docker/registry/v2/blobs/sha256/xx/<hex>/data)."""
    hexd = digest.split(":", 1)[1]
    return lab.services["registry"].root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def test_pull_at_every_vantage_point_pulls_the_oci_image_verified_by_digest(as_it_was):
    lab = as_it_was
    img = lab.services["registry"].image
    names = [v.name for v in lab.path.vantages_for(lab.settings)]
    assert names == ["registry", "nginx", "nginx (tls)", "published port", "full path"]
    for name in names:
        run = pull_at(lab, name, 2)
        assert run.client == "oci" and run.ok, (name, run.errors)
        assert all(r.sha256_ok and r.check == "sha256" and r.bytes == img.size for r in run.results), name
        assert run.row()["MBps"] > 0 and run.row()["ttfb_ms"] > 0 and run.row()["client_cpu"] > 0
    tls = pull_at(lab, "full path").results[0].tls
    assert tls.startswith("TLSv1.2")                     # the published port is nginx's TLS server


def test_a_live_move_onto_a_cold_loop_disk_restocks_the_registry_and_reads_its_blobs_from_it(as_it_was):
    lab = as_it_was
    lab.apply(lab.settings.changed(storage={"disk": "loop", "cache": "cold"}))
    reg = lab.services["registry"]
    assert reg.holds(reg.image) and str(reg.root).startswith(str(lab.run_dir))      # on the lab's own disk now
    run = pull_at(lab, "full path")
    assert run.ok and run.results[0].sha256_ok
    assert run.row()["disk_read_MB"] >= reg.image.size / 1e6      # every blob read from the cold device


def test_a_layer_changed_on_the_registrys_disk_fails_the_pull_naming_it(as_it_was):
    """On the lab's own loop disk (never the image cache other labs share); the disk goes with the settings."""
    lab = as_it_was
    lab.apply(lab.settings.changed(storage={"disk": "loop"}))
    small = lab.services["registry"].image.layer_digests[0]
    data = registry_blob(lab, small)
    assert str(data.resolve()).startswith(str(lab.run_dir))
    bad = bytearray(data.read_bytes())
    bad[len(bad) // 2] ^= 0xFF
    data.write_bytes(bytes(bad))
    run = pull_at(lab, "full path")
    assert not run.ok and run.results[0].sha256_ok is False
    assert run.results[0].error.startswith(f"layer {small[:19]}")
    assert pull_at(lab, "nginx").failures == 1             # the same blob, whichever vantage point asks


def test_the_client_writes_each_layer_to_its_destination_when_dest_says_so(as_it_was, tmp_path):
    lab = as_it_was
    img = lab.services["registry"].image
    t = lab_target(lab, lab.path.client_vantage)
    r = KINDS["oci"]().one(t, "sha256", 30, 60, None, None, tmp_path / "pull")      # one pull, its files kept
    assert r.ok and sorted(p.name for p in (tmp_path / "pull").iterdir()) == sorted(
        d.replace(":", "-") for d in img.layer_digests)
    for d in img.layer_digests:                     # what reached the file is what the digest names
        assert "sha256:" + hashlib.sha256((tmp_path / "pull" / d.replace(":", "-")).read_bytes()).hexdigest() == d
    lab.apply(lab.settings.changed(client={"dest": "local-disk"}))
    run = pull_at(lab, "full path", 2)
    assert run.ok and all(x.sha256_ok for x in run.results) and run.client == "oci"
    assert not list(lab.client.dest_root().iterdir())                # the pulls' files removed after them


def test_the_survey_has_a_row_per_vantage_point_and_its_verdict_names_this_paths_programs(as_it_was):
    lab = as_it_was
    s = run_survey(lab, parallel=2, iperf_seconds=1, repeats=3, progress=False)
    pulls = s.table[s.table.kind == "pull"]
    assert set(pulls.point) == {"registry", "nginx", "nginx (tls)", "published port", "full path"}
    assert len(pulls) == 10 and (pulls.failures == 0).all() and pulls.sha256_ok.all() and (pulls.client == "oci").all()
    assert set(s.table[s.table.kind == "iperf3"].point) >= {"nginx→registry", "vm→nginx", "compute→vm"}
    assert s.meta["image_bytes"] == lab.services["registry"].image.size
    v = verdict(s)
    assert v.hop in {st.name for st in lab.path.stages}
    text = verdict_text(v)
    assert any(p in text for p in ("nginx", "registry", "client")) and "uwsgi" not in text, text
    assert not {"X-Accel-Redirect", "uwsgi_buffering off", "uwsgi's file wrapper"} & {r.name for r in v.remedies}


def test_proxy_buffering_off_applied_live_from_the_panel_and_measured(as_it_was):
    lab = as_it_was
    nginx = lab.services["nginx"]
    layers = lab.services["registry"].image.layer_digests
    mark = len(nginx.error_log.read_text())
    assert pull_at(lab, "full path").ok
    spooled = [ln for ln in nginx.error_log.read_text()[mark:].splitlines() if SPOOLED in ln]
    # buffering on: a layer went to a temp file (which one is the race between the registry and the client: the
    # fresh-clone CI saw a small layer spooled and the large one streamed)
    assert any(d[7:] in ln for d in layers for ln in spooled), spooled

    panel = TuningPanel(lab, parallel=2)
    panel.set("nginx.proxy_buffering", False)
    panel.label.value = "proxy_buffering off"
    mark = len(nginx.error_log.read_text())
    row = panel.apply_and_measure()
    assert row is not None, panel.last_error
    assert lab.settings.nginx.proxy_buffering is False and "proxy_buffering off;" in nginx.conf.read_text()
    assert row["failures"] == 0 and row["single_MBps"] > 0 and row["parallel_MBps"] > 0
    assert SPOOLED not in nginx.error_log.read_text()[mark:]     # nothing spooled once it is off


def test_a_sweep_over_nginx_workers_runs_on_this_path(as_it_was):
    lab = as_it_was
    t = one_at_a_time(lab, lab.settings, {"nginx.worker_processes": [1, 2]}, parallel=2, verify="sha256",
                      repeats=1, progress=False)
    assert list(t["nginx.worker_processes"]) == ["1", "2"] and (t.failures == 0).all()
    assert (t.single_MBps > 0).all() and (t.parallel_MBps > 0).all()


def test_a_pull_captured_at_every_hop_of_the_oci_path(as_it_was, tmp_path):
    lab = as_it_was
    cap = capture_pull(lab, "full path", max_packets=200_000, max_seconds=30, out_dir=tmp_path)
    assert cap.pull["ok"] and cap.pull["sha256_ok"]
    assert [s.point for s in cap.stats] == ["link", "docker0→nginx", "nginx→registry"]
    largest = lab.services["registry"].image.largest[1]
    for st in cap.stats:
        assert st.packets > 0 and st.stopped_by == "pull finished"
        main = analyze(st.pcap)[0]                 # the direction carrying the most data: the large layer's
        assert main.bytes >= largest and main.handshake_seen


def test_the_remedies_are_tried_and_the_lab_gets_its_settings_back(as_it_was, tmp_path):
    lab = as_it_was
    s = run_survey(lab, parallel=2, iperf_seconds=1, repeats=1, progress=False, vantages=["full path"])
    found = fix(lab, verdict(s), parallel=2, repeats=1, out_dir=tmp_path, remedies=[PROXY_NO_BUFFERING])
    assert [t.name for t in found.trials] == ["proxy_buffering off"] and found.before.failures == 0
    assert found.trials[0].failures == 0 and lab.settings == SETTINGS
    if found.best is not None:                     # kept only beyond the runs' spread
        assert (tmp_path / found.bundle.rsplit("/", 1)[-1] / "config.yml").is_file()


def test_the_bundle_is_written_after_nginx_t_and_the_registry_accept_it(as_it_was, tmp_path):
    lab = as_it_was
    s = lab.settings.changed(nginx={"proxy_buffering": False, "worker_processes": 2})
    final, tar = export_bundle(s, tmp_path, "oci-fix")
    assert tar.is_file() and not (final / "uwsgi.ini").exists()
    assert "proxy_buffering off;" in (final / "nginx.conf").read_text()
    conf = yaml.safe_load((final / "config.yml").read_text())
    assert conf["http"]["addr"] == ":5000" and conf["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    # the checks can say no: a config.yml the registry will not run on, an nginx.conf nginx -t rejects
    stage = tmp_path / "stage"
    shutil.copytree(final, stage)
    (stage / "config.yml").write_text((stage / "config.yml").read_text().replace("filesystem:", "nosuchdriver:"))
    with pytest.raises(ConfigRejected, match="the registry did not serve on config.yml"):
        check_bundle(stage, s)
    shutil.copy(final / "config.yml", stage / "config.yml")
    (stage / "nginx.conf").write_text((stage / "nginx.conf").read_text().replace("proxy_pass", "proxy_pas"))
    with pytest.raises(ConfigRejected, match="nginx -t rejected"):
        check_bundle(stage, s)


def test_a_client_kind_that_does_not_speak_the_oci_api_is_refused_before_anything_starts(lab):
    with pytest.raises(SettingsError, match="client.kind 'sregistry-cli'.*registry.kind 'distribution'"):
        Lab(f"{NAME}-bad", SETTINGS.changed(client={"kind": "sregistry-cli"}), image_size=IMAGE)
    assert not [ns for ns in netns.list_ns("sl-") if ns.startswith(f"sl-{NAME}-bad-")]
    with pytest.raises(SettingsError, match="client.kind 'curl'.*registry.kind 'distribution'"):
        lab.check(lab.settings.changed(client={"kind": "curl"}))       # live: refused, nothing applied
    assert lab.settings.client.kind == "oci"
