"""The clients HPC pulls OCI images with today (issue 27 item 2), each a client kind, each through the whole path
of a distribution lab (compute -> Docker's DNAT -> nginx TLS with the lab's CA -> docker-registry 2.8), each
pull verified by digest: the manifest, every layer it fetches and the config (root; -s shows the numbers).

skopeo and podman are Debian's real programs; oras-style and enroot-style pull as `apptainer pull oras://`
and `enroot import docker://` do (labkit.clients.oras_style, labkit.clients.enroot_pull).
"""
from __future__ import annotations

import hashlib
import shutil
import stat
import sys
import threading
from pathlib import Path

import pytest

from labkit.clients import enroot_pull
from labkit.clients.kinds import KINDS
from labkit.config.presets import PRESETS
from labkit.errors import SettingsError
from labkit.lab.host.tools import tool
from labkit.lab.oci_image import oci_target
from labkit.lab.programs import DockerNat
from labkit.measure.path_sockets import DiagSocket
from labkit.clients.kind import Target, Where
from labkit.units import MiB
from tests.integration.labs import module_lab

pytestmark = pytest.mark.integration
NAME = "ocikinds-t1"
IMAGE = 32 * MiB                   # 3 layers: 2 + 2 + 28 MiB
OCI_KINDS = ["skopeo", "podman", "oras-style", "enroot-style"]


@pytest.fixture(scope="module")
def lab():
    yield from module_lab(NAME, PRESETS["distribution-2.8"], IMAGE)


def client_target(lab) -> Target:
    v = lab.path.client_vantage
    return oci_target(lab.services["registry"].image, lab.plan.endpoint(v), lab.trust_at(v))


def where(lab) -> Where:
    return Where(lab.client.dest_root(), lab.client.preexec(), tool)


def expected_bytes(kind: str, t: Target) -> int:
    """oras-style takes the one large blob (the SIF's stand-in); the others every layer."""
    return max(size for _, size in t.oci.layers) if kind == "oras-style" else t.oci.size


@pytest.mark.parametrize("kind", OCI_KINDS)
def test_each_client_pulls_through_the_whole_path_verified_by_digest(lab, kind):
    if kind == "podman" and shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    t = client_target(lab)
    assert t.trust is not None and t.port == 443 and len(t.oci.layers) == 3
    nat = next(s for s in lab.services.values() if isinstance(s, DockerNat))
    before = nat.counters()["dnat"]
    [r] = KINDS[kind]().pull(t, where(lab), 1, "sha256", deadline=240)
    print(f"\nmeasured: {kind}, one pull of {r.bytes / MiB:.1f} MiB over TLS: {r.mbps:.0f} MB/s, "
          f"client CPU {r.cpu_s:.2f} s", flush=True)
    assert r.ok and r.sha256_ok is True, r.error
    assert r.bytes == expected_bytes(kind, t)
    assert nat.counters()["dnat"] > before          # Docker's NAT carried it (DNAT on the VM)


@pytest.mark.parametrize("kind", OCI_KINDS)
def test_two_pulls_at_once_each_verified(lab, kind):
    if kind == "podman" and shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    t = client_target(lab)
    results = KINDS[kind]().pull(t, where(lab), 2, "sha256", deadline=240)
    print(f"\nmeasured: {kind}, 2 at once: {[round(r.mbps) for r in results]} MB/s each", flush=True)
    assert len(results) == 2 and all(r.ok and r.sha256_ok for r in results), [r.error for r in results]
    assert {r.bytes for r in results} == {expected_bytes(kind, t)}
    assert max(r.start for r in results) < min(r.end for r in results)     # they overlapped


def most_at_once(ns: str | None, port: int, pull) -> int:
    """The most connections from the compute node to `port`, established and each past its first 64 KiB (carrying
    a layer, not a manifest), seen at once while `pull()` runs (the kernel's sock_diag, every ~2 ms)."""
    diag, stop, most = DiagSocket(ns), threading.Event(), [0]

    def watch():
        while not stop.wait(0.002):
            rows = diag.dump()
            most[0] = max(most[0], sum(1 for r in rows if r["dport"] == port and r["state"] == 1
                                       and r.get("bytes_received", 0) >= 64 * 1024))
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    try:
        pull()
    finally:
        stop.set()
        w.join()
        diag.close()
    return most[0]


@pytest.mark.parametrize("kind,fewest", [("skopeo", 2), ("podman", 2), ("enroot-style", 2), ("oras-style", 1)])
def test_how_many_layers_each_client_fetches_at_once(lab, kind, fewest):
    """What the code says (containers/image's 6, enroot's 10, one blob for oras), seen on the wire: the 3-layer
    image's layers on more than one connection at once, at most one per layer; oras-style's one blob on one.
    Not always all 3: a 2 MiB layer may be done before the last layer's request starts (skopeo's Go client
    then reuses its idle connection; enroot's curls start one after another and end with their blob).
    Seen in two runs: skopeo 3 and 2, podman 3 and 3, enroot-style 2 and 3, oras-style 1 and 1."""
    t = client_target(lab)
    results = []
    seen = most_at_once(t.ns, t.port, lambda: results.extend(KINDS[kind]().pull(t, where(lab), 1, "sha256", deadline=240)))
    print(f"\nmeasured: {kind}: at most {seen} connection(s) carrying layers at once", flush=True)
    assert results[0].ok, results[0].error
    assert fewest <= seen <= min(len(t.oci.layers) if kind != "oras-style" else 1, KINDS[kind].connections)


@pytest.mark.parametrize("kind", ["skopeo", "enroot-style", "oras-style"])
def test_a_wrong_digest_fails_the_pull_naming_it(lab, kind):
    """The check is real: an image whose config digest is not the registry's is a failed pull, not a pass."""
    t = client_target(lab)
    bad = t.oci.__class__(t.oci.repository, t.oci.tag, t.oci.manifest_digest if kind != "oras-style" else "sha256:" + "0" * 64,
                          "sha256:" + "0" * 64 if kind != "oras-style" else t.oci.config_digest, t.oci.layers)
    [r] = KINDS[kind]().pull(Target(t.ns, t.host, t.port, t.uri, t.sha256, t.size, t.trust, bad), where(lab), 1,
                             "sha256", deadline=240)
    assert not r.ok and ("config" in r.error or "manifest" in r.error), r.error


def test_the_lab_ca_is_checked_by_every_client(lab):
    """Without the lab's CA (the system's instead) each client refuses nginx's certificate: a failed pull."""
    t = client_target(lab)
    untrusted = Target(t.ns, t.host, t.port, t.uri, t.sha256, t.size, t.trust.__class__(), t.oci)
    for kind in ("skopeo", "enroot-style", "oras-style"):
        [r] = KINDS[kind]().pull(untrusted, where(lab), 1, "sha256", deadline=120)
        assert not r.ok and "certificate" in r.error.lower(), (kind, r.error)


def test_an_oci_client_refuses_sregistrys_api_before_it_runs(lab, tmp_path):
    t = client_target(lab)
    sregistry = Target(t.ns, t.host, t.port, "library/servelab:1b", t.sha256, t.size, t.trust)
    for kind in OCI_KINDS:
        with pytest.raises(SettingsError, match=f"client.kind '{kind}' speaks oci"):
            KINDS[kind]().pull(sregistry, Where(tmp_path), 1)
    assert not list(tmp_path.iterdir())


# --- the enroot driver's fetch with a stand-in curl (no lab) -------------------------------------------------
FAKE_CURL = """#!{python}
import os, sys, time
args = sys.argv[1:]
out, url = args[args.index("-o") + 1], args[-1]
with open(os.path.join({log!r}, str(os.getpid())), "w") as f:
    f.write(repr(time.monotonic()))
time.sleep(0.2)
hexpart = url.rpartition(":")[2]
with open(os.path.join({blobs!r}, hexpart), "rb") as src, open(out, "wb") as dst:
    dst.write(src.read())
with open(os.path.join({log!r}, str(os.getpid())), "a") as f:
    f.write(" " + repr(time.monotonic()))
"""


def _fake_curl(tmp_path: Path, blobs: dict[str, bytes]) -> tuple[str, Path]:
    src, log = tmp_path / "served", tmp_path / "log"
    src.mkdir()
    log.mkdir()
    for d, data in blobs.items():
        (src / d.partition(":")[2]).write_bytes(data)
    curl = tmp_path / "curl"
    curl.write_text(FAKE_CURL.format(python=sys.executable, log=str(log), blobs=str(src)))
    curl.chmod(curl.stat().st_mode | stat.S_IXUSR)
    return str(curl), log


def test_enroot_fetches_one_blob_per_curl_up_to_its_connections_each_checked(tmp_path):
    blobs = {"sha256:" + hashlib.sha256(b"%d" % i).hexdigest(): b"%d" % i for i in range(5)}
    curl, log = _fake_curl(tmp_path, blobs)
    dest = tmp_path / "dest"
    dest.mkdir()
    enroot_pull.fetch_blobs([curl], "http://r/v2/x/blobs/", str(dest), list(blobs), at_once=2)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {d.partition(":")[2]: b for d, b in blobs.items()}
    spans = [tuple(map(float, p.read_text().split())) for p in log.iterdir()]
    most = max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans)
    assert len(spans) == 5 and most == 2         # one curl per blob, never more than `at_once` running


def test_enroot_says_a_checksum_mismatch(tmp_path):
    good = "sha256:" + hashlib.sha256(b"right").hexdigest()
    curl, _ = _fake_curl(tmp_path, {good: b"wrong"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(SystemExit, match=f"Checksum mismatch: {good}"):
        enroot_pull.fetch_blobs([curl], "http://r/v2/x/blobs/", str(dest), [good], at_once=10)
