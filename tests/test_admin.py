"""The admin: records and prices are read-only history."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

import django_claude
from django_claude.models import CallRecord, ModelPrice
from tests.prices import site_price


@pytest.fixture
def staff_viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_callrecord"),
        Permission.objects.get(codename="view_modelprice"),
    )
    return user


def test_record_list_and_detail_for_superuser(claude, admin_client):
    result = django_claude.call("hi", feature="support")
    listing = admin_client.get(reverse("admin:django_claude_callrecord_changelist"))
    assert listing.status_code == 200
    assert b"support" in listing.content
    by_id = admin_client.get(
        reverse("admin:django_claude_callrecord_changelist"), {"q": str(result.request_id)}
    )
    assert str(result.request_id).encode() in by_id.content
    detail = admin_client.get(
        reverse("admin:django_claude_callrecord_change", args=[result.request_id])
    )
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content  # read-only


def test_records_cannot_be_added_changed_or_deleted(claude, admin_client):
    result = django_claude.call("hi", feature="support")
    assert admin_client.get(reverse("admin:django_claude_callrecord_add")).status_code == 403
    delete = reverse("admin:django_claude_callrecord_delete", args=[result.request_id])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:django_claude_callrecord_change", args=[result.request_id])
    admin_client.post(change, {"feature": "edited"})
    assert CallRecord.objects.get().feature == "support"


def test_list_filters(claude, admin_client):
    django_claude.call("hi", feature="a")
    claude.script("claude-sonnet-4-6", [529] * 4)
    django_claude.call("hi", feature="b")
    url = reverse("admin:django_claude_callrecord_changelist")
    response = admin_client.get(url, {"outcome": "fallback"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 1


def test_staff_without_permission_gets_403(claude, client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:django_claude_callrecord_changelist")).status_code == 403
    assert client.get(reverse("admin:django_claude_modelprice_changelist")).status_code == 403


def test_view_permission_sees_records(claude, client, staff_viewer):
    django_claude.call("hi", feature="support")
    client.force_login(staff_viewer)
    assert client.get(reverse("admin:django_claude_callrecord_changelist")).status_code == 200


def test_prices_are_added_not_edited(db, admin_client):
    price = site_price(
        "claude-sonnet-4-6", datetime.date(2026, 1, 1), "3", "15", "3.75", "6", "0.30"
    )
    change = admin_client.get(reverse("admin:django_claude_modelprice_change", args=[price.pk]))
    assert change.status_code == 200
    assert b'name="input_per_mtok"' not in change.content
    assert (
        admin_client.post(
            reverse("admin:django_claude_modelprice_delete", args=[price.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    response = admin_client.post(
        reverse("admin:django_claude_modelprice_add"),
        {
            "model": "claude-sonnet-4-6",
            "effective_from": "2027-01-01",
            "input_per_mtok": "2",
            "output_per_mtok": "10",
            "cache_write_5m_per_mtok": "2.5",
            "cache_write_1h_per_mtok": "4",
            "cache_read_per_mtok": "0.2",
        },
    )
    assert response.status_code == 302
    new = ModelPrice.objects.get(
        model="claude-sonnet-4-6", effective_from=datetime.date(2027, 1, 1)
    )
    assert new.input_per_mtok == Decimal("2")
    assert ModelPrice.objects.get(pk=price.pk).input_per_mtok == Decimal("3")


def test_daily_costs_and_budget_alerts_are_read_only(admin_client, db):
    from django_claude.models import BudgetAlert, DailyCost

    DailyCost.objects.create(day=datetime.date(2026, 11, 20), feature="f", model="m", calls=3)
    BudgetAlert.objects.create(
        day=datetime.date(2026, 11, 20), feature="f", threshold=80, cost_usd=1, budget_usd=1
    )
    for name in ("dailycost", "budgetalert"):
        listing = admin_client.get(reverse(f"admin:django_claude_{name}_changelist"))
        assert listing.status_code == 200
        assert admin_client.get(reverse(f"admin:django_claude_{name}_add")).status_code == 403


MISSING_UUID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("model", "object_id", "page"),
    [
        ("callrecord", "not-a-uuid", "change"),
        ("callrecord", MISSING_UUID, "change"),
        ("callrecord", "not-a-uuid", "history"),
        ("modelroute", "abc", "rollback"),
        ("modelroute", "999", "rollback"),
        ("modelroute", "abc", "change"),
        ("modelroute", "1.5", "history"),
        ("modelroutechange", "abc", "change"),
        ("modelprice", "abc", "change"),
        ("dailycost", "abc", "change"),
        ("budgetalert", "abc", "change"),
        ("smellfailure", "abc", "change"),
        ("smellbaseline", "abc", "change"),
        ("smellalert", "abc", "change"),
    ],
)
def test_a_bad_or_missing_id_is_404(admin_client, db, model, object_id, page):
    url = reverse(f"admin:django_claude_{model}_{page}", args=[object_id])
    assert admin_client.get(url).status_code == 404
    if page == "rollback":
        assert admin_client.post(url, {"reason": "x"}).status_code == 404


def test_record_cost_is_rounded_in_the_list_and_exact_on_its_page(admin_client, db):
    from django.utils import timezone

    rec = CallRecord.objects.create(
        created_at=timezone.now(),
        feature="support",
        model_requested="claude-sonnet-4-6",
        model="claude-sonnet-4-6",
        outcome="ok",
        cost_usd=Decimal("0.0003312345"),
    )
    listing = admin_client.get(reverse("admin:django_claude_callrecord_changelist"))
    assert b'<td class="field-cost">$0.000331</td>' in listing.content
    assert b"0.0003312345" not in listing.content
    detail = admin_client.get(reverse("admin:django_claude_callrecord_change", args=[rec.pk]))
    assert b"$0.0003312345" in detail.content
    assert detail.content.count(b"0.0003312345") == 1  # not the raw column too


def test_attempts_are_a_table_not_json(claude, admin_client):
    claude.script("claude-sonnet-4-6", [529, 529])
    result = django_claude.call("hi", feature="support")
    detail = admin_client.get(
        reverse("admin:django_claude_callrecord_change", args=[result.request_id])
    ).content.decode()
    table = detail.split('<table class="claude-attempts">')[1].split("</table>")[0]
    rows = table.split("<tbody>")[1].count("<tr>")
    assert rows == 3  # two overloaded attempts, then the answer
    assert "<th>status</th>" in table and "<th>latency (ms)</th>" in table
    assert "<td>529</td>" in table and "<td>200</td>" in table
    assert "claude-sonnet-4-6" in table
    assert "&quot;latency_ms&quot;" not in detail and '"latency_ms"' not in detail  # no JSON
    assert detail.count("Attempts detail") == 1


def test_a_hostile_attempt_log_is_escaped(admin_client, db):
    from django.utils import timezone

    rec = CallRecord.objects.create(
        created_at=timezone.now(),
        feature="support",
        model_requested="m",
        model="m",
        outcome="error",
        attempt_log=[{"model": "<script>alert(1)</script>", "error": "<b>x</b>"}, "<i>odd</i>"],
    )
    page = admin_client.get(
        reverse("admin:django_claude_callrecord_change", args=[rec.pk])
    ).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "&lt;i&gt;odd&lt;/i&gt;" in page
