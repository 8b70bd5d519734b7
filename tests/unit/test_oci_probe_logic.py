"""labkit.measure.oci_probe's pure parts: a whole pull from its layers' results, and the steps' rows."""
from labkit.clients.oci import Descriptor, LayerPull
from labkit.measure.oci_probe import _step_row, whole
from labkit.records import PullResult

HEX = "sha256:" + "a" * 64


def layer(size, ok=True, start=10.0, end=11.0, error="", kind=""):
    r = PullResult(ok=ok, bytes=size if ok else size // 2, seconds=end - start, ttfb_ms=5.0, sha256_ok=ok,
                   error=error, start=start, end=end, kind=kind, check="sha256",
                   hops=[{"host": "reg:5000", "status": 307, "ms": 1}, {"host": "s3:9000", "status": 200, "ms": 2}])
    return LayerPull(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", HEX, size), r)


def test_the_whole_pull_is_its_layers_over_the_wall_time():
    w = whole([layer(4_000_000, end=11.0), layer(2_000_000, start=10.2, end=10.6)], t0=10.0, cpu_s=0.1)
    assert w.ok and w.bytes == 6_000_000 and w.seconds == 1.0 and round(w.mbps, 1) == 6.0
    assert w.check == "sha256" and [h["host"] for h in w.hops] == ["reg:5000", "s3:9000"]   # the biggest layer's


def test_a_failed_layer_fails_the_pull_naming_it():
    w = whole([layer(1000), layer(2000, ok=False, error="sha256 mismatch: 1000 of 2000 bytes", kind="checksum")],
              t0=10.0, cpu_s=0.0)
    assert not w.ok and w.kind == "checksum" and w.error == f"layer {HEX[:19]}: sha256 mismatch: 1000 of 2000 bytes"


def test_a_ping_401_is_authentication_asked_not_a_failure():
    row = _step_row({"step": "ping", "url": "http://r/v2/", "status": 401, "ms": 1.0, "hops": []})
    assert row["failures"] == 0 and row["error"] == "HTTP 401 (authentication asked)"
    row = _step_row({"step": "manifest", "url": "http://r/v2/x/manifests/1", "status": 404, "ms": 1.0, "hops": []})
    assert row["failures"] == 1 and row["error"] == "HTTP 404"


def test_a_storm_pull_must_resolve_to_the_manifest_digest_it_was_given():
    """oci_pull's `manifest_sha256` (a lab storm: the digest the lab pushed): the right one pulls every layer,
    another one is a checksum failure before any layer is asked for."""
    from labkit.clients.oci import Reference
    from labkit.measure.oci_probe import OciClient, oci_pull
    from .oci_fakes import Registry, Resp, manifest, sha
    blob, config = b"x" * 3000, b"{}"
    body = manifest([blob], config)
    base = "http://reg:5000/v2/lib/img"
    reg = Registry({"http://reg:5000/v2/": Resp(200), f"{base}/manifests/1": Resp(200, body, {
        "Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
        f"{base}/blobs/{sha(config)}": Resp(200, config), f"{base}/blobs/{sha(blob)}": lambda u, h: Resp(
            200, blob, {"Content-Length": str(len(blob))})})
    client = OciClient(Reference.parse("http://reg:5000/lib/img:1"))
    client.get = lambda url, headers, pool=None: reg.get(url, headers)
    good = oci_pull(client, 30, sha(body)[7:])
    assert good.ok and good.bytes == len(blob) and good.sha256_ok
    asked = len(reg.requests)
    bad = oci_pull(client, 30, "0" * 64)
    assert not bad.ok and bad.kind == "checksum" and f"not the sha256:{'0' * 16}" in bad.error
    assert [u for u, _ in reg.requests[asked:]] == ["http://reg:5000/v2/", f"{base}/manifests/1",
                                                     f"{base}/blobs/{sha(config)}"]      # no layer fetched


def test_the_capture_asks_for_every_host_the_blobs_went_to_and_names_each_connection_by_its_layer():
    from labkit.measure.oci_probe import blob_hosts, carried_on
    steps = [{"step": "ping", "hops": [{"host": "reg:5000", "status": 401, "ms": 1}]},
             {"step": "config", "hops": [{"host": "reg:5000", "status": 307, "ms": 1},
                                         {"host": "s3.internal:9000", "status": 200, "ms": 2}]}]
    assert blob_hosts(steps, "reg:5000") == (("s3.internal", 9000),)
    a, b = layer(4_000_000), layer(2_000_000)
    a.result.hops[-1].update(conn="10.0.0.2:40000", reused=False)
    b.result.hops[-1].update(conn="10.0.0.2:40000", reused=True)      # the same connection, kept alive
    assert carried_on([(a, None), (b, None), (layer(10), None)]) == {
        "10.0.0.2:40000": f"layer {HEX[:19]} 3.8 MiB, layer {HEX[:19]} 1.9 MiB"}
