"""The admin dashboard: numbers from rollups and live records, rendering, access."""

from __future__ import annotations

import datetime
import re
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


def test_linked_from_the_admin_index_in_the_apps_section(admin_client, db):
    page = admin_client.get(reverse("admin:index")).content.decode()
    section = page.split('<div class="app-django_claude module')[1].split("</table>")[0]
    row = section.split('<tr class="model-dashboard">')[1].split("</tr>")[0]
    assert f'<a href="{reverse(URL)}">Dashboard</a>' in row
    assert ">View</a>" in row
    # first in the section, above the models
    assert section.index("model-dashboard") < section.index("model-callrecord")


def test_the_index_shows_no_dashboard_to_staff_who_may_not_see_it(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_modelprice"))
    client.force_login(staff)
    page = client.get(reverse("admin:index")).content.decode()
    assert "app-django_claude" in page and reverse(URL) not in page
    staff.user_permissions.add(Permission.objects.get(codename="view_callrecord"))
    assert reverse(URL) in client.get(reverse("admin:index")).content.decode()


@pytest.mark.parametrize(
    ("value", "whole", "ticks"),
    [
        (50, False, [0, 20, 40, 60]),
        (100, False, [0, 25, 50, 75, 100]),
        (37, False, [0, 10, 20, 30, 40]),
        (0.0132, False, [0, 0.005, 0.01, 0.015]),
        (1.8, False, [0, 0.5, 1, 1.5, 2]),
        (9, False, [0, 2.5, 5, 7.5, 10]),
        (0, False, [0, 0.25, 0.5, 0.75, 1]),
        (3, True, [0, 1, 2, 3]),
        (10, True, [0, 5, 10]),
        (0, True, [0, 1]),
        (1234, True, [0, 500, 1000, 1500]),
    ],
)
def test_axis_ticks_are_round_numbers(value, whole, ticks):
    assert charts.nice_ticks(value, whole=whole) == pytest.approx(ticks)


def axis(svg: str) -> list[tuple[str, str]]:
    """Each y tick's label and whether it sits on its gridline: (label, "on"/"off")."""
    lines = re.findall(r'<line [^>]*y1="([\d.]+)"[^>]*class="claude-grid"', svg)
    labels = re.findall(r'<text [^>]*y="([\d.]+)"[^>]*class="claude-tick">([^<]*)<', svg)
    assert len(lines) == len(labels)
    return [
        (text, "on" if y == line else "off") for line, (y, text) in zip(lines, labels, strict=True)
    ]


def legend(svg: str) -> list[str]:
    """The names in the chart's legend, in order."""
    return re.findall(r'class="claude-legend-name">([^<]*)</text></g>', svg)


def test_tick_labels_are_the_exact_values_on_their_gridlines():
    svg = charts.stacked_bars(
        title="calls", y_label="calls", labels=["a", "b"], series={"ok": [50, 3]}, whole=True
    )
    assert axis(svg) == [("0", "on"), ("20", "on"), ("40", "on"), ("60", "on")]
    cost = charts.stacked_bars(
        title="cost", y_label="USD", labels=["a"], series={"x": [0.0132]}, prefix="$"
    )
    assert [label for label, _ in axis(cost)] == ["$0.000", "$0.005", "$0.010", "$0.015"]
    quality = charts.lines(
        title="q", y_label="%", labels=["a", "b"], series={"p": [90, 95]}, y_max=100, suffix="%"
    )
    assert axis(quality) == [(f"{v}%", "on") for v in (0, 25, 50, 75, 100)]


def test_every_mark_has_a_legend_entry():
    line = charts.lines(
        title="t",
        y_label="%",
        labels=["a", "b"],
        series={"pass rate": [80.0, 90.0]},
        reference=("baseline", 85.0),
        markers=[(1, "flip")],
    )
    assert legend(line) == ["pass rate", "baseline", "model change"]
    bare = charts.lines(title="t", y_label="%", labels=["a"], series={"p50": [1.0]})
    assert legend(bare) == ["p50"]
    many = {f"feature-with-a-long-name-{i}": [1.0] for i in range(8)}
    bars = charts.stacked_bars(title="t", y_label="USD", labels=["a"], series=many)
    assert legend(bars) == list(many)
    # the entries wrap onto rows inside the picture
    xs = [float(x) for x in re.findall(r'claude-legend-entry"><rect x="([\d.]+)"', bars)]
    assert max(xs) < charts.WIDTH and 'viewBox="0 0 720 240"' not in bars


def test_dashboard_charts_have_round_ticks_and_full_legends(admin_client, history):
    SmellBaseline.objects.create(feature="chat", pass_rate=90, sample_size=100, source="records")
    set_route(feature="chat", model="claude-opus-4-7", fallback_model="claude-haiku-4-5")
    page = admin_client.get(reverse(URL), {"feature": "chat"}).content.decode()
    figures = dict(re.findall(r'<figure id="chart-(\w+)">(.*?)</svg>', page, re.S))
    assert sorted(figures) == ["cost", "fees", "latency", "outcomes", "quality"]
    for name, svg in figures.items():
        assert all(on == "on" for _, on in axis(svg)), name
    assert [label for label, _ in axis(figures["quality"])] == ["0%", "25%", "50%", "75%", "100%"]
    assert legend(figures["quality"]) == ["pass rate", "baseline", "model change"]
    assert legend(figures["outcomes"]) == [
        "ok",
        "cached",
        "fallback",
        "degraded",
        "errors",
        "limited",
    ]
    calls = [label for label, _ in axis(figures["outcomes"])]
    assert all(label.isdigit() for label in calls) and calls[0] == "0"


def test_costs_on_the_dashboard_read_as_in_the_lists(admin_client, history):
    page = admin_client.get(reverse(URL)).content.decode()
    assert 'id="claude-total-cost">$1.80<' in page
    top = page.split('id="claude-top-features"')[1].split("</table>")[0]
    assert "<td>$1.53</td>" in top and "<td>$0.27</td>" in top


def test_tool_fees_are_their_own_series(admin_client, history):
    yesterday = today() - datetime.timedelta(days=1)
    DailyCost.objects.filter(feature="support").update(
        web_search_requests=20, tool_cost_usd=Decimal("0.20")
    )
    record("research", cost="0.05", web_search_requests=3, tool_cost_usd=Decimal("0.03"))
    data = build_dashboard(days=7)
    assert data.days[-2].day == yesterday
    assert data.days[-2].tool_cost == Decimal("0.20") and data.days[-2].web_search_requests == 20
    assert data.days[-1].tool_cost == Decimal("0.03") and data.days[-1].web_search_requests == 3
    assert data.total_tool_cost == Decimal("0.23")
    page = admin_client.get(reverse(URL)).content.decode()
    assert 'aria-label="Cost per day: tokens and tool fees (USD)' in page
    fees = page.split('id="chart-fees"')[1].split("</figure>")[0]
    assert "tool fees (web search): $0.20<" in fees  # yesterday's bar, from the rollup
    assert "tokens: $1.55<" in fees  # 1.75 - 0.20
    assert 'id="claude-tool-fees">$0.23<' in page
    assert "23 web searches" in page


def test_the_reconciliation_panel_puts_drift_first(admin_client, history):
    from django_claude.models import Reconciliation

    yesterday = today() - datetime.timedelta(days=1)
    common = {"our_cost_usd": Decimal("1"), "unpriced_calls": 0}
    Reconciliation.objects.create(
        day=yesterday,
        model="claude-opus-5",
        their_cost_usd=Decimal("1"),
        difference_usd=Decimal(0),
        within_tolerance=True,
        **common,
    )
    Reconciliation.objects.create(
        day=yesterday - datetime.timedelta(days=1),
        model="claude-sonnet-5",
        their_cost_usd=Decimal("1.25"),
        difference_usd=Decimal("-0.25"),
        within_tolerance=False,
        **common,
    )
    Reconciliation.objects.create(  # outside the period: not shown
        day=yesterday - datetime.timedelta(days=30),
        model="claude-haiku-4-5",
        their_cost_usd=Decimal("9"),
        difference_usd=Decimal("-8"),
        within_tolerance=False,
        **common,
    )
    page = admin_client.get(reverse(URL), {"days": 7}).content.decode()
    panel = page.split('id="claude-reconciliation"')[1].split("</div>")[0]
    assert "2 UTC days and models checked in this period, 1 over the tolerance." in panel
    assert panel.index("claude-sonnet-5") < panel.index("claude-opus-5")  # drift first
    assert "-$0.25" in panel and "no: drift" in panel
    assert "claude-haiku-4-5" not in panel
    assert reverse("admin:django_claude_reconciliation_changelist") in panel
    # Anthropic's bill is not split by feature: no panel for one feature.
    one = admin_client.get(reverse(URL), {"days": 7, "feature": "chat"}).content.decode()
    assert 'id="claude-reconciliation"' not in one


def test_the_reconciliation_panel_says_how_to_start(admin_client, history):
    page = admin_client.get(reverse(URL)).content.decode()
    panel = page.split('id="claude-reconciliation"')[1].split("</div>")[0]
    assert "Not reconciled yet" in panel and "DJANGO_CLAUDE_ADMIN_API_KEY" in panel
