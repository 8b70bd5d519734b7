import hashlib
import json
from wsgiref.util import setup_testing_defaults

import pytest

from labkit.lab.images import ensure_image, load_catalog
from labkit.registry.app import make_app

# sregistry's SingleContainerSerializer fields (shub/apps/api/urls/containers.py)
SREGISTRY_FIELDS = {"id", "name", "image", "tag", "add_date", "metrics", "version", "frozen", "metadata", "collection"}


class FileWrapper:
    def __init__(self, fh, chunk):
        self.fh, self.chunk = fh, chunk

    def __iter__(self):
        while block := self.fh.read(self.chunk):
            yield block


def call(app, path, **extra):
    env = {"PATH_INFO": path, "HTTP_HOST": "registry.test:8080", **extra}
    setup_testing_defaults(env)
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(env, start_response))
    return got["status"], got["headers"], body


@pytest.fixture()
def images(tmp_path):
    img = ensure_image(tmp_path, 100_003)
    return tmp_path, img


def test_image_is_made_once_with_its_sha256(images):
    d, img = images
    data = (d / img.file).read_bytes()
    assert len(data) == 100_003 and hashlib.sha256(data).hexdigest() == img.sha256
    assert ensure_image(d, 100_003) == img          # reused, not rewritten
    assert load_catalog(d) == [img]


def test_manifest_has_sregistrys_shape(images):
    d, img = images
    status, headers, body = call(make_app(d), f"/api/container/{img.uri}")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    man = json.loads(body)
    assert set(man) == SREGISTRY_FIELDS
    assert man["image"] == f"http://registry.test:8080/containers/{img.id}/download/{img.secret}"
    assert (man["collection"], man["name"], man["tag"], man["version"]) == (img.collection, img.name, img.tag, img.sha256)


@pytest.mark.parametrize("mode", ["stream", "file_wrapper"])
def test_download_serves_the_file(images, mode):
    d, img = images
    status, headers, body = call(make_app(d, mode, 4096), f"/containers/{img.id}/download/{img.secret}",
                                 **{"wsgi.file_wrapper": FileWrapper})
    assert status == "200 OK" and int(headers["Content-Length"]) == img.size
    assert hashlib.sha256(body).hexdigest() == img.sha256


def test_accel_mode_hands_the_file_to_nginx(images):
    d, img = images
    status, headers, body = call(make_app(d, "accel"), f"/containers/{img.id}/download/{img.secret}")
    assert status == "200 OK" and headers["X-Accel-Redirect"] == f"/_protected/{img.file}" and body == b""


@pytest.mark.parametrize("path,status", [
    ("/api/container/library/nothere:latest", "404 Not Found"),
    ("/containers/1/download/wrongsecret", "404 Not Found"),
    ("/containers/99/download/x", "404 Not Found"),
    ("/api/container/../../etc/passwd:latest", "400 Bad Request"),
    ("/api/container/library/..:latest", "400 Bad Request"),
    ("/api/container/library/a\x00b:latest", "400 Bad Request"),
    ("/api/container/libr$ry/x:latest", "400 Bad Request"),
    ("/containers/1/download/../../../etc/passwd", "400 Bad Request"),
    ("/", "404 Not Found"),
])
def test_unknown_and_traversal_are_refused_with_json(images, path, status):
    d, _ = images
    got, headers, body = call(make_app(d), path)
    assert got == status and "detail" in json.loads(body)


def test_unknown_serve_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="serve mode 'teleport'"):
        make_app(tmp_path, "teleport")
