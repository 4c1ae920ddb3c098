"""The admin dashboard: numbers from rollups and live records, rendering, access."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from django_claude.admin import charts
from django_claude.admin.dashboard import build_dashboard
from django_claude.models import CallRecord, DailyCost, SmellBaseline
from django_claude.routing import rollback, set_route

URL = "admin:django_claude_dashboard"


def today() -> datetime.date:
    return timezone.localdate()


def record(feature: str, outcome: str = "ok", cost: str | None = "0.01", **kw) -> CallRecord:
    return CallRecord.objects.create(
        created_at=timezone.now(),
        feature=feature,
        model_requested="claude-sonnet-4-6",
        model=kw.pop("model", "claude-sonnet-4-6"),
        outcome=outcome,
        cost_usd=None if cost is None else Decimal(cost),
        latency_ms=kw.pop("latency_ms", 100),
        **kw,
    )


@pytest.fixture
def history(db):
    yesterday = today() - datetime.timedelta(days=1)
    DailyCost.objects.create(
        day=yesterday,
        feature="support",
        model="m",
        calls=10,
        cost_usd=Decimal("1.50"),
        fallback_calls=2,
        degraded_calls=1,
        smell_passed=3,
        smell_judged=4,
        latency_p50_ms=200,
    )
    DailyCost.objects.create(
        day=yesterday,
        feature="chat",
        model="m",
        calls=30,
        cost_usd=Decimal("0.25"),
        cached_calls=5,
        latency_p50_ms=400,
    )
    # this record is yesterday's too, but the rollup is what counts for past days
    CallRecord.objects.create(
        created_at=timezone.now() - datetime.timedelta(days=1),
        feature="support",
        model_requested="m",
        model="m",
        outcome="ok",
        cost_usd=Decimal("99"),
    )
    record("support")
    record("support", outcome="fallback", cost="0.02")
    record("chat", cost=None, model="claude-unpriced")  # unpriced
    record("chat", outcome="degraded", cost="0", model="")
    record("chat", smell_verdict="pass")
    record("chat", smell_verdict="fail")


def test_numbers_from_rollups_and_today_live(history):
    data = build_dashboard(days=14)
    assert len(data.days) == 14 and data.days[-1].day == today()
    yesterday, now = data.days[-2], data.days[-1]
    assert yesterday.cost == Decimal("1.75")  # from DailyCost, not the $99 record
    assert yesterday.calls == 40 and yesterday.ok_calls == 40 - 2 - 1 - 5
    assert yesterday.latency_p50_ms == pytest.approx((10 * 200 + 30 * 400) / 40)
    assert yesterday.pass_rate == 75.0
    assert now.cost == Decimal("0.05")
    assert now.calls == 6 and now.fallback_calls == 1 and now.degraded_calls == 1
    assert now.unpriced_calls == 1 and now.pass_rate == 50.0
    assert data.total_cost == Decimal("1.80")
    assert [f for f, _, _ in data.top_features] == ["support", "chat"]
    assert data.top_features[0][2] == 12  # calls: 10 rolled up + 2 today


def test_a_past_day_without_rollup_is_computed_live(db):
    CallRecord.objects.create(
        created_at=timezone.now() - datetime.timedelta(days=3),
        feature="x",
        model_requested="m",
        model="m",
        outcome="ok",
        cost_usd=Decimal("0.5"),
    )
    data = build_dashboard(days=7)
    assert data.days[-4].cost == Decimal("0.5") and data.days[-4].calls == 1


def test_feature_filter_baseline_and_model_changes(history):
    SmellBaseline.objects.create(feature="chat", pass_rate=90, sample_size=100, source="records")
    set_route(feature="chat", model="claude-opus-4-7", fallback_model="claude-haiku-4-5")
    rollback(feature="chat")
    data = build_dashboard(days=7, feature="chat")
    assert data.features == ["chat"] and data.baseline == 90
    assert [c.is_rollback for c in data.route_changes] == [False, True]


def test_page_renders_charts_with_labels(admin_client, history):
    set_route(feature="chat", model="claude-opus-4-7", fallback_model="claude-haiku-4-5")
    page = admin_client.get(reverse(URL)).content.decode()
    for title in (
        "Cost per day by feature (USD)",
        "Calls per day by outcome",
        "Latency per day",
        "Smell-test pass rate per day",
    ):
        assert f'aria-label="{title}' in page
    assert "claude-opus-4-7" in page  # the model change is marked
    assert "<script" not in page.split('id="claude-dashboard-totals"')[1]  # no JavaScript
    assert 'id="claude-unpriced">1<' in page


def test_empty_state_is_friendly(admin_client, db):
    response = admin_client.get(reverse(URL))
    assert response.status_code == 200
    assert b"No calls yet in this period." in response.content


def test_bad_parameters_fall_back(admin_client, db):
    assert admin_client.get(reverse(URL), {"days": "lots", "feature": "x" * 500}).status_code == 200


def test_access(client, django_user_model, db):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(URL)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_callrecord"))
    assert client.get(reverse(URL)).status_code == 200
    client.logout()
    assert client.get(reverse(URL)).status_code == 302


def test_linked_from_the_app_index_and_the_record_list(admin_client, db):
    url = reverse(URL)
    assert (
        url.encode() in admin_client.get(reverse("admin:app_list", args=["django_claude"])).content
    )
    listing = admin_client.get(reverse("admin:django_claude_callrecord_changelist"))
    assert url.encode() in listing.content


def test_record_links_to_its_route_history(admin_client, db):
    set_route(feature="support", model="claude-opus-4-7", fallback_model="claude-haiku-4-5")
    rec = record("support")
    page = admin_client.get(reverse("admin:django_claude_callrecord_change", args=[rec.pk]))
    assert b"/admin/django_claude/modelroute/" in page.content


def test_charts_escape_labels():
    svg = charts.stacked_bars(
        title="<b>t</b>", y_label="y", labels=["a"], series={"<script>": [1.0]}
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    line = charts.lines(
        title="t",
        y_label="y",
        labels=["a", "b"],
        series={"s": [None, 2.0]},
        reference=("baseline", 1.0),
        markers=[(1, "flip <x>")],
    )
    assert "flip &lt;x&gt;" in line and "baseline" in line
