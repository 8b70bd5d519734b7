"""`labkit probe` and a Locust storm against registries the lab did not build (tests/integration/foreign_servers.py).

Each server is a program of its own on 127.0.0.1 (the redirect's file server on 127.0.0.2), started
here and ended by its process id. Against each: a probe ends with a verdict or an error that names
what the server did, within its deadline; a small storm (one worker, 2 users, 4 pulls) counts its
failures by kind, none of them the harness's. The table printed at the end is the issue's
(server, probe result, storm result); run with -s to see it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.analyze.probe_verdict import FAILED
from labkit.errors import TlsVerifyError
from labkit.lab.conditions.tls import make_ca, make_server_cert, pem_cert, pem_key
from labkit.lab.host.tools import tool
from labkit.measure.locust_storm import LocustProcess, StormSpec
from labkit.measure.probe import INSECURE
from labkit.experiments.probe import run_probe
from labkit.experiments.storm import run_master

from .foreign_servers import IMAGE, NOSHA_URI, URI, write_tree

pytestmark = pytest.mark.integration
SIZE = 4 * 2**20
TIMEOUT, DEADLINE = 2.0, 15.0           # a read's idle timeout, a pull's deadline: the stalling server meets them
SERVER_PY = Path(__file__).with_name("foreign_servers.py")
TABLE: list[dict] = []


@dataclass
class Server:
    base: str
    sha256: str
    cacert: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def process(argv: list[str], cwd: Path, ready_port: int | None = None):
    """A server program, its stdout's first line handed over; ended by its own process group's id."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        if ready_port is None:
            line = proc.stdout.readline()
            assert line, f"{argv[:3]} ended before it listened"
            yield json.loads(line)
        else:
            end = time.monotonic() + 10
            while socket.socket().connect_ex(("127.0.0.1", ready_port)) != 0:
                assert proc.poll() is None and time.monotonic() < end, f"{argv[:3]} does not listen: {proc.poll()}"
                time.sleep(0.05)
            yield {}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        proc.stdout.close()


def nginx_conf(d: Path, root: Path, port: int) -> Path:
    temps = "\n".join(f"  {k}_temp_path {d}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = d / "nginx.conf"
    conf.write_text(f"""{'user root;' if os.geteuid() == 0 else ''}
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  default_type application/octet-stream;
{temps}
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    return conf


@contextmanager
def serving(name: str, d: Path):
    """The named foreign server over a fresh 4 MiB image, running for the block."""
    root = d / "www"
    root.mkdir()
    if name == "python http.server":
        port = free_port()
        sha = write_tree(root, f"http://127.0.0.1:{port}", SIZE)
        with process([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
                     d, port):
            yield Server(f"http://127.0.0.1:{port}", sha)
    elif name == "nginx static":
        port = free_port()
        sha = write_tree(root, f"http://127.0.0.1:{port}", SIZE)
        conf = nginx_conf(d, root, port)
        with process([tool("nginx"), "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")], d, port):
            yield Server(f"http://127.0.0.1:{port}", sha)
    else:
        mode = name.split()[0]
        sha = write_tree(root, "BASE", SIZE, "/download/" + IMAGE if mode == "redirect" else "/" + IMAGE)
        extra = []
        if mode == "tls":
            ca_key, ca = make_ca("p19 private CA")
            key, cert = make_server_cert(ca_key, ca, ["localhost"], ["127.0.0.1"])
            (d / "ca.pem").write_bytes(pem_cert(ca))
            (d / "server.pem").write_bytes(pem_cert(cert))
            (d / "server.key").write_bytes(pem_key(key))
            extra = [str(d / "server.pem"), str(d / "server.key")]
        with process([sys.executable, str(SERVER_PY), mode, str(root), *extra], d) as addr:
            yield Server(addr["base"], sha, str(d / "ca.pem") if mode == "tls" else None)


def probe(server: Server, uri: str = URI, **kw):
    t0 = time.monotonic()
    p = run_probe(server.base, uri, parallel=2, deadline=DEADLINE, timeout=TIMEOUT, **kw)
    took = time.monotonic() - t0
    assert took < 2 * DEADLINE + 5, f"the probe ran {took:.0f} s, past its pulls' deadlines"
    return p


def storm(server, d: Path, uri: str = URI, worker_name: str = "p19-worker", **kw):
    """A storm of 4 pulls by 2 users on one worker: the master here (labkit storm --master), the worker beside it.
    `server`: any with `base` and `cacert` (this file's, or test_foreign_oci's OCI servers with uri and api=oci)."""
    port = free_port()
    spec = StormSpec(**{"users": 2, "pulls": 4, "timeout": TIMEOUT, "deadline": DEADLINE, **kw}).check()
    worker = LocustProcess("locust-worker", worker_name, None, d / "worker.log",
                           ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)])
    t0 = time.monotonic()
    try:
        worker.start()
        s = run_master(server.base, uri, spec, 1, d / "storm", bind="127.0.0.1", port=port, cacert=server.cacert)
    finally:
        worker.stop()
    assert time.monotonic() - t0 < spec.bound_s()
    row = s.row()
    assert row["pulls"] == 4 and row["harness_failures"] == 0 and s.missing == 0, (row, s.failures())
    return s, row


def storm_words(row: dict) -> str:
    fails = {k[5:]: v for k, v in row.items() if k.startswith("fail_") and v}
    return f"{row['ok']}/{row['pulls']} ok" + (f", failed: {fails}" if fails else "") + \
        f", harness {row['harness_failures']}"


def record(server: str, probe_said: str, storm_said: str) -> None:
    TABLE.append({"server": server, "probe": probe_said, "storm": storm_said})


def good(p) -> None:
    pulls = p.table[p.table.kind == "pull"]
    assert p.verdict.kind != FAILED and (pulls.failures == 0).all() and pulls.verified.all(), p.verdict
    assert all(r["ok"] and r["bytes"] == SIZE for r in p.pulls)


@pytest.fixture
def tmp(tmp_path_factory, request):
    return tmp_path_factory.mktemp("p19-" + request.node.name[:40].replace("[", "-").replace(" ", "-").strip("]"))


@pytest.mark.parametrize("name, http, label", [
    ("python http.server", "HTTP/1.0 close", "python http.server (HTTP/1.0, close)"),
    ("nginx static", "HTTP/1.1 keep-alive", "nginx 1.22 static files (HTTP/1.1 keep-alive)"),
])
def test_a_plain_file_server_whatever_http_it_speaks(tmp, name, http, label):
    with serving(name, tmp) as srv:
        p = probe(srv)
        good(p)
        assert {r["http"] for r in p.pulls} == {http} and {r["check"] for r in p.pulls} == {"sha256"}
        assert p.facts.data_segs_in > 0 and not p.facts.missing      # tcp_info read, also where http.client let go
        s, row = storm(srv, tmp)
        assert row["ok"] == 4
    record(label, p.verdict.kind, storm_words(row))


def test_a_redirect_to_another_host_is_followed_only_when_allowed(tmp):
    with serving("redirect", tmp) as srv:
        refused = probe(srv)
        assert refused.verdict.kind == FAILED and "give --follow-hosts" in refused.facts.errors
        assert all(r["kind"] == "http" and [h["status"] for h in r["hops"]] == [301, 307] for r in refused.pulls)
        p = probe(srv, follow_hosts=True)
        good(p)
        hops = p.pulls[0]["hops"]
        assert [(h["host"].split(":")[0], h["status"]) for h in hops] == \
            [("127.0.0.1", 301), ("127.0.0.1", 307), ("127.0.0.2", 200)] and all(h["ms"] >= 0 for h in hops)
        assert any(n.startswith("redirects followed: ") for n in p.notes)
        s, row = storm(srv, tmp, follow_hosts=True)
        assert row["ok"] == 4 and all(len(h) == 3 for h in s.pulls.hops)
        s2, row2 = storm(srv, tmp)
        assert row2["fail_http"] == 4
    record("redirect 301 -> 307 to another host", f"without --follow-hosts: {refused.verdict.kind} (307 to "
           f"127.0.0.2 refused, named); with: {p.verdict.kind}, 3 hops",
           f"--follow-hosts: {storm_words(row)}; without: {storm_words(row2)}")


def test_chunked_bodies_are_checked_by_sha256_or_reported_unverified(tmp):
    with serving("chunked", tmp) as srv:
        p = probe(srv)
        good(p)
        assert {r["http"] for r in p.pulls} == {"HTTP/1.1 keep-alive chunked"} and {r["check"] for r in p.pulls} == {"sha256"}
        loose = probe(srv, NOSHA_URI)
        assert loose.verdict.kind != FAILED and {r["check"] for r in loose.pulls} == {"unverified"}
        assert "not verified" in str(loose.verdict)
        s, row = storm(srv, tmp)
        assert row["ok"] == 4
    record("chunked, no Content-Length", f"{p.verdict.kind} (sha256); no sha256 in the manifest: unverified, said",
           storm_words(row))


def test_tls_with_a_private_ca(tmp, monkeypatch, capsys):
    from labkit.cli import main
    with serving("tls private CA", tmp) as srv:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        with pytest.raises(TlsVerifyError, match="certificate verify failed"):
            probe(srv)
        p = probe(srv, cacert=srv.cacert)
        good(p)
        assert {r["tls"].split()[0] for r in p.pulls} <= {"TLSv1.2", "TLSv1.3"} and all(r["tls"] for r in p.pulls)
        assert any(f"checked against {srv.cacert} (--cacert)" in n for n in p.notes)
        monkeypatch.setenv("SSL_CERT_FILE", srv.cacert)
        by_env = probe(srv)
        good(by_env)
        assert any("(SSL_CERT_FILE)" in n for n in by_env.notes)
        monkeypatch.delenv("SSL_CERT_FILE")
        rc = main(["probe", srv.base, URI, "--parallel", "1", "--insecure", "--deadline", str(DEADLINE)])
        out = capsys.readouterr().out
        assert rc == 0 and out.count(INSECURE) >= 2 and "INSECURE" in out.split("\n\n")[-2]   # banner, note, verdict
        s, row = storm(srv, tmp)
        assert row["ok"] == 4 and all(t.startswith("TLSv1.") for t in s.pulls.tls)
    record("TLS, private CA", f"no CA: refused (certificate verify failed); --cacert / SSL_CERT_FILE: "
           f"{p.verdict.kind}, {p.pulls[0]['tls']}; --insecure: said loudly", f"--cacert: {storm_words(row)}")


@pytest.mark.parametrize("name, kind, words", [
    ("stall mid-body", "timeout", f"the server sent nothing for {TIMEOUT:g} s after 2097152 of 4194304 bytes"),
    ("close-early", "short body", "the server ended the body after 2097152 of 4194304 bytes"),
    ("wrong-length", "checksum", "sha256 mismatch: 4193304 of 4193304 bytes arrived"),
])
def test_a_misbehaving_server_is_named_in_the_verdict_and_counted_by_kind(tmp, name, kind, words):
    with serving(name, tmp) as srv:
        p = probe(srv)
        assert p.verdict.kind == FAILED and words in p.verdict.summary, p.verdict
        assert {r["kind"] for r in p.pulls} == {kind}
        s, row = storm(srv, tmp)
        assert row[f"fail_{kind.replace(' ', '_')}"] == 4, row
    record(name, f"{FAILED}: {words}", storm_words(row))


@pytest.fixture(scope="module", autouse=True)
def the_table(request):
    """After this file's tests, whatever order they ran in: the table of what each server got (no test of its
    own: each row's claims are asserted by the test that recorded it)."""
    yield
    term = request.config.pluginmanager.get_plugin("terminalreporter")
    if TABLE and term is not None:
        w = max(len(r["server"]) for r in TABLE)
        term.write_line("")
        for r in TABLE:
            term.write_line(f"{r['server']:<{w}} | {r['probe']} | {r['storm']}")
