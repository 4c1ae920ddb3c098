"""Views refuse a spent quota with 429 and Retry-After before they run:
the ``claude_quota`` decorator (sync and async) and DRF's throttle."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

import django_claude
from django_claude import shared_cache
from django_claude.client.allowance import claude_quota
from django_claude.contrib.drf import ClaudeQuotaThrottle

MODEL = "claude-opus-5"


@pytest.fixture
def hourly(claude, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = MODEL
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    settings.DJANGO_CLAUDE_QUOTAS = {
        "free-hourly": {"per": "user", "window": "hour", "calls": 1, "feature": "chat"}
    }
    claude.usage = {"input_tokens": 10, "output_tokens": 5}
    return claude


class User:
    """A signed-in user as the auth middleware leaves it on the request."""

    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


ran: list[str] = []


@claude_quota("chat")
def chat_view(request):
    ran.append("sync")
    return HttpResponse(django_claude.call("hi", feature="chat", user=request.user).text)


@claude_quota("chat")
async def async_chat_view(request):
    ran.append("async")
    return HttpResponse("ok")


def get(user) -> object:
    request = RequestFactory().get("/chat/")
    request.user = user
    return request


def test_the_decorator_answers_429_once_the_quota_is_spent(hourly):
    ran.clear()
    assert chat_view(get(User(1))).status_code == 200
    refused = chat_view(get(User(1)))
    assert refused.status_code == 429 and ran == ["sync"]  # the view did not run
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert refused.content.decode() == django_claude.conf.conf.LIMITED_MESSAGE
    assert chat_view(get(User(2))).status_code == 200  # another user
    # Anonymous users are not under a per-user quota.
    assert chat_view(get(AnonymousUser())).status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_decorator_works_on_async_views(hourly):
    ran.clear()
    django_claude.call("spend it", feature="chat", user="7")
    refused = asyncio.run(async_chat_view(get(User(7))))
    assert refused.status_code == 429 and ran == []
    assert asyncio.run(async_chat_view(get(User(8)))).status_code == 200


def test_the_decorator_refuses_while_the_cache_is_down(hourly, settings):
    settings.CACHES = {**settings.CACHES, "broken": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    settings.DJANGO_CLAUDE_CACHE = "broken"
    shared_cache.reset()
    try:
        refused = chat_view(get(User(1)))
        assert refused.status_code == 429 and refused["Retry-After"] == "5"
        settings.DJANGO_CLAUDE_QUOTAS_WHEN_CACHE_DOWN = "allow"
        assert chat_view(get(User(1))).status_code == 200
    finally:
        settings.DJANGO_CLAUDE_CACHE = "default"
        shared_cache.reset()


class ChatAPI(APIView):
    claude_feature = "chat"
    throttle_classes = [ClaudeQuotaThrottle]
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        return Response({"text": django_claude.call("hi", feature="chat", user="api-1").text})


def test_the_drf_throttle_answers_429_with_retry_after(hourly):
    factory = APIRequestFactory()

    def ask():
        request = factory.get("/api/chat/")
        return ChatAPI.as_view()(request)

    def ask_as(pk):
        request = factory.get("/api/chat/")
        force_authenticate(request, user=User(pk))
        return ChatAPI.as_view()(request)

    assert ask_as("api-1").status_code == 200
    refused = ask_as("api-1")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert ask_as("api-2").status_code == 200
    assert ask().status_code == 200  # anonymous: not under a per-user quota
