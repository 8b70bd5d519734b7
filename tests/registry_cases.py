"""Requests the registry app must refuse, and its URLs: shared by the unit (Django's test client) and the
integration (the real uwsgi) tests of labkit.app."""
from pathlib import Path

import labkit
from labkit.app.catalog import Image

OPENAPI = Path(labkit.__file__).parent / "app" / "openapi.yaml"

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


def download_url(img: Image) -> str:
    return f"/containers/{img.id}/download/{img.secret}"
