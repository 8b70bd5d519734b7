"""The registry's URLs: sregistry's pull API shape, plus the OpenAPI description of it.

Names are captured loosely here and checked in the views, so a bad name is a 400, not a 404.
"""
from __future__ import annotations

from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^api/container/(?P<collection>[^/]+)/(?P<name>[^/:]+):(?P<tag>[^/]+?)/?$",
            views.ManifestView.as_view(), name="container_manifest"),
    re_path(r"^containers/(?P<cid>\d+)/download/(?P<secret>[^/]+?)/?$",
            views.download_container, name="download_container"),
    re_path(r"^api/openapi\.yaml$", views.openapi, name="openapi"),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error
