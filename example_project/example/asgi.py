"""The example site as an ASGI app: ``uvicorn example.asgi:application`` (what
``make demo`` serves), so the async views stream without blocking a thread.

With DEBUG on, static files (the admin's CSS, django-claude's admin.css) are
served too, as runserver would; in production a web server or WhiteNoise does it.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

from example.otel import configure  # noqa: E402

configure()  # traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set

application: ASGIHandler | ASGIStaticFilesHandler = get_asgi_application()
if settings.DEBUG:
    application = ASGIStaticFilesHandler(application)
