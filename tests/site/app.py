"""The test site's views, URLs and WSGI/ASGI applications."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

import django_claude  # noqa: E402


def ask(request: HttpRequest) -> JsonResponse:
    result = django_claude.call(request.GET.get("q", "hello"), feature="site")
    return JsonResponse({"outcome": result.outcome, "request_id": str(result.request_id)})


async def aask(request: HttpRequest) -> JsonResponse:
    result = await django_claude.acall(request.GET.get("q", "hello"), feature="site")
    return JsonResponse({"outcome": result.outcome, "request_id": str(result.request_id)})


urlpatterns = [path("ask/", ask), path("aask/", aask)]

wsgi = get_wsgi_application()
asgi = get_asgi_application()
