"""The site's views: one question to Claude, through django-claude or the bare SDK.

``/call/`` and ``/acall/`` use ``django_claude.call`` / ``acall``; ``/sdk/``
and ``/asdk/`` the ``anthropic`` SDK's ``Anthropic`` / ``AsyncAnthropic``
(one client per process, ``max_retries=0``), against the same API. Each
answers ``{"outcome": ..., "text": ...}``; ``?tag=`` becomes the call's
feature, so a benchmark can count the records of one run.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.site.settings")

import anthropic  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

import django_claude  # noqa: E402

MODEL = "claude-sonnet-4-6"
PROMPT = "Summarise this support ticket: the printer on floor 3 prints blank pages."

_sdk = anthropic.Anthropic(
    api_key=settings.DJANGO_CLAUDE_API_KEY, base_url=settings.DJANGO_CLAUDE_BASE_URL, max_retries=0
)
_asdk = anthropic.AsyncAnthropic(
    api_key=settings.DJANGO_CLAUDE_API_KEY, base_url=settings.DJANGO_CLAUDE_BASE_URL, max_retries=0
)


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, anthropic.types.TextBlock))


def call(request: HttpRequest) -> JsonResponse:
    result = django_claude.call(PROMPT, feature=request.GET.get("tag", "site"))
    return JsonResponse({"outcome": result.outcome, "text": result.text})


async def acall(request: HttpRequest) -> JsonResponse:
    result = await django_claude.acall(PROMPT, feature=request.GET.get("tag", "site"))
    return JsonResponse({"outcome": result.outcome, "text": result.text})


def sdk(request: HttpRequest) -> JsonResponse:
    message = _sdk.messages.create(
        model=MODEL, max_tokens=600, messages=[{"role": "user", "content": PROMPT}], timeout=20.0
    )
    return JsonResponse({"outcome": "ok", "text": text_of(message)})


async def asdk(request: HttpRequest) -> JsonResponse:
    message = await _asdk.messages.create(
        model=MODEL, max_tokens=600, messages=[{"role": "user", "content": PROMPT}], timeout=20.0
    )
    return JsonResponse({"outcome": "ok", "text": text_of(message)})


urlpatterns = [path("call/", call), path("acall/", acall), path("sdk/", sdk), path("asdk/", asdk)]

wsgi = get_wsgi_application()
asgi = get_asgi_application()
