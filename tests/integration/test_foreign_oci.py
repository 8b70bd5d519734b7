"""`labkit probe` (OCI, one argument) and a 4-pull Locust storm (`--api oci`) against registries the lab
did not build, each a program of its own on 127.0.0.1, started here and ended by its process id:

    docker-registry      Debian's `docker-registry` (distribution 2.8.2) with htpasswd Basic auth; the image
                         pushed with `skopeo copy` from an OCI layout built in Python
    token service        a registry demanding Bearer tokens from a token issuer beside it (foreign_oci.py)
    blob redirect        blobs answer 307 to an object store on another host (127.0.0.2)
    image index          the tag names an index of three platforms
    tls private CA       https with a certificate from a private CA
    no challenge         a 401 without WWW-Authenticate (bad input: the error names it)
    corrupt              every layer's last byte changed: a digest mismatch, named by layer
    cut                  every layer's first GET closed half-way: resumed with Range (206), verified;
                         without Range support (cutnorange) the cut fails the pull, named

The table printed at the end (run with -s) is the closing note's: server, probe result and rate, storm.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.analyze.probe_verdict import FAILED
from labkit.clients.oci import AuthError, PlatformError
from labkit.errors import TlsVerifyError
from labkit.lab.conditions.tls import make_ca, make_server_cert, pem_cert, pem_key
from labkit.lab.host.tools import tool
from labkit.experiments.probe import run_oci_probe

from . import oci_layout
from .test_foreign_servers import free_port, process, storm as storm_master

pytestmark = pytest.mark.integration
MiB = 2**20
LAYERS = [2 * MiB, 3 * MiB // 2, MiB // 2]
TIMEOUT, DEADLINE = 5.0, 30.0
SERVER_PY = Path(__file__).with_name("foreign_oci.py")
USER, PASSWORD = "puller", "secret"          # foreign_oci.py's token service, and the htpasswd entry
TABLE: list[dict] = []


@dataclass
class Server:
    base: str
    layout: oci_layout.Layout
    cacert: str | None = None
    other: str = ""

    def image(self, repo: str = "lib/img", tag: str = "1") -> str:
        return f"{self.base}/{repo}:{tag}"


@pytest.fixture
def tmp(tmp_path_factory, request):
    return tmp_path_factory.mktemp("oci-" + request.node.name[:40].replace("[", "-").replace(" ", "-").strip("]"))


@contextmanager
def python_registry(mode: str, d: Path, platforms=("linux/amd64",), repo: str = "lib/img"):
    lay = oci_layout.build(d / "layout", LAYERS, platforms)
    extra, cacert = [], None
    if mode == "tls":
        ca_key, ca = make_ca("oci private CA")
        key, cert = make_server_cert(ca_key, ca, ["localhost"], ["127.0.0.1"])
        (d / "ca.pem").write_bytes(pem_cert(ca))
        (d / "server.pem").write_bytes(pem_cert(cert))
        (d / "server.key").write_bytes(pem_key(key))
        extra, cacert = [str(d / "server.pem"), str(d / "server.key")], str(d / "ca.pem")
    with process([sys.executable, str(SERVER_PY), mode, str(lay.root), repo, *extra], d) as addr:
        yield Server(addr["base"], lay, cacert, addr["other"])


def htpasswd_line(user: str, password: str) -> str:
    out = subprocess.run([tool("htpasswd"), "-Bbn", user, password], capture_output=True, text=True, check=True)
    return out.stdout.strip() + "\n"


@contextmanager
def docker_registry(d: Path):
    """Debian's docker-registry (distribution) with htpasswd auth, the layout pushed to it with skopeo."""
    lay = oci_layout.build(d / "layout", LAYERS)
    port = free_port()
    (d / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    (d / "config.yml").write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {d / 'store'}
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: basic-realm
    path: {d / 'htpasswd'}
""")
    (d / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    with process([tool("docker-registry"), "serve", str(d / "config.yml")], d, port):
        subprocess.run([tool("skopeo"), "--policy", str(d / "policy.json"), "copy", "--dest-tls-verify=false",
                        "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{lay.root}:1",
                        f"docker://127.0.0.1:{port}/lib/img:1"], check=True, capture_output=True, timeout=120,
                       env={**os.environ, "HOME": str(d)})
        yield Server(f"http://127.0.0.1:{port}", lay)


def auth_file(d: Path, base: str) -> str:
    f = d / "auth.json"
    netloc = base.split("://")[1]
    f.write_text(json.dumps({"auths": {netloc: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
    return str(f)


def probe(image: str, **kw):
    t0 = time.monotonic()
    p = run_oci_probe(image, parallel=2, deadline=DEADLINE, timeout=TIMEOUT, **kw)
    assert time.monotonic() - t0 < 2 * DEADLINE + 10
    return p


def good(p, srv: Server, platform: str = "linux/amd64") -> None:
    layers = p.table[p.table.kind == "layer"]
    pulls = p.table[p.table.kind == "pull"]
    assert p.verdict.kind != FAILED and (pulls.failures == 0).all() and pulls.verified.all(), p.verdict
    want = [d for d, _ in srv.layout.layers[platform]]
    assert p.meta["layers"] == want and len(layers) == len(want) and layers.verified.all()
    assert all(r["ok"] and r["bytes"] == srv.layout.size(platform) and r["check"] == "sha256" for r in p.pulls)
    assert any(n.startswith("the whole pull: ") for n in p.notes)


def storm(srv: Server, d: Path, **kw):
    """4 pulls by 2 users on one worker (labkit storm --master --api oci), the worker beside it."""
    return storm_master(srv, d, "lib/img:1", "oci-worker", api="oci", timeout=TIMEOUT, deadline=DEADLINE, **kw)


def storm_words(row: dict) -> str:
    fails = {k[5:]: v for k, v in row.items() if k.startswith("fail_") and v}
    return f"{row['ok']}/{row['pulls']} ok" + (f", failed: {fails}" if fails else "") + \
        (f", {row['MBps']} MB/s together" if row.get("MBps") is not None else "")


def rate(p) -> str:
    single = p.facts.single_MBps
    return f"{p.verdict.kind}; one pull {single:.0f} MB/s, 2 at once {p.facts.parallel_MBps or 0:.0f} MB/s, " \
           f"fastest layer {p.facts.fastest_layer_MBps or 0:.0f} MB/s"


def record(server: str, probe_said: str, storm_said: str) -> None:
    TABLE.append({"server": server, "probe": probe_said, "storm": storm_said})


def test_docker_registry_with_htpasswd_basic_auth(tmp, monkeypatch):
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp))                      # no ~/.docker/config.json of the machine's
    with docker_registry(tmp) as srv:
        with pytest.raises(AuthError, match="asks for Basic credentials"):
            probe(srv.image())
        with pytest.raises(AuthError, match="the registry refused the credentials from --user"):
            probe(srv.image(), user=f"{USER}:wrong")
        p = probe(srv.image(), user=f"{USER}:{PASSWORD}")
        good(p, srv)
        assert p.meta["auth"] == "basic" and p.meta["credentials"] == "--user"
        monkeypatch.setenv("REGISTRY_AUTH_FILE", auth_file(tmp, srv.base))
        by_file = probe(srv.image())
        good(by_file, srv)
        assert by_file.meta["credentials"] == str(tmp / "auth.json")
        s, row = storm(srv, tmp)                              # the worker reads REGISTRY_AUTH_FILE
        assert row["ok"] == 4
    record("docker-registry 2.8.2 (Debian), htpasswd Basic", f"no credentials: refused, named; --user / "
           f"REGISTRY_AUTH_FILE: {rate(p)}", storm_words(row))


def test_a_registry_behind_a_token_service(tmp, monkeypatch):
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp))
    with python_registry("token", tmp) as srv:
        p = probe(srv.image())
        good(p, srv)
        steps = [st["step"] for st in p.meta["steps"]]
        assert steps[:3] == ["ping", "token", "manifest"] and p.meta["auth"] == "token"
        assert any(n.startswith("token from http://127.0.0.1:") and "repository:lib/img:pull" in n for n in p.notes)
        with_user = probe(srv.image(), user=f"{USER}:{PASSWORD}")
        good(with_user, srv)
        with pytest.raises(AuthError, match=r"token endpoint http://127.0.0.1:\d+/token: HTTP 401 .* as puller \(--user\)"):
            probe(srv.image(), user=f"{USER}:wrong")
        s, row = storm(srv, tmp)
        assert row["ok"] == 4
    with python_registry("token", tmp / "broken", repo="lib/broken") as srv:
        with pytest.raises(AuthError, match=r"token endpoint http://127.0.0.1:\d+/token-broken: HTTP 503"):
            probe(srv.image("lib/broken"))
    record("token service (Docker token spec, JWT), anonymous pull", f"{rate(p)}; token {p.meta['steps'][1]['ms']} ms; "
           "a failing token endpoint: named", storm_words(row))


def test_blobs_redirected_to_another_host(tmp):
    (tmp / "r").mkdir()
    with python_registry("redirect", tmp / "r") as srv:
        p = probe(srv.image())
        good(p, srv)                          # the object store refuses Authorization: none was carried there
        other = srv.other.split("://")[1]
        for r in p.pulls:
            assert [h["status"] for h in r["hops"]] == [307, 200] and r["hops"][1]["host"] == other
        assert all(f"-> {other}" in n for n in p.notes if n.startswith("layer sha256:"))
        assert f"accepted (206 from {other})" in p.meta["ranges"]
        s, row = storm(srv, tmp)
        assert row["ok"] == 4 and all(len(h) == 2 for h in s.pulls.hops)
    record("blobs redirected (307) to another host, token auth", f"{rate(p)}; every layer 307 -> {other}, "
           "no Authorization carried; Range 206", storm_words(row))


def test_an_image_index_with_several_platforms(tmp, capsys):
    from labkit.cli import main
    plats = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
    with python_registry("index", tmp, plats) as srv:
        rc = main(["probe", srv.image(), "--parallel", "1", "--platform", "linux/arm/v7", "--deadline", str(DEADLINE)])
        out = capsys.readouterr().out
        assert rc == 0 and "chose linux/arm/v7 of linux/amd64, linux/arm64/v8, linux/arm/v7" in out
        layer_rows = [line for line in out.splitlines() if line.split()[:1] == ["layer"]]
        assert len(layer_rows) == len(LAYERS) and all("sha256:" in line and ("MiB" in line or "KiB" in line)
                                                      for line in layer_rows)
        p = probe(srv.image())
        good(p, srv)
        assert p.meta["index"] == srv.layout.top and p.meta["platform"] == "linux/amd64"
        arm = probe(srv.image(), platform="linux/arm/v7")
        good(arm, srv, "linux/arm/v7")
        with pytest.raises(PlatformError, match="no manifest for linux/s390x in the index; it has linux/amd64, "
                                                "linux/arm64/v8, linux/arm/v7"):
            probe(srv.image(), platform="linux/s390x")
        s, row = storm(srv, tmp, platform="linux/arm64/v8")
        assert row["ok"] == 4 and (s.pulls.bytes == srv.layout.size("linux/arm64/v8")).all()
    record("image index, 3 platforms", f"{rate(p)}; --platform linux/arm/v7 chosen; linux/s390x: refused, "
           "the index's platforms named", f"--platform linux/arm64/v8: {storm_words(row)}")


def test_tls_with_a_private_ca(tmp, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with python_registry("tls", tmp) as srv:
        with pytest.raises(TlsVerifyError, match="certificate verify failed"):
            probe(srv.image())
        p = probe(srv.image(), cacert=srv.cacert)
        good(p, srv)
        assert all(r["tls"].startswith("TLSv1.") for r in p.pulls)
        s, row = storm(srv, tmp)
        assert row["ok"] == 4 and all(t.startswith("TLSv1.") for t in s.pulls.tls)
    record("TLS, private CA", f"no CA: refused; --cacert: {rate(p)}, {p.pulls[0]['tls']}", f"--cacert: {storm_words(row)}")


def test_a_401_without_a_challenge(tmp):
    with python_registry("nochallenge", tmp) as srv:
        with pytest.raises(AuthError, match="HTTP 401 without a WWW-Authenticate challenge"):
            probe(srv.image())
        s, row = storm(srv, tmp)
        assert row["ok"] == 0 and row["fail_http"] == 4, row
    record("401 without a challenge", "refused: 'HTTP 401 without a WWW-Authenticate challenge'", storm_words(row))


def test_a_layer_whose_bytes_do_not_match_its_digest(tmp):
    with python_registry("corrupt", tmp) as srv:
        p = probe(srv.image())
        assert p.verdict.kind == FAILED and "sha256 mismatch" in p.verdict.summary, p.verdict
        bad = p.table[p.table.kind == "layer"]
        assert (bad.failures == 1).all() and not bad.verified.any()
        assert all(r["kind"] == "checksum" and "layer sha256:" in r["error"] for r in p.pulls)
        s, row = storm(srv, tmp)
        assert row["fail_checksum"] == 4, row
    record("layers corrupted (digest mismatch)", f"{FAILED}: {p.pulls[0]['error'][:90]}...", storm_words(row))


def test_a_layer_cut_mid_way_resumes_with_range(tmp):
    (tmp / "r").mkdir()
    with python_registry("cut", tmp / "r") as srv:
        p = probe(srv.image())
        good(p, srv)                                  # verified by its digest across the two connections
        layers = [(d, n - n // 2) for d, n in srv.layout.layers["linux/amd64"]]   # where the server cut each
        assert {d: [(r["offset"], r["cut"], r["status"], r["dropped"]) for r in rs]
                for d, rs in p.meta["resumes"].items()} == {d: [(at, "short", 206, 0)] for d, at in layers}
        rows = p.table[p.table.kind == "layer"]
        assert all(h.endswith(f"; resumed 1x at byte {at}") for h, (_, at) in zip(rows.hops, layers))
        assert sum("resumed 1x: at byte" in n for n in p.notes) == len(layers)
        assert f"2 pulls at once: {2 * len(layers)} resume(s) of cut layers" in " ".join(p.notes)
        s, row = storm(srv, tmp)
        assert row["ok"] == 4
    with python_registry("cutnorange", tmp) as srv:
        cut = probe(srv.image())
        assert cut.verdict.kind == FAILED and "ignored (200" in cut.meta["ranges"] and not cut.meta["resumes"]
        bad = cut.table[cut.table.kind == "layer"]
        assert (bad.failures == 1).all()
        for r in cut.pulls:
            assert r["kind"] == "short body" and "the server does not accept Range (its answer said no " \
                "Accept-Ranges: bytes): not resumed" in r["error"] and "cut at byte" in r["error"], r["error"]
        (tmp / "n").mkdir()
        s, norange = storm(srv, tmp / "n")
        assert norange["fail_short_body"] == 4, norange
    record("layers cut half-way (first GET), Range honoured", f"{rate(p)}; each layer resumed once at its half "
           "(206), verified", storm_words(row))
    record("layers cut half-way, no Range support", f"{FAILED}: {cut.pulls[0]['error'][:110]}...", storm_words(norange))


def test_zz_the_table(capsys):
    """Runs last in this file: the table of what each server got (printed with -s)."""
    if not TABLE:
        pytest.skip("no server ran")
    with capsys.disabled():
        w = max(len(r["server"]) for r in TABLE)
        print("\n" + "\n".join(f"{r['server']:<{w}} | {r['probe']} | {r['storm']}" for r in TABLE))
