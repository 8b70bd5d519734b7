"""What each serve mode implies, said once.

The registry app (which response it sends, which image URL its manifest names), uwsgi's ini
(whether its file wrapper stays on), nginx's server block (the X-Accel-Redirect location), the
bundle's README and the declared path (which stages carry the image) all read it here instead
of comparing the mode's name.

    fileresponse       Django's FileResponse, as sregistry ships it; uwsgi's wsgi.file_wrapper sendfile()s it.
    fileresponse-iter  the same view with uwsgi's file wrapper switched off, so Django iterates block_size reads.
    accel              the view answers with X-Accel-Redirect: ACCEL_PREFIX<file>; nginx sends the file.
    nginx-alias        the manifest's image URL is nginx's ALIAS_PREFIX<file> (sregistry's `location /images`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ACCEL_PREFIX = "/_protected/"     # accel: the app's X-Accel-Redirect names a file below nginx's internal location
ALIAS_PREFIX = "/images/"         # nginx-alias: sregistry's `location /images { alias /var/www/images; }`


@dataclass(frozen=True)
class ServeMode:
    name: str
    text: str
    file_wrapper: bool = True     # uwsgi's wsgi.file_wrapper stays on (off: Django iterates the file itself)
    accel: bool = False           # the app answers with X-Accel-Redirect: nginx needs the internal location
    alias: bool = False           # the manifest's image URL is nginx's alias: the app never sees the download

    @property
    def app_sends_image(self) -> bool:
        """The app's response carries the image (else nginx reads the file: uwsgi sends a header or nothing)."""
        return not (self.accel or self.alias)


SERVE_MODES: dict[str, ServeMode] = {m.name: m for m in (
    ServeMode("fileresponse", "Django's FileResponse, as sregistry ships it; uwsgi's wsgi.file_wrapper sendfile()s it"),
    ServeMode("fileresponse-iter", "the same view with uwsgi's file wrapper off: Django iterates block_size reads",
              file_wrapper=False),
    ServeMode("accel", f"the view answers with X-Accel-Redirect: {ACCEL_PREFIX}<file>; nginx sends the file",
              accel=True),
    ServeMode("nginx-alias", f"the manifest's image URL is nginx's {ALIAS_PREFIX}<file> (sregistry's location /images)",
              alias=True),
)}


def modes_where(test: Callable[[ServeMode], bool]) -> tuple[str, ...]:
    """The names of the serve modes for which `test` holds, in declaration order."""
    return tuple(name for name, m in SERVE_MODES.items() if test(m))
