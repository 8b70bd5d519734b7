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
