"""The registry under uwsgi: sregistry's pull API and image download, served three ways.

    GET /api/container/<collection>/<name>:<tag>   -> JSON manifest shaped like sregistry's
                                                      SingleContainerSerializer
    GET /containers/<id>/download/<secret>         -> the image file

Serving (ini key servelab-serve-mode): `stream` a Python generator of servelab-chunk-size reads
(Django's FileResponse style), `file_wrapper` uwsgi's wsgi.file_wrapper, `accel` an
X-Accel-Redirect that lets nginx send the file from its `internal` location.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..lab.images import load_catalog

MANIFEST = re.compile(r"^/api/container/(?P<collection>[^/]+)/(?P<name>[^/:]+):(?P<tag>[^/]+?)/?$")
DOWNLOAD = re.compile(r"^/containers/(?P<cid>\d+)/download/(?P<secret>[^/]+?)/?$")
SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ACCEL_PREFIX = "/_protected/"


def _json(start_response, status: str, body: dict):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _stream(path: Path, chunk: int):
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            yield block


def manifest(img, base_url: str) -> dict:
    return {"id": img.id, "name": img.name, "image": f"{base_url}/containers/{img.id}/download/{img.secret}",
            "tag": img.tag, "add_date": img.add_date, "metrics": {}, "version": img.sha256,
            "frozen": False, "metadata": {"size": img.size}, "collection": img.collection}


def make_app(images_dir: Path, serve_mode: str = "stream", chunk_size: int = 4096):
    images_dir = Path(images_dir).resolve()
    if serve_mode not in ("stream", "file_wrapper", "accel"):
        raise ValueError(f"serve mode {serve_mode!r}: use stream, file_wrapper or accel")

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if any(part in ("..", ".") for part in path.split("/")) or "\x00" in path:
            return _json(start_response, "400 Bad Request", {"detail": "invalid path"})
        catalog = load_catalog(images_dir)
        if m := MANIFEST.match(path):
            if not all(SAFE.match(v) for v in m.groupdict().values()):
                return _json(start_response, "400 Bad Request", {"detail": "invalid container name"})
            found = [i for i in catalog if (i.collection, i.name, i.tag) == (m["collection"], m["name"], m["tag"])]
            if not found:
                return _json(start_response, "404 Not Found", {"detail": "Not found."})
            scheme = environ.get("wsgi.url_scheme", "http")
            host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
            return _json(start_response, "200 OK", manifest(found[0], f"{scheme}://{host}"))
        if m := DOWNLOAD.match(path):
            found = [i for i in catalog if i.id == int(m["cid"]) and i.secret == m["secret"]]
            if not found:
                return _json(start_response, "404 Not Found", {"detail": "Not found."})
            img = found[0]
            file = (images_dir / img.file).resolve()
            if file.parent != images_dir:
                return _json(start_response, "400 Bad Request", {"detail": "invalid path"})
            headers = [("Content-Type", "application/octet-stream"),
                       ("Content-Disposition", f'attachment; filename="{img.collection}-{img.name}-{img.tag}.sif"')]
            if serve_mode == "accel":
                start_response("200 OK", [*headers, ("X-Accel-Redirect", ACCEL_PREFIX + img.file)])
                return [b""]
            start_response("200 OK", [*headers, ("Content-Length", str(img.size))])
            if serve_mode == "file_wrapper" and "wsgi.file_wrapper" in environ:
                return environ["wsgi.file_wrapper"](open(file, "rb"), chunk_size)
            return _stream(file, chunk_size)
        return _json(start_response, "404 Not Found", {"detail": "Not found."})

    return app


def _from_uwsgi_options():
    """Under uwsgi, the app's options come from the ini (servelab-* keys, in uwsgi.opt)."""
    try:
        import uwsgi  # only importable inside uwsgi
    except ImportError:
        return None

    def opt(key: str, default: str) -> str:
        value = uwsgi.opt.get(key, default)
        return value.decode() if isinstance(value, bytes) else value

    catalog = opt("servelab-catalog", "")
    return make_app(Path(catalog).parent, opt("servelab-serve-mode", "stream"),
                    int(opt("servelab-chunk-size", "4096"))) if catalog else None


application = _from_uwsgi_options()
