"""Django settings for the lab's registry: no database, no sessions, no auth, JSON only.

The registry's data is the JSON catalog that labkit.app.catalog writes, so Django needs no models;
DRF is told not to reach for django.contrib.auth (UNAUTHENTICATED_USER None, no authentication
or permission classes). The serving options are not settings: the views read them from uwsgi's
ini (or the environment) through labkit.app.read_options.
"""
from __future__ import annotations

# Signs nothing (no sessions, cookies or CSRF forms); Django only insists that one exists.
SECRET_KEY = "servelab-lab-registry-signs-nothing"
DEBUG = False
ALLOWED_HOSTS = ["*"]  # the lab reaches the app by namespace addresses and published ports
ROOT_URLCONF = "labkit.app.urls"
INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE = ["labkit.app.views.refuse_traversal"]
DATABASES: dict = {}
USE_TZ = True
APPEND_SLASH = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [],
}

# Under uwsgi stderr is uwsgi's log: a view's traceback belongs there (Django's default logs
# django.request errors to the console only when DEBUG is on).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
