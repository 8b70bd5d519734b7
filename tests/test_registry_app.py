"""The registry (labkit.registry): Django's test client for each serve mode, then the real uwsgi.

The integration tests start uwsgi from the ini lines labkit.registry.uwsgi_app_options gives,
on 127.0.0.1, pull through it, read uwsgi's own log and the worker's /proc/<pid>/io to see
whether the file went out by sendfile(), and run schemathesis against it from openapi.yaml.
"""
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
from types import SimpleNamespace
from wsgiref.util import setup_testing_defaults

import psutil
import pytest
import yaml

import labkit
from labkit.registry.catalog import Image, ensure_image, load_catalog
from labkit.registry import SERVE_MODES, read_options, uwsgi_app_options

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labkit.registry.settings")
import django  # noqa: E402

django.setup()
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.test import Client  # noqa: E402

OPENAPI = Path(labkit.__file__).parent / "registry" / "openapi.yaml"
# sregistry's SingleContainerSerializer fields, in its order (shub/apps/api/urls/containers.py)
SREGISTRY_FIELDS = ["id", "name", "image", "tag", "add_date", "metrics", "version", "frozen", "metadata", "collection"]
HOST = "registry.test:8080"

# (path, status): unknown things are 404, traversal, NUL and bad names are 400; all answer JSON.
REFUSED = [
    ("/api/container/library/nothere:latest", 404),
    ("/containers/1/download/wrongsecret", 404),
    ("/containers/99/download/x", 404),
    ("/", 404),
    ("/api/container/../../etc/passwd:latest", 400),
    ("/api/container/library/..:latest", 400),
    ("/api/container/library/a%00b:latest", 400),
    ("/api/container/libr$ry/x:latest", 400),
    ("/api/container/library/-x:latest", 400),
    ("/containers/1/download/../../../etc/passwd", 400),
    ("/containers/1/download/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
    ("/api/container/x/../library/servelab:latest", 400),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Image:
    """A 100,003-byte image tagged latest, its catalog named to the app by environment (as outside uwsgi)."""
    img = ensure_image(tmp_path, 100_003, tag="latest")
    monkeypatch.setenv("SERVELAB_CATALOG", str(tmp_path / "catalog.json"))
    return img


@pytest.fixture(params=SERVE_MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SERVELAB_SERVE_MODE", request.param)
    return request.param


def download_url(img: Image) -> str:
    return f"/containers/{img.id}/download/{img.secret}"


# --- the app, through Django's test client -------------------------------------------------

def test_image_is_made_once_with_its_sha256(tmp_path: Path) -> None:
    img = ensure_image(tmp_path, 100_003)
    data = (tmp_path / img.file).read_bytes()
    assert len(data) == 100_003 and sha256(data) == img.sha256
    assert ensure_image(tmp_path, 100_003) == img          # reused, not rewritten
    assert load_catalog(tmp_path) == [img]


def test_manifest_has_sregistrys_fields_in_order(image: Image, mode: str) -> None:
    r = Client().get(f"/api/container/{image.uri}", HTTP_HOST=HOST)
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    man = r.json()
    assert list(man) == SREGISTRY_FIELDS
    assert (man["id"], man["collection"], man["name"], man["tag"], man["version"], man["frozen"]) == \
        (image.id, image.collection, image.name, image.tag, image.sha256, False)
    assert man["metadata"] == {"size": image.size} and man["metrics"] == {}
    path = f"/images/{image.file}" if mode == "nginx-alias" else download_url(image)
    assert man["image"] == f"http://{HOST}{path}"


@pytest.mark.parametrize("mode", ["fileresponse", "fileresponse-iter", "nginx-alias"], indirect=True)
def test_download_is_sregistrys_fileresponse(image: Image, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVELAB_CHUNK_SIZE", "1000")
    r = Client().get(download_url(image))
    assert r.status_code == 200
    assert r["Content-Type"] == "application/img"
    assert r["Content-Disposition"] == f"attachment; filename={image.file}"
    assert int(r["Content-Length"]) == image.size
    chunks = list(r.streaming_content)
    assert len(chunks[0]) == 1000                      # FileResponse.block_size is the chunk size option
    assert sha256(b"".join(chunks)) == image.sha256


@pytest.mark.parametrize("mode", ["accel"], indirect=True)
def test_accel_hands_the_file_to_nginx(image: Image, mode: str) -> None:
    r = Client().get(download_url(image))
    assert r.status_code == 200 and r.content == b""
    assert r["X-Accel-Redirect"] == f"/_protected/{image.file}"
    assert r["Content-Type"] == "application/img"
    assert r["Content-Disposition"] == f"attachment; filename={image.file}"


@pytest.mark.parametrize("path,status", REFUSED)
def test_unknown_traversal_and_bad_names_are_refused_with_json(image: Image, path: str, status: int) -> None:
    r = Client().get(path)
    assert r.status_code == status and r["Content-Type"] == "application/json"
    assert set(r.json()) == {"detail"}
    if status == 404:
        assert r.json() == {"detail": "Not found."}


def test_django_hands_the_open_file_to_wsgi_file_wrapper(image: Image, monkeypatch: pytest.MonkeyPatch) -> None:
    """What fileresponse relies on: given a wsgi.file_wrapper, Django's handler passes it the file itself."""
    monkeypatch.setenv("SERVELAB_CHUNK_SIZE", "65536")
    handed = []

    def file_wrapper(filelike, block_size):
        handed.append((filelike, block_size))
        return [filelike.read()]

    env = {"PATH_INFO": download_url(image), "wsgi.file_wrapper": file_wrapper}
    setup_testing_defaults(env)
    body = b"".join(WSGIHandler()(env, lambda status, headers: None))
    (filelike, block_size), = handed
    assert Path(filelike.name).name == image.file and block_size == 65536 and sha256(body) == image.sha256


def test_openapi_description_is_served(image: Image) -> None:
    r = Client().get("/api/openapi.yaml")
    assert r.status_code == 200 and r["Content-Type"] == "application/yaml"
    spec = yaml.safe_load(r.content)
    assert r.content == OPENAPI.read_bytes() and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/api/container/{collection}/{name}:{tag}",
                                  "/containers/{cid}/download/{secret}", "/api/openapi.yaml"}
    assert spec["components"]["schemas"]["Manifest"]["required"] == SREGISTRY_FIELDS


# --- options and the uwsgi ini -------------------------------------------------------------

@pytest.mark.parametrize("mode", SERVE_MODES)
def test_uwsgi_ini_lines(mode: str) -> None:
    lines = uwsgi_app_options("/srv/images/catalog.json", mode, 8192)
    assert lines[:5] == [("module", "labkit.registry.wsgi:application"),
                         ("env", "DJANGO_SETTINGS_MODULE=labkit.registry.settings"),
                         ("servelab-catalog", "/srv/images/catalog.json"),
                         ("servelab-serve-mode", mode),
                         ("servelab-chunk-size", "8192")]
    assert lines[5:] == ([("wsgi-disable-file-wrapper", "true")] if mode == "fileresponse-iter" else [])


def test_options_come_from_uwsgi_opt_under_uwsgi(monkeypatch: pytest.MonkeyPatch) -> None:
    """uwsgi.opt holds bytes, and a list when the ini repeats a key (the last one wins)."""
    opt = {"servelab-catalog": b"/srv/catalog.json", "servelab-serve-mode": [b"accel", b"fileresponse-iter"],
           "servelab-chunk-size": b"65536"}
    monkeypatch.setitem(sys.modules, "uwsgi", SimpleNamespace(opt=opt))
    monkeypatch.setenv("SERVELAB_SERVE_MODE", "accel")       # not read under uwsgi
    o = read_options()
    assert (o.catalog, o.images_dir, o.serve_mode, o.chunk_size) == \
        (Path("/srv/catalog.json"), Path("/srv"), "fileresponse-iter", 65536)


def test_bad_options_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="serve mode 'teleport'"):
        uwsgi_app_options("/x/catalog.json", "teleport", 4096)
    monkeypatch.delenv("SERVELAB_CATALOG", raising=False)
    with pytest.raises(ValueError, match="SERVELAB_CATALOG"):
        read_options()
    monkeypatch.setenv("SERVELAB_CATALOG", "/x/catalog.json")
    monkeypatch.setenv("SERVELAB_CHUNK_SIZE", "0")
    with pytest.raises(ValueError, match="chunk size 0"):
        read_options()


# --- the real uwsgi --------------------------------------------------------------------------

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
