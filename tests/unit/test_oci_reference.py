"""labkit.clients.oci.reference and blobs: the image forms the probe takes, digests, bad input named."""
import pytest

from labkit.clients.oci import Digest, DigestMismatch, Reference
from labkit.errors import SettingsError

HEX = "a" * 64


@pytest.mark.parametrize("text, want", [
    ("http://127.0.0.1:5000/lib/img:1", ("http", "127.0.0.1", 5000, "lib/img", "1", None)),
    ("https://registry.example.org/library/ubuntu:22.04", ("https", "registry.example.org", 443, "library/ubuntu", "22.04", None)),
    ("http://reg.example.org/a/b/c", ("http", "reg.example.org", 80, "a/b/c", "latest", None)),
    (f"https://h:8443/proj/app@sha256:{HEX}", ("https", "h", 8443, "proj/app", "latest", f"sha256:{HEX}")),
    ("http://h:5000/ubuntu:v1.2_rc-3", ("http", "h", 5000, "ubuntu", "v1.2_rc-3", None)),
])
def test_reference_forms(text, want):
    r = Reference.parse(text)
    assert (r.scheme, r.host, r.port, r.repository, r.tag, r.digest) == want
    assert r.url("manifest", r.ref) == f"{r.base}/v2/{r.repository}/manifests/{r.ref}"


@pytest.mark.parametrize("text, words", [
    ("registry.example.org/lib/img:1", "http[s]://host"),
    ("ftp://h/lib/img:1", "http[s]://host"),
    ("http://h:5000", "no repository after the host"),
    ("http://h:5000/", "no repository after the host"),
    ("http://h:5000/Lib/Img:1", "is not a valid name"),
    ("http://h:5000/lib/img:-bad", "tag '-bad' is not valid"),
    ("http://h:5000/v2/lib/img/manifests/1", "not the API path"),
    ("http://h:5000/lib/img@sha256:abc", "wants 64 lower-case hex digits"),
    ("http://h:5000/lib/img@md5:" + "a" * 32, "algorithm 'md5'"),
    ("http://h:5000/lib/img:1?x=1", "no query"),
    ("http://h:99999/lib/img:1", "port"),
])
def test_bad_reference_is_named(text, words):
    with pytest.raises(SettingsError) as e:
        Reference.parse(text)
    assert words in str(e.value) and repr(text) in str(e.value)


def test_digest_checks_bytes():
    d = Digest.parse("sha256:" + __import__("hashlib").sha256(b"abc").hexdigest())
    d.check(b"abc", "blob")
    with pytest.raises(DigestMismatch, match=r"blob: the bytes hash to sha256:.* not sha256:ba7816bf8f01"):
        d.check(b"abd", "blob")
    h = d.hasher()
    h.update(b"ab"); h.update(b"c")
    assert h.hexdigest() == d.hex


@pytest.mark.parametrize("bad", ["", "sha256", "sha256:" + "A" * 64, "sha512:" + "a" * 64, "sha256:" + "g" * 64])
def test_bad_digest(bad):
    with pytest.raises(SettingsError, match="digest"):
        Digest.parse(bad)
