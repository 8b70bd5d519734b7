"""The lab's registry: a small Django project, served by uwsgi as sregistry's is.

This module is import-light on purpose (no Django): the lab imports it to write uwsgi's ini,
and the app imports it to read back what the ini said. Both sides of that contract, the
servelab-* option keys, live here once.

    GET /api/container/<collection>/<name>:<tag>   JSON manifest, sregistry's SingleContainerSerializer fields
    GET /containers/<id>/download/<secret>         the image (FileResponse, or X-Accel-Redirect in accel mode)
    GET /api/openapi.yaml                          the OpenAPI 3 description of the two above
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config.modes import ACCEL_PREFIX, ALIAS_PREFIX, SERVE_MODES

__all__ = ["ACCEL_PREFIX", "ALIAS_PREFIX", "SERVE_MODES", "AppOptions", "uwsgi_app_options", "read_options"]
# How the image leaves the registry, and what each serve mode implies: labkit.config.modes.
SETTINGS_MODULE = "labkit.app.django_settings"
WSGI_MODULE = "labkit.app.wsgi:application"
DEFAULT_CHUNK_SIZE = 4096  # Django's FileResponse.block_size

# AppOptions field -> its uwsgi ini key; outside uwsgi the key's env_name() is read instead
# (servelab-serve-mode -> SERVELAB_SERVE_MODE).
OPTION_KEYS = {"catalog": "servelab-catalog", "serve_mode": "servelab-serve-mode",
               "chunk_size": "servelab-chunk-size"}


@dataclass(frozen=True)
class AppOptions:
    """What the app needs from its host: the catalog file, the serve mode, FileResponse's block size."""
    catalog: Path
    serve_mode: str = "fileresponse"
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if self.serve_mode not in SERVE_MODES:
            raise ValueError(f"serve mode {self.serve_mode!r}: use one of {', '.join(SERVE_MODES)}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk size {self.chunk_size}: must be at least 1 byte")

    @property
    def images_dir(self) -> Path:
        """The images sit beside their catalog (labkit.app.catalog writes both)."""
        return self.catalog.parent


def uwsgi_app_options(catalog: str, serve_mode: str, chunk_size: int) -> list[tuple[str, str]]:
    """The uwsgi ini lines (key, value) that load this Django app with these options.

    For a mode without uwsgi's file wrapper (fileresponse-iter) the last line turns it off, so Django's
    handler finds none and iterates the FileResponse itself; every other mode keeps uwsgi's default.
    """
    AppOptions(Path(catalog), serve_mode, chunk_size)  # refuse what the app would refuse, now
    lines = [("module", WSGI_MODULE),
             ("env", f"DJANGO_SETTINGS_MODULE={SETTINGS_MODULE}"),
             (OPTION_KEYS["catalog"], str(catalog)),
             (OPTION_KEYS["serve_mode"], serve_mode),
             (OPTION_KEYS["chunk_size"], str(chunk_size))]
    if not SERVE_MODES[serve_mode].file_wrapper:
        lines.append(("wsgi-disable-file-wrapper", "true"))
    return lines


def env_name(key: str) -> str:
    """The environment variable that stands for a uwsgi option outside uwsgi: servelab-catalog -> SERVELAB_CATALOG."""
    return key.upper().replace("-", "_")


def _option(key: str) -> str | None:
    """One servelab-* option: from uwsgi.opt under uwsgi, else from the environment."""
    try:
        import uwsgi  # importable only inside a uwsgi process
    except ImportError:
        return os.environ.get(env_name(key))
    value = uwsgi.opt.get(key)
    if isinstance(value, list):  # a key given twice: uwsgi keeps all, the last one wins here
        value = value[-1]
    return value.decode() if isinstance(value, bytes) else value


def read_options() -> AppOptions:
    """The app's options as its host gave them; ValueError if the catalog is missing or a value is bad."""
    catalog = _option(OPTION_KEYS["catalog"])
    if not catalog:
        raise ValueError(f"no catalog: set {OPTION_KEYS['catalog']} in uwsgi's ini "
                         f"(or {env_name(OPTION_KEYS['catalog'])} outside uwsgi)")
    return AppOptions(Path(catalog), _option(OPTION_KEYS["serve_mode"]) or "fileresponse",
                      int(_option(OPTION_KEYS["chunk_size"]) or DEFAULT_CHUNK_SIZE))
