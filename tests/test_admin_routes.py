"""The model-route switch in the admin: permissions, rollback, CSRF, audit."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import django_claude
from django_claude.models import CallRecord, ModelRoute, ModelRouteChange
from django_claude.routing import Route, active_route, rollback, set_route
from django_claude.types import Outcome, SmellVerdict

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"

ROLES = {
    "superuser": None,
    "staff_change": ["view_modelroute", "change_modelroute"],
    "staff_rollback": ["view_modelroute", "rollback_modelroute"],
    "staff_view": ["view_modelroute"],
    "not_staff": ["view_modelroute", "change_modelroute", "rollback_modelroute"],
}


@pytest.fixture
def route(db):
    set_route(feature="support", model=SONNET, fallback_model=HAIKU)
    set_route(feature="support", model=OPUS, fallback_model=HAIKU, reason="try opus")
    return ModelRoute.objects.get(feature="support")


def login(client: Client, django_user_model, role: str) -> Client:
    perms = ROLES[role]
    if perms is None:
        user = django_user_model.objects.create_superuser(role, f"{role}@example.com", "pw")
    else:
        user = django_user_model.objects.create_user(
            role, password="pw", is_staff=(role != "not_staff")
        )
        user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client.force_login(user)
    return client


def urls(route: ModelRoute) -> dict[str, str]:
    return {
        "changelist": reverse("admin:django_claude_modelroute_changelist"),
        "change": reverse("admin:django_claude_modelroute_change", args=[route.pk]),
        "rollback": reverse("admin:django_claude_modelroute_rollback", args=[route.pk]),
        "history": reverse("admin:django_claude_modelroutechange_changelist"),
        "add": reverse("admin:django_claude_modelroute_add"),
    }


# role -> expected status for GET of each page
GET_MATRIX = {
    "superuser": {"changelist": 200, "change": 200, "rollback": 200, "history": 200, "add": 200},
    "staff_change": {"changelist": 200, "change": 200, "rollback": 403, "history": 403, "add": 403},
    "staff_rollback": {
        "changelist": 200,
        "change": 200,
        "rollback": 200,
        "history": 403,
        "add": 403,
    },
    "staff_view": {"changelist": 200, "change": 200, "rollback": 403, "history": 403, "add": 403},
    "not_staff": {"changelist": 302, "change": 302, "rollback": 302, "history": 302, "add": 302},
}


@pytest.mark.parametrize("role", list(ROLES))
def test_get_permission_matrix(client, django_user_model, route, role):
    login(client, django_user_model, role)
    for page, url in urls(route).items():
        response = client.get(url)
        assert response.status_code == GET_MATRIX[role][page], (role, page)
        if response.status_code == 302:
            assert "/login/" in response["Location"]


@pytest.mark.parametrize(
    ("role", "sees_rollback", "sees_save"),
    [
        ("superuser", True, True),
        ("staff_change", False, True),
        ("staff_rollback", True, False),
        ("staff_view", False, False),
    ],
)
def test_buttons_follow_permissions(
    client, django_user_model, route, role, sees_rollback, sees_save
):
    login(client, django_user_model, role)
    page = client.get(urls(route)["change"]).content.decode()
    assert ("Roll back to claude-sonnet-4-6" in page) is sees_rollback
    assert ('name="_save"' in page) is sees_save
    assert "try opus" in page  # the history is shown read-only to everyone who can view
    listing = client.get(urls(route)["changelist"]).content.decode()
    assert ('value="rollback_selected"' in listing) is sees_rollback


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("superuser", True),
        ("staff_change", False),
        ("staff_rollback", True),
        ("staff_view", False),
        ("not_staff", False),
    ],
)
def test_rollback_post(client, django_user_model, route, role, allowed):
    login(client, django_user_model, role)
    response = client.post(urls(route)["rollback"], {"reason": "opus misbehaves"})
    assert response.status_code == (302 if allowed or role == "not_staff" else 403)
    assert active_route("support").model == (SONNET if allowed else OPUS)
    if allowed:
        undo = ModelRouteChange.objects.latest("id")
        assert undo.is_rollback and undo.reason == "opus misbehaves"
        assert undo.changed_by.username == role
        assert LogEntry.objects.filter(user__username=role).exists()


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("superuser", True),
        ("staff_change", True),
        ("staff_rollback", False),
        ("staff_view", False),
        ("not_staff", False),
    ],
)
def test_edit_post(client, django_user_model, route, role, allowed):
    login(client, django_user_model, role)
    response = client.post(
        urls(route)["change"],
        {
            "model": "claude-opus-4-8",
            "fallback_model": HAIKU,
            "reason": "newer opus",
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code in ((302,) if allowed else (302, 403))
    assert (active_route("support").model == "claude-opus-4-8") is allowed
    if allowed:
        change = ModelRouteChange.objects.latest("id")
        assert (change.old_model, change.new_model, change.reason) == (
            OPUS,
            "claude-opus-4-8",
            "newer opus",
        )
        entries = LogEntry.objects.filter(user__username=role)
        assert entries.count() == 1  # one LogEntry per flip, with the reason
        assert "newer opus" in entries.get().change_message


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("superuser", True),
        ("staff_change", False),
        ("staff_rollback", True),
        ("staff_view", False),
        ("not_staff", False),
    ],
)
def test_rollback_action(client, django_user_model, route, role, allowed):
    set_route(feature="search", model=SONNET, fallback_model=HAIKU)
    set_route(feature="search", model=HAIKU, fallback_model=SONNET)
    login(client, django_user_model, role)
    selected = [str(r.pk) for r in ModelRoute.objects.all()]
    url = urls(route)["changelist"]
    confirm = client.post(url, {"action": "rollback_selected", "_selected_action": selected})
    if allowed:
        assert confirm.status_code == 200
        assert b"claude-opus-4-7" in confirm.content and b"Yes, roll back" in confirm.content
        assert active_route("support").model == OPUS  # nothing happens before confirming
    elif role == "not_staff":
        assert confirm.status_code == 302 and "/login/" in confirm["Location"]
    else:
        assert confirm.status_code == 403
    client.post(
        url,
        {
            "action": "rollback_selected",
            "_selected_action": selected,
            "post": "yes",
            "reason": "bulk",
        },
    )
    assert (active_route("support").model == SONNET) is allowed
    assert (active_route("search").model == SONNET) is allowed


def test_rollback_confirmation_page_says_what_changes(admin_client, route):
    page = admin_client.get(urls(route)["rollback"]).content.decode()
    assert "claude-opus-4-7" in page and "claude-sonnet-4-6" in page
    assert 'name="reason"' in page and "csrfmiddlewaretoken" in page
    assert active_route("support").model == OPUS  # a GET changes nothing


def test_nothing_to_roll_back(admin_client, db):
    route = ModelRoute.objects.create(feature="fresh", model=SONNET, fallback_model=HAIKU)
    page = admin_client.get(urls(route)["rollback"]).content.decode()
    assert "no change left to roll back" in page
    response = admin_client.post(urls(route)["rollback"], {"reason": "x"}, follow=True)
    assert b"nothing to undo" in response.content or b"no history" in response.content


def test_csrf_is_enforced(django_user_model, route):
    client = Client(enforce_csrf_checks=True)
    login(client, django_user_model, "superuser")
    assert client.post(urls(route)["rollback"], {"reason": "x"}).status_code == 403
    assert active_route("support").model == OPUS
    response = client.post(
        urls(route)["change"],
        {"model": HAIKU, "fallback_model": SONNET, "changes-TOTAL_FORMS": "0"},
    )
    assert response.status_code == 403
    assert active_route("support").model == OPUS


def test_add_and_validation_in_the_form(admin_client, db):
    add = reverse("admin:django_claude_modelroute_add")
    same = admin_client.post(add, {"feature": "chat", "model": OPUS, "fallback_model": OPUS})
    assert same.status_code == 200 and b"must be a different model" in same.content
    unpriced = admin_client.post(
        add, {"feature": "chat", "model": "claude-next-1", "fallback_model": HAIKU}
    )
    assert unpriced.status_code == 200 and b"has no price" in unpriced.content
    assert not ModelRoute.objects.exists()
    confirmed = admin_client.post(
        add,
        {
            "feature": "chat",
            "model": "claude-next-1",
            "fallback_model": HAIKU,
            "allow_unpriced": "on",
            "reason": "preview",
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        },
    )
    assert confirmed.status_code == 302
    assert active_route("chat").model == "claude-next-1"
    assert ModelRouteChange.objects.get().reason == "preview"


def test_history_and_routes_cannot_be_deleted_or_edited(admin_client, route):
    change = ModelRouteChange.objects.first()
    assert change is not None
    delete_change = reverse("admin:django_claude_modelroutechange_delete", args=[change.pk])
    assert admin_client.post(delete_change, {"post": "yes"}).status_code == 403
    delete_route = reverse("admin:django_claude_modelroute_delete", args=[route.pk])
    assert admin_client.post(delete_route, {"post": "yes"}).status_code == 403
    edit_change = reverse("admin:django_claude_modelroutechange_change", args=[change.pk])
    admin_client.post(edit_change, {"new_model": "hacked"})
    assert ModelRouteChange.objects.get(pk=change.pk).new_model != "hacked"
    assert ModelRouteChange.objects.count() == 2


def test_changelist_shows_evidence_since_the_last_change(claude, admin_client, route):
    django_claude.call("hi", feature="support")
    claude.script(OPUS, [529] * 4)
    django_claude.call("hi", feature="support")
    claude.always(OPUS, 529)
    claude.always(HAIKU, 529)
    django_claude.call("hi", feature="support")
    page = admin_client.get(urls(route)["changelist"]).content.decode()
    assert "33.3%" in page  # 1 of 3 calls fell back, 1 of 3 degraded
    assert '<td class="field-calls_since_change">3</td>' in page


def record(feature: str, at: datetime.datetime, outcome: str = Outcome.OK, **fields) -> None:
    CallRecord.objects.create(
        created_at=at,
        feature=feature,
        model_requested=SONNET,
        model=SONNET,
        outcome=outcome,
        **fields,
    )


def cells(page: str, column: str) -> list[str]:
    """The changelist's cells of one ``list_display`` column, top to bottom."""
    return re.findall(rf'<td class="field-{column}">(.*?)</td>', page)


def test_evidence_columns_count_each_routes_calls_since_its_change(admin_client, db):
    set_route(feature="", model=SONNET, fallback_model=HAIKU)
    set_route(feature="support", model=OPUS, fallback_model=HAIKU)
    support = ModelRoute.objects.get(feature="support")
    after, before = timezone.now(), support.updated_at - datetime.timedelta(hours=1)
    record("support", before, Outcome.DEGRADED)  # before the change: not evidence
    record("support", after, smell_verdict=SmellVerdict.PASS)
    record("support", after, smell_verdict=SmellVerdict.FAIL)
    record("support", after, Outcome.FALLBACK, smell_verdict=SmellVerdict.PASS)
    record("support", after, Outcome.DEGRADED, smell_verdict=SmellVerdict.ERROR)
    record("chat", after, Outcome.FALLBACK)  # no route of its own: the default route's
    record("chat", after, smell_verdict=SmellVerdict.PENDING)

    page = admin_client.get(reverse("admin:django_claude_modelroute_changelist")).content
    page_text = page.decode()
    # rows in feature order: the default route, then support
    assert cells(page_text, "calls_since_change") == ["2", "4"]
    assert cells(page_text, "fallback_rate") == ["50.0%", "25.0%"]
    assert cells(page_text, "degraded_rate") == ["0.0%", "25.0%"]
    assert cells(page_text, "smell_pass_rate") == ["—", "66.7%"]


def changelist_queries(client: Client, routes: int) -> int:
    """Queries for the route list once there are ``routes`` routes, each with calls."""
    for i in range(ModelRoute.objects.count(), routes):
        set_route(feature=f"feature-{i}", model=OPUS, fallback_model=HAIKU)
        record(f"feature-{i}", timezone.now(), Outcome.FALLBACK, smell_verdict=SmellVerdict.PASS)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:django_claude_modelroute_changelist"))
    assert cells(response.content.decode(), "fallback_rate") == ["100.0%"] * routes
    return len(queries)


def test_route_changelist_queries_do_not_grow_with_its_rows(admin_client, db):
    assert changelist_queries(admin_client, 1) == changelist_queries(admin_client, 8)


def test_route_change_list_reads_at_a_glance(admin_client, django_user_model, db):
    oncall = django_user_model.objects.create_user("oncall", password="pw", is_staff=True)
    set_route(feature="support", model=SONNET, fallback_model=HAIKU, user=oncall, reason="launch")
    set_route(feature="support", model=OPUS, fallback_model=HAIKU, user=oncall, reason="<b>try</b>")
    rollback(feature="support", user=oncall, reason="opus too slow")
    page = admin_client.get(reverse("admin:django_claude_modelroutechange_changelist"))
    text = page.content.decode()
    switch = cells(text, "switch")
    assert switch[0] == (
        f'<span class="claude-model">{OPUS}</span> → <span class="claude-model">{SONNET}</span>'
    )
    assert cells(text, "kind") == ["rollback", "change, undone", "change"]
    assert "&lt;b&gt;try&lt;/b&gt;" in text
    changed = re.findall(r'<th class="field-changed"><a [^>]*>(.*?)</a></th>', text)
    assert len(changed) == 3 and all(
        re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d by oncall", c) for c in changed
    )


# -- rolling back a selection where some routes have nothing to undo ------------------


def select_for_rollback(client: Client, routes: list[ModelRoute], **extra: str):
    return client.post(
        reverse("admin:django_claude_modelroute_changelist"),
        {"action": "rollback_selected", "_selected_action": [str(r.pk) for r in routes], **extra},
        follow=bool(extra),
    )


def test_bulk_rollback_with_nothing_to_roll_back_offers_no_confirm(admin_client, db):
    fresh = ModelRoute.objects.create(feature="fresh", model=SONNET, fallback_model=HAIKU)
    set_route(feature="undone", model=OPUS, fallback_model=HAIKU)
    rollback(feature="undone")  # its only change is undone already
    undone = ModelRoute.objects.get(feature="undone")
    page = select_for_rollback(admin_client, [fresh, undone])
    text = page.content.decode()
    assert page.status_code == 200
    assert "Nothing to roll back" in text and "fresh" in text and "undone" in text
    assert "Yes, roll back" not in text and 'name="post"' not in text
    # even a forged confirmation changes nothing
    history = ModelRouteChange.objects.count()
    done = select_for_rollback(admin_client, [fresh, undone], post="yes", reason="x")
    assert ModelRouteChange.objects.count() == history
    assert active_route("fresh").model == SONNET and active_route("undone").model == SONNET
    assert b"Nothing to roll back, left as they are: fresh, undone" in done.content
    assert b"Rolled back" not in done.content


def test_bulk_rollback_rolls_back_only_the_routes_that_can(admin_client, route):
    fresh = ModelRoute.objects.create(feature="fresh", model=HAIKU, fallback_model=SONNET)
    page = select_for_rollback(admin_client, [fresh, route]).content.decode()
    plan = page.split('id="claude-rollback-plan"', 1)[1].split("</table>", 1)[0]
    unchanged = page.split('id="claude-rollback-unchanged"', 1)[1].split("</ul>", 1)[0]
    assert "support" in plan and OPUS in plan and SONNET in plan and "fresh" not in plan
    assert "fresh" in unchanged and "support" not in unchanged
    assert "Yes, roll back" in page
    assert f'name="_selected_action" value="{route.pk}"' in page
    assert f'name="_selected_action" value="{fresh.pk}"' not in page

    done = select_for_rollback(admin_client, [route], post="yes", reason="opus misbehaves")
    assert b"Rolled back 1 route." in done.content
    assert active_route("support").model == SONNET
    assert active_route("fresh").model == HAIKU
    assert ModelRouteChange.objects.latest("id").reason == "opus misbehaves"
    assert not ModelRouteChange.objects.filter(feature="fresh").exists()


# -- removing a route ------------------------------------------------------------------


def test_remove_route_from_its_change_page(admin_client, route):
    remove = reverse("admin:django_claude_modelroute_remove", args=[route.pk])
    change_page = admin_client.get(urls(route)["change"]).content.decode()
    assert f'href="{remove}"' in change_page and "Remove route" in change_page
    confirm = admin_client.get(remove).content.decode()
    plan = confirm.split('id="claude-remove-plan"', 1)[1].split("</table>", 1)[0]
    assert OPUS in plan and SONNET in plan and "after, from the settings" in plan
    assert 'name="reason"' in confirm and "csrfmiddlewaretoken" in confirm
    assert active_route("support").model == OPUS  # a GET changes nothing

    response = admin_client.post(remove, {"reason": "follow the default"}, follow=True)
    assert response.redirect_chain[-1][0] == urls(route)["changelist"]
    assert b"Removed the route of support: it uses claude-sonnet-4-6 now." in response.content
    assert not ModelRoute.objects.filter(feature="support").exists()
    assert active_route("support") == Route("support", SONNET, HAIKU)
    removal = ModelRouteChange.objects.latest("id")
    assert (removal.is_removal, removal.old_model, removal.new_model) == (True, OPUS, SONNET)
    assert removal.reason == "follow the default" and removal.changed_by.username == "admin"
    assert LogEntry.objects.latest("id").action_flag == DELETION
    history = admin_client.get(urls(route)["history"]).content.decode()
    assert cells(history, "kind")[0] == "removal"
    assert ModelRouteChange.objects.filter(feature="support").count() == 3  # history kept


def test_remove_route_page_names_the_default_route(admin_client, route):
    set_route(feature="", model=HAIKU, fallback_model=SONNET)
    remove = reverse("admin:django_claude_modelroute_remove", args=[route.pk])
    plan = admin_client.get(remove).content.decode().split('id="claude-remove-plan"', 1)[1]
    assert "after, from the default route" in plan.split("</table>", 1)[0]
    admin_client.post(remove, {"reason": "r"})
    assert active_route("support") == Route("support", HAIKU, SONNET)


@pytest.mark.parametrize(
    ("perms", "allowed"),
    [
        (["view_modelroute", "delete_modelroute"], True),
        (["view_modelroute", "change_modelroute", "rollback_modelroute"], False),
    ],
)
def test_remove_route_needs_the_delete_permission(client, django_user_model, route, perms, allowed):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client.force_login(user)
    remove = reverse("admin:django_claude_modelroute_remove", args=[route.pk])
    assert ("Remove route" in client.get(urls(route)["change"]).content.decode()) is allowed
    assert client.get(remove).status_code == (200 if allowed else 403)
    assert client.post(remove, {"reason": "r"}).status_code == (302 if allowed else 403)
    assert ModelRoute.objects.filter(feature="support").exists() is not allowed
    # Django's own delete view stays closed: it would not keep the history
    delete = reverse("admin:django_claude_modelroute_delete", args=[route.pk])
    assert client.post(delete, {"post": "yes"}).status_code in (403, 404)
