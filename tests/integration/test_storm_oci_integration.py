"""A Locust pull storm on a lab that serves an OCI registry (registry.kind "distribution", preset distribution-2.8:
docker-registry 2.8 behind nginx with TLS, the lab's CA): each user on each compute node pulls as an OCI client
(ping, manifest, config, its layers at once), every layer checked by its digest and the manifest by the digest the
lab pushed; the sregistry API is refused on it, naming the setting. And the probe's capture of one OCI pull from
the compute node: every connection (its layers at once), each named by the layer it carried (root)."""
import pytest

from labkit.config.presets import PRESETS
from labkit.errors import SettingsError
from labkit.experiments.storm import run_storm
from labkit.measure.locust_storm import StormSpec
from labkit.experiments.probe import run_oci_probe
from labkit.units import MiB, format_size
from tests.integration.labs import module_lab

pytestmark = pytest.mark.integration
NAME = "stormoci-st"


@pytest.fixture(scope="module")
def lab():
    yield from module_lab(NAME, PRESETS["distribution-2.8"], 8 * MiB, compute_nodes=2)


def test_an_oci_storm_from_two_compute_nodes_verifies_every_pull_by_digest(lab):
    img = lab.services["registry"].image
    s = run_storm(lab, StormSpec(users=4, pulls=8, deadline=60, timeout=20))
    row = s.row()
    assert (row["pulls"], row["ok"], row["failures"], row["harness_failures"]) == (8, 8, 0, 0), s.failures()
    assert (s.meta["api"], s.meta["image"], s.meta["image_bytes"]) == ("oci", img.ref, img.size)
    assert (s.pulls.bytes == img.size).all() and s.pulls.sha256_ok.all() and (s.pulls.check == "sha256").all()
    assert s.pulls.tls.str.startswith("TLSv1.2").all()                    # the recipe's TLS, the lab's CA checked
    assert set(s.pulls.node) == set(lab.path.compute) and sorted(s.pulls.ticket) == list(range(1, 9))
    assert row["MBps"] > 0 and 0 < row["jain"] <= 1


def test_a_manifest_other_than_the_one_pushed_fails_every_pull_as_a_checksum(lab):
    """Ground truth: a digest the lab did not push; the pulls fail before any layer, counted as the registry's."""
    s = run_storm(lab, StormSpec(users=2, pulls=4, sha256="0" * 64, deadline=60, timeout=20))
    row = s.row()
    assert (row["pulls"], row["ok"], row["fail_checksum"], row["harness_failures"]) == (4, 0, 4, 0)
    assert (s.pulls.bytes == 0).all() and s.pulls.error.str.contains("the manifest resolved is sha256:").all()


def test_the_sregistry_api_on_an_oci_lab_is_refused_naming_the_setting(lab):
    with pytest.raises(SettingsError, match="--api sregistry: the lab's registry.kind 'distribution' serves the oci"):
        run_storm(lab, StormSpec(users=1, pulls=1, api="sregistry"))


def test_the_probes_capture_reads_every_connection_of_an_oci_pull(lab, tmp_path):
    ns, host, port = lab.plan.endpoint(lab.path.client_vantage)
    trust = lab.trust_at(lab.path.client_vantage)
    img = lab.services["registry"].image
    p = run_oci_probe(f"https://{host}:{port}/{img.ref}", parallel=2, capture=True, ns=ns, capture_dir=tmp_path,
                      cacert=trust.cafile, deadline=60)
    conns = p.capture["connections"]
    assert len(conns) == len(img.layer_digests) == 3            # 3 layers at once: 3 connections, all captured
    sizes = dict(zip(img.layer_digests, img.layer_sizes))
    assert sorted(c["carried"] for c in conns) == sorted(f"layer {d[:19]} {format_size(n)}" for d, n in sizes.items())
    for c in conns:                                              # each its own handshake, its layer's bytes (+ TLS)
        n = sizes[next(d for d in sizes if c["carried"].startswith(f"layer {d[:19]}"))]
        assert c["handshake_seen"] and n <= c["bytes"] < n * 1.05 + 64 * 1024 and c["server"] == f"{host}:{port}"
    assert p.capture["windows_verdict"].endswith("(the biggest of 3 connections)")
