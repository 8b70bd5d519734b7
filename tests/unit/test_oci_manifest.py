"""labkit.clients.oci.manifest and pull: media types, index resolution, digest checks, layers at once."""
import json
import threading

import pytest

from labkit.clients.oci import (DigestMismatch, ManifestError, OciError, PlatformError, Reference, Session,
                                pull_layers, resolve, select_platform)
from labkit.clients.oci.manifest import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, media_type
from labkit.clients.oci.pull import fetch_config
from labkit.errors import SettingsError

from .oci_fakes import Registry, Resp, index, manifest, sha

REF = Reference.parse("http://reg:5000/lib/img:1")
M = "http://reg:5000/v2/lib/img/manifests/"
L1, L2 = b"layer one" * 100, b"layer two" * 50


@pytest.mark.parametrize("ctype, media, want", [
    (OCI_MANIFEST, OCI_MANIFEST, OCI_MANIFEST),
    (DOCKER_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST),
    ("application/json", DOCKER_MANIFEST, DOCKER_MANIFEST),          # the document's own mediaType
    (None, None, OCI_MANIFEST),                                       # OCI lets mediaType out: layers say it
])
def test_media_types(ctype, media, want):
    doc = json.loads(manifest([L1]))
    if media is None:
        doc.pop("mediaType")
    else:
        doc["mediaType"] = media
    assert media_type(json.dumps(doc).encode(), ctype, "m")[0] == want


@pytest.mark.parametrize("body, ctype, words", [
    (b"<html>", None, "not a JSON manifest"),
    (b"[1]", None, "a manifest is a JSON object"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), None, "Docker schema 1"),
    (json.dumps({"mediaType": "application/vnd.cncf.helm.config.v1+json"}).encode(), None, "is not an image manifest"),
])
def test_bad_manifests_named(body, ctype, words):
    with pytest.raises(ManifestError, match=words):
        media_type(body, ctype, "m")


def test_index_resolution():
    doc = json.loads(index([("linux/arm64/v8", b"a"), ("linux/amd64", b"b"), ("linux/arm/v7", b"c")]))
    d, offered = select_platform(doc, "linux/amd64", "i")
    assert d.digest == sha(b"b") and offered == ["linux/arm64/v8", "linux/amd64", "linux/arm/v7"]
    assert select_platform(doc, "linux/arm64", "i")[0].digest == sha(b"a")         # any variant when none asked
    assert select_platform(doc, "linux/arm/v7", "i")[0].digest == sha(b"c")
    with pytest.raises(PlatformError, match="no manifest for linux/s390x in the index; it has linux/arm64/v8, "
                                            "linux/amd64, linux/arm/v7 \\(give --platform\\)"):
        select_platform(doc, "linux/s390x", "i")
    with pytest.raises(SettingsError, match="--platform 'amd64'"):
        select_platform(doc, "amd64", "i")


def registry(top: bytes, ctype: str, extra: dict | None = None, said: str | None = None) -> Registry:
    routes = {M + "1": Resp(200, top, {"Content-Type": ctype, **({"Docker-Content-Digest": said} if said else {})})}
    for body, ct in (extra or {}).items():
        routes[M + sha(body)] = Resp(200, body, {"Content-Type": ct})
    return Registry(routes)


def test_resolve_a_manifest_and_an_index():
    m = manifest([L1, L2])
    img = resolve(Session(REF, registry(m, OCI_MANIFEST).get))
    assert [d.size for d in img.layers] == [len(L1), len(L2)] and img.digest == sha(m) and not img.index
    arm = manifest([L2], b'{"a":1}', DOCKER_MANIFEST)
    top = index([("linux/arm64", arm), ("linux/amd64", m)], DOCKER_LIST)
    reg = registry(top, DOCKER_LIST, {m: OCI_MANIFEST, arm: DOCKER_MANIFEST})
    s = Session(REF, reg.get)
    img = resolve(s)
    assert (img.index, img.platform, img.digest) == (sha(top), "linux/amd64", sha(m))
    assert "application/vnd.oci.image.index.v1+json" in reg.requests[0][1]["Accept"]
    assert [st["step"] for st in s.steps] == ["manifest", "manifest linux/amd64"]
    img = resolve(Session(REF, reg.get), "linux/arm64")
    assert img.media_type == DOCKER_MANIFEST and len(img.layers) == 1
    with pytest.raises(PlatformError, match="linux/ppc64le"):
        resolve(Session(REF, reg.get), "linux/ppc64le")


def test_manifest_digests_checked():
    m = manifest([L1])
    with pytest.raises(DigestMismatch, match="the registry says sha256:" + "0" * 64):
        resolve(Session(REF, registry(m, OCI_MANIFEST, said="sha256:" + "0" * 64).get))
    # an index entry whose manifest's bytes are not what its digest says
    top = json.loads(index([("linux/amd64", m)]))
    reg = registry(json.dumps(top).encode(), OCI_INDEX)
    reg.routes[M + sha(m)] = Resp(200, m + b" ", {"Content-Type": OCI_MANIFEST})
    with pytest.raises(DigestMismatch, match="the bytes hash to"):
        resolve(Session(REF, reg.get))
    by_digest = Reference.parse(f"http://reg:5000/lib/img@{sha(m)}")
    reg = Registry({M + sha(m): Resp(200, m + b"x", {"Content-Type": OCI_MANIFEST})})
    with pytest.raises(DigestMismatch):
        resolve(Session(by_digest, reg.get))


def test_missing_manifest_and_bad_config():
    with pytest.raises(OciError, match="HTTP 404 .*no such manifest"):
        resolve(Session(REF, Registry({}).get))
    m = manifest([L1], b'{"cfg": 1}')
    img = resolve(Session(REF, registry(m, OCI_MANIFEST).get))
    reg = Registry({f"http://reg:5000/v2/lib/img/blobs/{img.config.digest}": Resp(200, b'{"cfg": 2}')})
    with pytest.raises(DigestMismatch, match="config http://reg:5000/v2/lib/img/blobs/sha256:"):
        fetch_config(Session(REF, reg.get), img)


def test_layers_one_at_a_time_or_at_once():
    img = resolve(Session(REF, registry(manifest([L1, L2, b"three"]), OCI_MANIFEST).get))
    blobs = Registry({f"http://reg:5000/v2/lib/img/blobs/{d.digest}": Resp(200, b"x") for d in img.layers})
    s = Session(REF, blobs.get)
    together = threading.Barrier(3, timeout=5)

    def fetch(opener, d):
        together.wait()                          # only passes when all three layers are in flight at once
        return (opener().resp.status, d.digest)
    out = pull_layers(s, img.layers, fetch, at_once=3)
    assert [lp.result for lp in out] == [(200, d.digest) for d in img.layers]       # the manifest's order
    seen = []
    pull_layers(s, img.layers, lambda opener, d: seen.append(threading.current_thread().name), at_once=1)
    assert len(set(seen)) == 1
    with pytest.raises(SettingsError, match="outside 1..32 \\(containers/image's default is 6\\)"):
        pull_layers(s, img.layers, fetch, at_once=0)
