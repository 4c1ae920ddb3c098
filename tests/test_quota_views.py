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
from tests.conftest import away_from_a_window_edge

MODEL = "claude-opus-5"


@pytest.fixture
def hourly(claude, settings):
    away_from_a_window_edge()  # (a call after the top of the hour starts a fresh window)
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


# -- the admin page ------------------------------------------------------------------------


def test_the_admin_page_shows_each_quota_and_its_heaviest_users(admin_client, hourly, settings):
    from django.urls import reverse

    from django_claude.testing import Fault, rate_limit_headers

    settings.DJANGO_CLAUDE_QUOTAS = {
        **settings.DJANGO_CLAUDE_QUOTAS,
        "user-daily": {"per": "user", "window": "day", "usd": "2"},
        "site-minute": {"window": "minute", "tokens": 1000},
    }
    hourly.script(MODEL, [Fault(headers=rate_limit_headers(requests_remaining=41, reset_in=30))])
    from django_claude.client import ratelimits

    ratelimits._last_written.clear()
    for user, times in (("heavy", 3), ("light", 1)):
        for _ in range(times):
            django_claude.call("hi", feature="search", user=user)
    page = admin_client.get(reverse("admin:django_claude_quotas")).content.decode()
    quotas = page.split('id="claude-quotas"')[1].split('id="claude-rate-limits"')[0]
    assert "free-hourly" in quotas and "user-daily" in quotas and "site-minute" in quotas
    daily = quotas.split("user-daily")[1].split("site-minute")[0]
    assert daily.index("<td>heavy</td>") < daily.index("<td>light</td>")  # heaviest first
    assert "<td>$0.000525</td>" in daily  # 3 calls of 10 in, 5 out at $5/$25 per million
    minute = quotas.split("site-minute")[1]
    assert "<td>60</td><td>6.0%</td>" in minute  # 4 calls of 15 tokens, of 1,000
    limits = page.split('id="claude-rate-limits"')[1]
    assert MODEL in limits and ">41<" in limits and ">50<" in limits
    assert "alice" not in page


def test_the_admin_page_needs_the_view_permission(client, django_user_model, db):
    from django.urls import reverse

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:django_claude_quotas")).status_code == 403


def test_the_admin_page_lists_the_heaviest_tenants(admin_client, hourly, settings):
    from django.urls import reverse

    from django_claude.models import CallRecord

    settings.DJANGO_CLAUDE_QUOTAS = {"org": {"per": "tenant", "window": "month", "calls": 10}}
    for tenant, times in (("acme", 2), ("globex", 3)):
        for _ in range(times):
            django_claude.call("hi", feature="chat", tenant=tenant)
    assert set(CallRecord.objects.values_list("tenant", flat=True)) == {"acme", "globex"}
    page = admin_client.get(reverse("admin:django_claude_quotas")).content.decode()
    org = page.split('id="claude-quotas"')[1].split('id="claude-rate-limits"')[0]
    assert org.index("<td>globex</td>") < org.index("<td>acme</td>")
    assert "<td>globex</td><td>3</td><td>30.0%</td>" in org
