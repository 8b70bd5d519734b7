"""The registry's views: sregistry's manifest (a DRF view) and its download (a plain Django view).

The catalog is re-read on every request, so an image the lab makes while uwsgi runs is served
without a restart; it is a small JSON file.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .catalog import Image, load_catalog
from . import ACCEL_PREFIX, ALIAS_PREFIX, SERVE_MODES, AppOptions, read_options

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
OPENAPI = Path(__file__).with_name("openapi.yaml")
IMAGE_TYPE = "application/img"  # what sregistry's _download_container sends


class ContainerSerializer(serializers.Serializer):
    """sregistry's SingleContainerSerializer, field for field and in its order, over a catalog Image.

    `image` is the absolute download URL the view puts in the context; `version` is the sha256.
    """
    id = serializers.IntegerField()
    name = serializers.CharField()
    image = serializers.SerializerMethodField()
    tag = serializers.CharField()
    add_date = serializers.CharField()
    metrics = serializers.JSONField(default=dict)
    version = serializers.CharField(source="sha256")
    frozen = serializers.BooleanField(default=False)
    metadata = serializers.SerializerMethodField()
    collection = serializers.CharField()

    def get_image(self, img: Image) -> str:
        return self.context["image_url"]

    def get_metadata(self, img: Image) -> dict:
        return {"size": img.size}


def _find(opts: AppOptions, match: Callable[[Image], bool]) -> Image | None:
    return next((img for img in load_catalog(opts.images_dir) if match(img)), None)


def _image_path(img: Image, serve_mode: str) -> str:
    """Where the manifest sends the puller: nginx's alias in nginx-alias mode, else the app's download."""
    if SERVE_MODES[serve_mode].alias:
        return ALIAS_PREFIX + img.file
    return reverse("download_container", kwargs={"cid": img.id, "secret": img.secret})


class ManifestView(APIView):
    """GET /api/container/<collection>/<name>:<tag>: the container's manifest, or 400/404 as JSON."""

    def get(self, request: Request, collection: str, name: str, tag: str) -> Response:
        if not all(SAFE_NAME.match(part) for part in (collection, name, tag)):
            raise ParseError("invalid container name")
        opts = read_options()
        img = _find(opts, lambda i: (i.collection, i.name, i.tag) == (collection, name, tag))
        if img is None:
            raise NotFound()
        url = request.build_absolute_uri(_image_path(img, opts.serve_mode))
        return Response(ContainerSerializer(img, context={"image_url": url}).data)


def download_container(request: HttpRequest, cid: str, secret: str) -> HttpResponse:
    """GET /containers/<id>/download/<secret>: the image, as sregistry's _download_container sends it.

    A FileResponse (uwsgi's file wrapper sendfile()s it when it has one, else Django reads it in
    block_size chunks), or in accel mode an empty answer whose X-Accel-Redirect has nginx send it.
    """
    opts = read_options()
    img = _find(opts, lambda i: i.id == int(cid) and i.secret == secret)
    if img is None:
        return not_found(request)
    images_dir = opts.images_dir.resolve()
    path = (images_dir / img.file).resolve()
    if path.parent != images_dir:  # a catalog entry naming a file elsewhere
        return detail("invalid path", 400)
    if SERVE_MODES[opts.serve_mode].accel:
        response = HttpResponse(content_type=IMAGE_TYPE)
        response["X-Accel-Redirect"] = ACCEL_PREFIX + img.file
    else:
        response = FileResponse(open(path, "rb"), content_type=IMAGE_TYPE)
        response.block_size = opts.chunk_size
    response["Content-Disposition"] = f"attachment; filename={img.file}"
    return response


def openapi(request: HttpRequest) -> HttpResponse:
    """GET /api/openapi.yaml: the OpenAPI 3 description of the pull API."""
    return HttpResponse(OPENAPI.read_bytes(), content_type="application/yaml")


def _traverses(path: str) -> bool:
    return "\x00" in path or any(seg in (".", "..") for seg in path.split("/"))


def refuse_traversal(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Middleware: 400 for a '.' or '..' path segment or a NUL, before any URL is matched.

    Both PATH_INFO and the raw REQUEST_URI (percent-decoded) are checked: uwsgi's HTTP parser
    resolves dot segments in PATH_INFO itself, so /a/../b would otherwise reach the views as /b.
    """
    def middleware(request: HttpRequest) -> HttpResponse:
        raw = unquote(request.META.get("REQUEST_URI", "").split("?", 1)[0])
        if _traverses(request.path_info) or _traverses(raw):
            return detail("invalid path", 400)
        return get_response(request)
    return middleware


def detail(message: str, status: int) -> JsonResponse:
    """An error as DRF renders one ({"detail": ...}, compact JSON), for the views outside DRF."""
    return JsonResponse({"detail": message}, status=status, json_dumps_params={"separators": (",", ":")})


# Django's own error pages are HTML; the registry answers JSON everywhere, as DRF does.
def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return detail("Bad request.", 400)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return detail("Not found.", 404)


def server_error(request: HttpRequest) -> JsonResponse:
    return detail("Server error.", 500)
