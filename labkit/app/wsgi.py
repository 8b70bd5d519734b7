"""The WSGI entry point uwsgi loads (`module = labkit.app.wsgi:application`)."""
from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from . import SETTINGS_MODULE, read_options

os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
read_options()  # a missing catalog or bad serve mode stops uwsgi's app load, not each request
application = get_wsgi_application()
