"""The OCI client kinds' pure parts: their command lines (TLS with the lab's CA, plain http), what they print
and keep read back (podman's image ID, an OCI layout, a dir:, enroot's flat blobs, podman's saved store),
checked by digest so that a changed byte or a missing blob fails, and a target of sregistry's API refused
before anything runs; the enroot driver's options and manifest parsing (its curls: tests/integration)."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from labkit.clients import enroot_pull
from labkit.clients.kind import OciImageRef, Target, Where
from labkit.clients.kinds import KINDS
from labkit.clients.oci.pull import MAX_PARALLEL_DOWNLOADS
from labkit.clients.oci_pulled import blob_path, check_blobs
from labkit.clients.oras_style import largest
from labkit.clients.podman import podman_argv, printed_id, runroot, stored_wrong
from labkit.clients.skopeo import AT_ONCE, skopeo_argv
from labkit.errors import SettingsError
from labkit.lab.oci_image import build_blobs, ensure_oci_layout, oci_target
from labkit.units import KiB

OCI_KINDS = [n for n, k in KINDS.items() if k.apis == ("oci",) and n != "oci"]   # "oci", labkit's own: tests/unit/test_oci_path.py
TLS = {"image": "10.0.0.2:443/servelab/image:latest", "base": "https://10.0.0.2:443", "tag": "latest",
       "repository": "servelab/image", "layout": "/pull/0", "certdir": "/pull/0/certs", "cacert": "/lab/ca.pem"}
PLAIN = TLS | {"image": "10.0.0.2:80/servelab/image:latest", "base": "http://10.0.0.2:80", "certdir": "", "cacert": ""}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return ensure_oci_layout(tmp_path_factory.mktemp("oci"), 192 * KiB, 3)


def test_the_table_has_todays_clients_each_speaking_oci_only():
    assert OCI_KINDS == ["skopeo", "podman", "oras-style", "enroot-style"]
    assert KINDS["skopeo"].connections == KINDS["podman"].connections == MAX_PARALLEL_DOWNLOADS == 6
    assert KINDS["oras-style"].connections == 1 and KINDS["enroot-style"].connections == enroot_pull.CONNECTIONS == 10


@pytest.mark.parametrize("name", OCI_KINDS)
def test_a_target_of_sregistrys_api_is_refused_before_anything_runs(name, tmp_path):
    sregistry = Target(None, "10.0.0.2", 443, "library/servelab:1b", "0" * 64, 10)
    with pytest.raises(SettingsError, match=f"client.kind '{name}' speaks oci only.*sregistry's API"):
        KINDS[name]().pull(sregistry, Where(tmp_path), 1)
    assert not list(tmp_path.iterdir())


def test_sregistrys_program_kinds_refuse_an_oci_target(image, tmp_path):
    t = oci_target(image, (None, "10.0.0.2", 443), None)
    with pytest.raises(SettingsError, match="client.kind 'curl' speaks sregistry only.*oci's API"):
        KINDS["curl"]().pull(t, Where(tmp_path), 1)


def test_an_image_as_a_target_names_every_digest(image):
    t = oci_target(image, ("ns", "10.0.0.2", 443), None)
    assert t.api == "oci" and t.uri == "/v2/servelab/image/manifests/latest" and t.size == image.size
    assert t.oci == OciImageRef("servelab/image", "latest", image.manifest_digest, image.config_digest,
                                tuple(zip(image.layer_digests, image.layer_sizes)))
    assert "sha256:" + t.sha256 == image.largest[0] and t.oci.ref == image.ref


def test_skopeo_copies_into_an_oci_layout_with_the_labs_ca_or_without_tls_over_http():
    assert skopeo_argv(TLS) == ["skopeo", "--insecure-policy", "copy", "--src-cert-dir", "/pull/0/certs",
                                "docker://10.0.0.2:443/servelab/image:latest", "oci:/pull/0:latest"]
    assert skopeo_argv(PLAIN)[3:5] == ["--src-tls-verify=false", "docker://10.0.0.2:80/servelab/image:latest"]
    https_system_cas = TLS | {"certdir": "", "cacert": ""}
    assert not any("tls-verify" in w or "cert-dir" in w for w in skopeo_argv(https_system_cas))
    assert skopeo_argv(TLS, "dir")[-1] == "dir:/pull/0"
    assert AT_ONCE == {"oci": 6, "dir": 1}       # containers/image v5.23.1: oci: dest thread-safe, dir: not


def test_podman_pulls_into_a_store_of_its_own_with_the_labs_ca():
    argv = podman_argv(TLS)
    assert argv[0] == "podman" and argv[argv.index("--root") + 1] == "/pull/0/storage"
    assert argv[argv.index("--storage-driver") + 1] == "vfs" and argv[argv.index("--events-backend") + 1] == "none"
    assert argv[-4:] == ["pull", "--cert-dir", "/pull/0/certs", "10.0.0.2:443/servelab/image:latest"]
    assert podman_argv(PLAIN)[-3:] == ["pull", "--tls-verify=false", "10.0.0.2:80/servelab/image:latest"]
    run = argv[argv.index("--runroot") + 1]
    assert run == runroot("/pull/0") != runroot("/pull/1") and len(run) <= 50     # podman's limit


def test_podman_is_given_its_temporary_directory_and_the_ca_copied(image, tmp_path):
    kind = KINDS["podman"]()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    from labkit.clients.registry_api import Trust
    work = tmp_path / "pull"
    work.mkdir()
    values = kind.values(oci_target(image, (None, "10.0.0.2", 443), Trust(str(ca))), "", work)
    assert (Path(values["certdir"]) / "ca.crt").read_text() == ca.read_text()
    assert values["image"] == "10.0.0.2:443/servelab/image:latest" and values["base"] == "https://10.0.0.2:443"
    assert kind.env(values, work, work / "s")["TMPDIR"] == str(work / "tmp") and (work / "tmp").is_dir()


def test_podmans_printed_image_id_is_read_from_its_output():
    out = ("Trying to pull 10.0.0.2:443/servelab/image:latest...\nGetting image source signatures\n"
           "Copying blob sha256:5ca3ae0be15b done\nCopying config sha256:9f86d081884c done\n"
           "Writing manifest to image destination\nStoring signatures\n" + "9f86d081" * 8 + "\n")
    assert printed_id(out) == "9f86d081" * 8
    assert printed_id("Error: initializing source docker://...: x509: certificate signed by unknown authority") is None


@pytest.mark.parametrize("verify", ["sha256", "length"])
def test_an_oci_layout_checks_by_digest_and_a_changed_byte_or_a_missing_blob_fails(image, tmp_path, verify):
    import shutil
    layout = tmp_path / "copy"
    shutil.copytree(image.layout, layout)
    ref = image.as_ref()
    assert check_blobs(ref, layout, "oci", verify) == (image.size, True if verify == "sha256" else None, "")
    f = blob_path(layout, image.layer_digests[1], "oci")
    data = bytearray(f.read_bytes())
    data[100] ^= 1
    f.write_bytes(bytes(data))
    n, ok, wrong = check_blobs(ref, layout, "oci", verify)
    if verify == "sha256":
        assert ok is False and wrong == f"layer {image.layer_digests[1][:19]}: its bytes do not hash to its digest"
    else:
        assert ok is None and wrong == ""        # lengths only: the same length passes
    blob_path(layout, image.config_digest, "oci").unlink()
    assert f"config {image.config_digest[:19]} not written" in check_blobs(ref, layout, "oci", verify)[2]


def test_dir_and_flat_layouts_keep_blobs_by_hex_and_the_manifest_beside(image, tmp_path):
    blobs, manifest = build_blobs(192 * KiB, 3)
    for d, data in blobs.items():
        (tmp_path / d.partition(":")[2]).write_bytes(data)
    (tmp_path / "manifest.json").write_bytes(blob_path(image.layout, image.manifest_digest, "oci").read_bytes())
    assert check_blobs(image.as_ref(), tmp_path, "flat", "sha256") == (image.size, True, "")
    (tmp_path / "manifest.json").write_bytes(b"{}")
    assert "manifest: its bytes do not hash" in check_blobs(image.as_ref(), tmp_path, "dir", "sha256")[2]
    big = image.largest
    only = check_blobs(image.as_ref(), tmp_path, "flat", "sha256", layers=(big,), manifest=False)
    assert only == (big[1], True, "")           # what an oras-style pull keeps: the one blob and the config


def _saved_store(tmp_path: Path, image, corrupt: bool = False) -> Path:
    """What `podman save --format oci-dir` writes: the config as pulled, each layer as a tar (gzip'd again)."""
    saved = tmp_path / "saved"
    (saved / "blobs" / "sha256").mkdir(parents=True)
    layers = []
    for d in image.layer_digests:
        tar = gzip.decompress(blob_path(image.layout, d, "oci").read_bytes())
        if corrupt and not layers:
            tar = tar[:-1] + b"x"
        again = gzip.compress(tar, mtime=0)
        digest = "sha256:" + hashlib.sha256(again).hexdigest()
        blob_path(saved, digest, "oci").write_bytes(again)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(again)})
    config = blob_path(image.layout, image.config_digest, "oci").read_bytes()
    blob_path(saved, image.config_digest, "oci").write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": image.config_digest, "size": len(config)},
                           "layers": layers}).encode()
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    blob_path(saved, mdigest, "oci").write_bytes(manifest)
    (saved / "index.json").write_text(json.dumps({"manifests": [{"digest": mdigest}]}))
    return saved


def test_podmans_store_is_checked_layer_by_layer_against_the_configs_diff_ids(image, tmp_path):
    assert stored_wrong(_saved_store(tmp_path / "good", image), image.as_ref(), "sha256") == []
    wrong = stored_wrong(_saved_store(tmp_path / "bad", image, corrupt=True), image.as_ref(), "sha256")
    assert len(wrong) == 1 and wrong[0].startswith("layer 0: as podman unpacked it, its tar hashes to")


def test_enroots_curl_options_are_its_defaults_https_only_unless_http():
    opts = enroot_pull.curl_options("/usr/bin/curl", "https://r:443", "/ca.pem")
    assert opts == ["/usr/bin/curl", "--proto", "=https", "--retry", "0", "--connect-timeout", "30", "--max-time", "0",
                    "-SsL", "--cacert", "/ca.pem"]
    assert enroot_pull.curl_options("curl", "http://r:80", None)[1:3] == ["--proto", "=http,https"]


def test_enroot_reads_the_manifest_as_it_does(image):
    manifest = blob_path(image.layout, image.manifest_digest, "oci").read_bytes()
    config, layers = enroot_pull.blobs_of(manifest)
    assert config == image.config_digest and layers == list(image.layer_digests)[::-1]     # reversed, as jq's
    index = json.dumps({"manifests": [{"digest": "sha256:a", "platform": {"architecture": "arm64"}},
                                      {"digest": "sha256:b", "platform": {"architecture": "amd64"}}]}).encode()
    assert enroot_pull.platform_entry(index) == "sha256:b"
    assert enroot_pull.platform_entry(manifest) is None and enroot_pull.platform_entry(b"404 page") is None
    with pytest.raises(SystemExit, match="could not parse digest"):
        enroot_pull.blobs_of(b'{"schemaVersion": 2}')


def test_a_failed_curl_is_one_line_naming_the_url_and_what_curl_said():
    said = (b"curl: (60) SSL certificate problem: unable to get local issuer certificate\n"
            b"More details here: https://curl.se/docs/sslcerts.html\n\ncurl failed to verify the legitimacy ...\n")
    exc = enroot_pull.failed("https://r/v2/x/manifests/latest", 60, said)
    assert str(exc) == ("error: https://r/v2/x/manifests/latest: curl exit 60: curl: (60) SSL certificate problem: "
                        "unable to get local issuer certificate")
    assert str(enroot_pull.failed("u", 7, b"")) == "error: u: curl exit 7: (no message)"


def test_oras_style_takes_the_largest_blob():
    from labkit.clients.oci.manifest import Descriptor
    layers = [Descriptor("t", "sha256:" + "a" * 64, 10), Descriptor("t", "sha256:" + "b" * 64, 30),
              Descriptor("t", "sha256:" + "c" * 64, 30)]
    assert largest(layers).digest == "sha256:" + "b" * 64


def test_the_oci_kinds_need_a_destination(image):
    t = oci_target(image, (None, "10.0.0.2", 443), None)
    for name in OCI_KINDS:
        with pytest.raises(Exception, match="destination"):
            KINDS[name]().pull(t, Where(), 1)


def test_podmans_room_counts_its_vfs_store_stacked_and_its_saved_copy():
    """One layer: the blob in flight, the store's copy, the saved copy (3x); three of 10: each vfs layer holds
    every layer below it (10 + 20 + 30), plus the blobs and the saved copy (2 x 30)."""
    from labkit.clients.podman import store_bytes
    assert store_bytes([100]) == 300
    assert store_bytes([10, 10, 10]) == 60 + 60
