"""Where a pull may go (labkit.clients.follow), what it is checked by and how a failure is worded
(labkit.clients.failures), the socket sampler without a socket, and the probe verdict's caveats: pure logic."""
import pytest

from labkit.analyze.probe_verdict import FAILED, ProbeFacts, probe_verdict
from labkit.errors import HttpStatusError, TlsSetupError
from labkit.clients.failures import check_by, classify, describe, outcome
from labkit.measure.own_socket import SocketWatch
from labkit.clients.registry_api import Trust
from labkit.clients.follow import MAX_HOPS, Follow, RedirectRefused, ca_file, image_url, netloc, next_hop

BASE = "http://reg.example.org:8080"


def test_the_image_url_stays_on_the_given_host_unless_other_hosts_are_allowed():
    assert image_url(f"{BASE}/containers/1/download/s", BASE, Follow()) == (f"{BASE}/containers/1/download/s", "")
    url, note = image_url("http://127.0.0.1/containers/1/download/s?x=1", BASE, Follow())
    assert url == f"{BASE}/containers/1/download/s?x=1" and "DOMAIN_NAME" in note and "--follow-hosts" in note
    url, note = image_url("https://minio:9000/b/img?sig=1", BASE, Follow(other_hosts=True))
    assert url == "https://minio:9000/b/img?sig=1" and "fetched from there (--follow-hosts)" in note
    assert image_url("/containers/1/download/s", BASE, Follow()) == (f"{BASE}/containers/1/download/s", "")
    for bad in ("", "ftp://x/y", "http://host"):
        with pytest.raises(ValueError, match="no http"):
            image_url(bad, BASE, Follow())


def test_redirects_are_followed_on_the_same_host_and_to_others_only_when_allowed():
    start = f"{BASE}/containers/1/download/s"
    assert next_hop(start, 301, "/moved/s", start, Follow(), 0) == f"{BASE}/moved/s"
    assert next_hop(start, 302, "https://reg.example.org/s", start, Follow(), 0) == "https://reg.example.org/s"
    with pytest.raises(RedirectRefused, match=r"to another host, minio:9000: not followed \(give --follow-hosts"):
        next_hop(start, 307, "http://minio:9000/b?sig", start, Follow(), 1)
    assert next_hop(start, 307, "http://minio:9000/b?sig", start, Follow(other_hosts=True), 1) == "http://minio:9000/b?sig"
    with pytest.raises(RedirectRefused, match=f"more than {MAX_HOPS} redirects"):
        next_hop(start, 302, "/again", start, Follow(), MAX_HOPS)
    with pytest.raises(RedirectRefused, match="without a Location"):
        next_hop(start, 302, None, start, Follow(), 0)
    with pytest.raises(RedirectRefused, match="not an http"):
        next_hop(start, 302, "file:///etc/passwd", start, Follow(other_hosts=True), 0)
    refused = RedirectRefused(307, "x")
    assert isinstance(refused, HttpStatusError) and classify(refused) == "http"    # the registry's, not the harness's
    assert netloc("https://[::1]/x") == "[::1]:443" and netloc("http://h") == "h:80"
    with pytest.raises(ValueError, match="max_hops"):
        Follow(max_hops=-1)


def test_the_ca_file_comes_from_cacert_then_the_usual_variables_then_the_system():
    env = {"SSL_CERT_FILE": "/s.pem", "REQUESTS_CA_BUNDLE": "/r.pem"}
    assert ca_file("/c.pem", env) == ("/c.pem", "--cacert")
    assert ca_file(None, env) == ("/r.pem", "REQUESTS_CA_BUNDLE")
    assert ca_file(None, {"SSL_CERT_FILE": "/s.pem"}) == ("/s.pem", "SSL_CERT_FILE")
    assert ca_file(None, {}) == (None, "the system's CAs")
    with pytest.raises(TlsSetupError, match="SSL_CERT_FILE /nonexistent.pem: no such file"):
        Trust.of(None, env={"SSL_CERT_FILE": "/nonexistent.pem"})
    assert Trust.of(None, env={}).describe() == "certificates checked against the system's CAs"
    loose = Trust.of(None, insecure=True, env={})
    assert "INSECURE" in loose.describe() and loose.context().verify_mode.name == "CERT_NONE"


def test_a_body_is_checked_by_sha256_else_length_else_reported_unverified():
    assert check_by("sha256", "ab" * 32, 100) == "sha256" and check_by("sha256", "ab" * 32, -1) == "sha256"
    assert check_by("sha256", None, 100) == "length" and check_by("length", "ab" * 32, 100) == "length"
    assert check_by("sha256", None, -1) == "unverified" and check_by("length", None, -1) == "unverified"
    assert outcome(10, -1, None) == "" and outcome(0, -1, None) == "short body" and outcome(5, 10, None) == "short body"


def test_a_failure_names_what_the_server_did():
    assert describe("short body", 5, 10, 2) == "short body: the server ended the body after 5 of 10 bytes"
    assert describe("timeout", 5, -1, 2) == "timeout: the server sent nothing for 2 s after 5 bytes (no Content-Length)"
    assert describe("timeout", 0, -1, 2.5) == "timeout: no answer from the server within 2.5 s"
    assert describe("checksum", 10, 10, 2).endswith("(the server sent as many bytes as its Content-Length said)")
    assert describe("reset", 0, -1, 2, "RemoteDisconnected: x") == \
        "reset: the server closed or reset the connection before answering [RemoteDisconnected: x]"
    assert describe("other", 0, -1, 2, "KeyError: 'image'") == "KeyError: 'image'"


def test_sampling_without_a_socket_skips_the_samples_and_says_so():
    w = SocketWatch(1024, interval=0)
    for _ in range(3):
        w(None)
    w.finish(None)
    s = w.summary()
    assert w.reads == 3 and not w.samples and w.backlogged == 0
    assert s["missing"] == ["SO_RCVBUF: 4 sample(s) skipped (no socket to read)",
                            "tcp_info: 5 sample(s) skipped (no socket to read)",
                            "the receive queue (SIOCINQ): 4 sample(s) skipped (no socket to read)"]


class _Gone:
    """A socket whose descriptor was closed under the sampler."""
    def fileno(self):
        return -1

    def getsockopt(self, *a):
        raise OSError(9, "Bad file descriptor")


def test_sampling_a_closed_socket_never_breaks_the_pull():
    w = SocketWatch(1024, interval=0)
    w(_Gone())
    w.finish(_Gone())
    assert any(m.startswith("tcp_info") and "Bad file descriptor" in m for m in w.summary()["missing"])


def test_the_verdict_says_insecure_unverified_and_missing_evidence_first():
    f = ProbeFacts.of(100.0, {"client_cpu_pct": 20.0, "missing": ["tcp_info: 2 sample(s) skipped (x)"]},
                      insecure=True, checks=["unverified"])
    v = probe_verdict(f)
    assert v.evidence[0].startswith("INSECURE") and "not verified" in v.evidence[1]
    assert v.evidence[2].startswith("not measured (samples skipped): tcp_info")
    failed = probe_verdict(ProbeFacts.of(0.0, {}, failures=2, pulls=2, errors="short body: the server ended ..."))
    assert failed.kind == FAILED and "the server ended" in failed.summary
