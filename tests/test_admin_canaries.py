"""A route's canary in the admin: the arms side by side, and each action
behind a confirmation page, a POST, a CSRF token and its own permission."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

import django_claude
from django_claude.models import Canary, ModelRoute, ModelRouteChange
from django_claude.routing import serving_route, set_route, start_canary, stop_canary
from django_claude.testing import flush_pending

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


@pytest.fixture
def route(db):
    set_route(feature="support", model=SONNET, fallback_model=HAIKU)
    return ModelRoute.objects.get(feature="support")


def staff(client: Client, django_user_model, *codenames: str) -> Client:
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_modelroute", *codenames])
    )
    client.force_login(user)
    return client


def url(route: ModelRoute, action: str | None = None) -> str:
    if action is None:
        return reverse("admin:django_claude_modelroute_change", args=[route.pk])
    return reverse("admin:django_claude_modelroute_canary", args=[route.pk, action])


@pytest.mark.parametrize("action", ["start", "percent", "promote", "stop"])
def test_every_action_needs_the_canary_permission(client, django_user_model, route, action):
    if action != "start":
        start_canary(feature="support", model=OPUS, percent=10)
    client = staff(client, django_user_model, "change_modelroute", "rollback_modelroute")
    assert client.get(url(route, action)).status_code == 403
    data = {"model": OPUS, "percent": "20", "reason": "no"}
    assert client.post(url(route, action), data).status_code == 403
    running = Canary.objects.filter(ended_at__isnull=True)
    assert running.count() == (0 if action == "start" else 1)
    page = client.get(url(route)).content.decode()
    assert "claude-canary-stop" not in page and "claude-canary-start" not in page


def test_an_unknown_action_is_a_404(admin_client, route):
    assert admin_client.get(url(route, "explode")).status_code == 404


def test_start_change_promote_from_the_admin(client, django_user_model, route):
    client = staff(client, django_user_model, "canary_modelroute")
    page = client.get(url(route)).content.decode()
    assert "No canary is running on this route." in page and 'id="claude-canary-start"' in page
    confirm = client.get(url(route, "start")).content.decode()
    assert 'name="model"' in confirm and 'name="percent"' in confirm
    assert "csrfmiddlewaretoken" in confirm
    # GET changes nothing; POST with a bad share re-shows the form.
    assert not Canary.objects.exists()
    bad = client.post(url(route, "start"), {"model": OPUS, "percent": "0", "reason": "x"})
    assert bad.status_code == 200 and not Canary.objects.exists()
    same = client.post(url(route, "start"), {"model": SONNET, "percent": "5", "reason": "x"})
    assert "already serves this route" in same.content.decode()
    done = client.post(url(route, "start"), {"model": OPUS, "percent": "10", "reason": "try"})
    assert done.status_code == 302 and done["Location"] == url(route)
    canary = Canary.objects.get(ended_at__isnull=True)
    assert (canary.model, canary.percent, canary.started_by.username) == (OPUS, 10, "ops")

    page = client.get(url(route)).content.decode()
    assert 'id="claude-canary-arms"' in page and "Promote claude-opus-4-7" in page
    shown = {"canary_id": canary.pk}
    assert client.post(url(route, "percent"), {**shown, "percent": "0.01"}).status_code == 302
    canary.refresh_from_db()
    assert canary.percent == Decimal("0.01")
    assert client.post(url(route, "percent"), {**shown, "percent": "40"}).status_code == 302
    canary.refresh_from_db()
    assert canary.percent == 40
    confirm = client.get(url(route, "promote")).content.decode()
    assert "claude-canary-arms" in confirm and 'name="model"' not in confirm
    assert client.post(url(route, "promote"), {**shown, "reason": "better"}).status_code == 302
    assert ModelRoute.objects.get(feature="support").model == OPUS
    actions = list(
        ModelRouteChange.objects.filter(canary=canary).values_list("canary_action", flat=True)
    )
    assert sorted(actions) == ["percent", "percent", "promote", "start"]
    assert LogEntry.objects.filter(user__username="ops").count() == 4
    page = client.get(url(route)).content.decode()
    assert "Earlier canaries" in page and "promoted" in page


def test_actions_on_a_route_without_a_canary_say_so(admin_client, route):
    response = admin_client.post(url(route, "stop"), {"canary_id": 1}, follow=True)
    assert "This route has no canary running." in response.content.decode()


def test_csrf_is_enforced(django_user_model, route):
    client = Client(enforce_csrf_checks=True)
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    start_canary(feature="support", model=OPUS, percent=10)
    canary = Canary.objects.get()
    assert client.post(url(route, "stop"), {"canary_id": canary.pk}).status_code == 403
    assert Canary.objects.filter(ended_at__isnull=True).exists()


def test_the_arms_table_says_what_the_guard_sees(admin_client, fake_anthropic, settings, route):
    settings.DJANGO_CLAUDE_CANARY_MIN_CALLS = 20
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    set_route(feature="support", model=SONNET)
    fake_anthropic.always(OPUS, 500)
    start_canary(feature="support", model=OPUS, percent=50)
    rng = random.Random(4)
    for _ in range(80):
        django_claude.call("hi", feature="support", user=f"u{rng.randrange(10_000)}")
    flush_pending()
    page = admin_client.get(url(route)).content.decode()
    table = page[page.index('id="claude-canary-arms"') :]
    row = table[table.index('data-measure="failure rate"') :]
    row = row[: row.index("</tr>")]
    assert "0.0%" in row and "100.0%" in row and "worse, p = " in row
    fallback_row = table[table.index('data-measure="fallback rate"') :]
    assert "no evidence of a difference" in fallback_row[: fallback_row.index("</tr>")]


def test_the_dashboard_marks_canary_starts_and_stops(admin_client, claude, route):
    start_canary(feature="support", model=OPUS, percent=10, reason="try")
    django_claude.call("hi", feature="support", user="u1")
    stop_canary(feature="support", reason="enough")
    page = admin_client.get(reverse("admin:django_claude_dashboard")).content.decode()
    assert "canary started: claude-opus-4-7 at 10.00%" in page
    assert "canary stopped: claude-opus-4-7, everyone on claude-sonnet-4-6" in page
    markers = [line for line in page.splitlines() if "claude-marker" in line]
    assert any("canary started" in line for line in markers)
    assert any("canary stopped" in line for line in markers)


def test_the_history_names_the_guard(admin_client, route):
    canary = start_canary(feature="support", model=OPUS, percent=10)
    stop_canary(feature="support", canary_id=canary.pk, automatic=True, reason="worse")
    page = admin_client.get(url(route)).content.decode()
    assert "django-claude" in page and "canary stopped by django-claude" in page
    assert serving_route("support", "user:x").arm == ""


def test_the_route_list_shows_running_canaries(admin_client, route):
    set_route(feature="other", model=HAIKU)
    start_canary(feature="support", model=OPUS, percent="12.5")
    page = admin_client.get(reverse("admin:django_claude_modelroute_changelist")).content.decode()
    assert "claude-opus-4-7 (12.50%)" in page


@pytest.mark.parametrize("action", ["percent", "promote", "stop"])
def test_a_page_acts_only_on_the_canary_it_showed(admin_client, route, action):
    shown = start_canary(feature="support", model=OPUS, percent=10)
    page = admin_client.get(url(route, action)).content.decode()
    assert f'name="canary_id" value="{shown.pk}"' in page
    # Meanwhile the guard stops it and someone starts another.
    stop_canary(feature="support", canary_id=shown.pk, automatic=True, reason="worse")
    other = start_canary(feature="support", model=HAIKU, percent=10)
    response = admin_client.post(
        url(route, action), {"canary_id": shown.pk, "percent": "50", "reason": "x"}, follow=True
    )
    assert "That canary is not running" in response.content.decode()
    other.refresh_from_db()
    assert other.running and other.percent == 10
    assert ModelRoute.objects.get(feature="support").model == SONNET


def test_the_rollback_page_warns_that_it_stops_a_running_canary(admin_client, route):
    set_route(feature="support", model=OPUS, fallback_model=HAIKU)
    start_canary(feature="support", model=HAIKU, percent=10)
    rollback_url = reverse("admin:django_claude_modelroute_rollback", args=[route.pk])
    page = admin_client.get(rollback_url).content.decode()
    assert 'id="claude-rollback-stops-canary"' in page and url(route, "stop") in page
