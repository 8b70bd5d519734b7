"""The registry app under the real uwsgi, started from the ini lines labkit.app.uwsgi_app_options
gives, on 127.0.0.1: pull through it, read uwsgi's own log and the worker's /proc/<pid>/io to see
whether the file went out by sendfile(), and run schemathesis against it from openapi.yaml."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

import labkit
from labkit.app import uwsgi_app_options
from labkit.app.catalog import Image, ensure_image

from ..registry_cases import OPENAPI, REFUSED, download_url


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PULL_SIZE = 32 * 1024**2
CHUNK = 4096


@dataclass
class Uwsgi:
    """One running uwsgi (master + one worker) serving the registry on 127.0.0.1:port."""
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def worker(self) -> psutil.Process:
        return psutil.Process(self.proc.pid).children()[0]

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """A GET with the path sent as it is (http.client does not resolve dot segments)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()


def _uwsgi_binary() -> str:
    beside = Path(sys.executable).with_name("uwsgi")
    return str(beside) if beside.exists() else shutil.which("uwsgi") or "uwsgi"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the master (die-on-term: it stops its worker), then SIGKILL any of them still there, by pid."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for p in family[1:]:
        try:
            p.wait(timeout=5)
        except psutil.TimeoutExpired:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def running_uwsgi(workdir: Path, catalog: Path, mode: str) -> Iterator[Uwsgi]:
    """uwsgi with the app's ini lines and a lab-like rest (master, 1 process, 1 thread, http-socket)."""
    port = _free_port()
    ini, log = workdir / f"uwsgi-{mode}.ini", workdir / f"uwsgi-{mode}.log"
    lines = [("master", "true"), ("processes", "1"), ("threads", "1"), ("die-on-term", "true"),
             ("http-socket", f"127.0.0.1:{port}"), *uwsgi_app_options(str(catalog), mode, CHUNK)]
    ini.write_text("[uwsgi]\n" + "".join(f"{k} = {v}\n" for k, v in lines))
    # uwsgi imports the same labkit that this test imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(labkit.__file__).parents[1]),
                                                                      os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as out:
        proc = subprocess.Popen([_uwsgi_binary(), "--ini", str(ini)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    server = Uwsgi(proc, port, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uwsgi exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if server.get("/api/openapi.yaml")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uwsgi did not answer in 20 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Image, dict[str, Uwsgi]]]:
    """One uwsgi per mode for the module, each stopped at the end whatever happened."""
    workdir = tmp_path_factory.mktemp("registry")
    img = ensure_image(workdir, PULL_SIZE, tag="latest")
    servers: dict[str, Uwsgi] = {}
    with running_uwsgi(workdir, workdir / "catalog.json", "fileresponse") as a, \
            running_uwsgi(workdir, workdir / "catalog.json", "fileresponse-iter") as b:
        servers.update({"fileresponse": a, "fileresponse-iter": b})
        yield img, servers


def _syscr(p: psutil.Process) -> int:
    """Read syscalls the process made so far (/proc/<pid>/io): sendfile() counts as one read per call."""
    return int(re.search(r"^syscr: (\d+)$", Path(f"/proc/{p.pid}/io").read_text(), re.M)[1])


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["fileresponse", "fileresponse-iter"])
def test_pull_through_uwsgi(live: tuple[Image, dict[str, Uwsgi]], mode: str) -> None:
    """The manifest leads to the image, whose sha256 is right; uwsgi says whether it used sendfile().

    The evidence is uwsgi's own: its request log line ends "via sendfile()" only when the file
    wrapper sent the file, and its "switches" count is one per chunk the app yielded; the
    worker's read-syscall count grows by about size/4096 when Django iterates, by far less with sendfile.
    """
    img, servers = live
    uw = servers[mode]
    status, _, body = uw.get(f"/api/container/{img.uri}")
    assert status == 200
    url = json.loads(body)["image"]
    assert url == f"http://127.0.0.1:{uw.port}{download_url(img)}"
    before = _syscr(uw.worker)
    t0 = time.perf_counter()
    status, headers, data = uw.get(download_url(img))
    seconds = time.perf_counter() - t0
    reads = _syscr(uw.worker) - before
    assert status == 200 and headers["Content-Type"] == "application/img"
    assert int(headers["Content-Length"]) == img.size and sha256(data) == img.sha256
    line = next(ln for ln in reversed(uw.log.read_text().splitlines()) if f"GET {download_url(img)} " in ln)
    switches = int(re.search(r"\((\d+) switches", line)[1])
    blocks = img.size // CHUNK
    print(f"{mode}: {img.size / seconds / 1e6:.0f} MB/s, {reads} read syscalls, {switches} switches: {line}")
    if mode == "fileresponse":
        assert "via sendfile()" in line and reads < blocks / 10
    else:
        # one switch per block at least (a loaded machine adds a few), one read syscall per block
        assert "via sendfile()" not in line and switches >= blocks and reads >= blocks


@pytest.mark.integration
def test_traversal_and_bad_names_refused_by_live_app(live: tuple[Image, dict[str, Uwsgi]]) -> None:
    _, servers = live
    for path, status in REFUSED:
        got, headers, body = servers["fileresponse"].get(path)
        assert (got, headers["Content-Type"]) == (status, "application/json"), path
        assert "detail" in json.loads(body)


@pytest.mark.integration
def test_schemathesis_finds_no_server_error(live: tuple[Image, dict[str, Uwsgi]], tmp_path: Path) -> None:
    """schemathesis from openapi.yaml: valid and invalid names (negative mode), no 5xx, answers as described."""
    _, servers = live
    uw = servers["fileresponse"]
    report = tmp_path / "schemathesis.json"
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
              "response_schema_conformance,negative_data_rejection")
    st = Path(sys.executable).with_name("st")
    run = subprocess.run([str(st), "run", str(OPENAPI), "--url", f"http://127.0.0.1:{uw.port}", "--checks", checks,
                          "--mode", "all", "--max-examples", "50", "--seed", "1", "--workers", "1",
                          "--request-timeout", "10", "--report", "json", "--report-json-path", str(report)],
                         capture_output=True, text=True, timeout=45, stdin=subprocess.DEVNULL,
                         cwd=tmp_path)  # its example database goes in .schemathesis/ here, not in the checkout
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(f"schemathesis: {cases['generated']} cases, {cases['with_failures']} with failures, "
          f"{cases['errored']} errored")
    assert run.returncode == 0, run.stdout[-4000:]
    assert result["operations"]["tested"] == 3 and cases["generated"] > 100
    assert cases["with_failures"] == 0 and cases["errored"] == 0
    assert not re.search(r"\(HTTP/1\.1 5\d\d\)", uw.log.read_text())
