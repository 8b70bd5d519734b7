"""The registry (labkit.app) through Django's test client, in each serve mode (the real uwsgi:
tests/integration/test_registry_app_uwsgi.py)."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from wsgiref.util import setup_testing_defaults

import pytest
import yaml

from labkit.app.catalog import Image, ensure_image, load_catalog
from labkit.app import SERVE_MODES, read_options, uwsgi_app_options

from ..registry_cases import OPENAPI, REFUSED, download_url

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labkit.app.django_settings")
import django  # noqa: E402

django.setup()
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.test import Client  # noqa: E402

# sregistry's SingleContainerSerializer fields, in its order (shub/apps/api/urls/containers.py)
SREGISTRY_FIELDS = ["id", "name", "image", "tag", "add_date", "metrics", "version", "frozen", "metadata", "collection"]
HOST = "registry.test:8080"

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
    assert lines[:5] == [("module", "labkit.app.wsgi:application"),
                         ("env", "DJANGO_SETTINGS_MODULE=labkit.app.django_settings"),
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
