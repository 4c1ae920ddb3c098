"""Reconciliation with Anthropic's bill, against the fake's Admin API."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from django_claude.costs import reconcile
from django_claude.models import CallRecord, Reconciliation
from django_claude.signals import reconciliation_drift
from django_claude.testing import Fault

NOV = [datetime.date(2026, 10, 28) + datetime.timedelta(days=n) for n in range(30)]
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5-20251001"


@pytest.fixture
def admin_api(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_ADMIN_API_KEY = "sk-ant-admin-test-0000"
    settings.DJANGO_CLAUDE_ADMIN_BASE_URL = fake_anthropic.url
    settings.ADMINS = [("Ops", "ops@example.com")]
    return fake_anthropic.admin


def spend(day: datetime.date, model: str, *costs: str | None) -> None:
    """Calls recorded on ``day`` (noon UTC) at these costs (None: unpriced)."""
    noon = datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
    CallRecord.objects.bulk_create(
        CallRecord(
            created_at=noon,
            feature="reconcile",
            model_requested=model,
            model=model,
            outcome="ok",
            cost_usd=None if cost is None else Decimal(cost),
        )
        for cost in costs
    )


def a_month_that_agrees(admin_api) -> None:
    for n, day in enumerate(NOV):
        spend(day, SONNET, "0.0123", f"1.{n:02d}")
        spend(day, HAIKU, "0.25")
        admin_api.costs[day] = {
            SONNET: Decimal("0.0123") + Decimal(f"1.{n:02d}"),
            HAIKU: Decimal("0.25"),
        }


@pytest.mark.django_db
def test_a_month_that_agrees_reports_no_drift(admin_api, django_capture_on_commit_callbacks):
    a_month_that_agrees(admin_api)
    drifts = []
    reconciliation_drift.connect(lambda **kw: drifts.append(kw), weak=False, dispatch_uid="t1")
    try:
        out = StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("claude_reconcile", "--date", "2026-11-26", "--days", "30", stdout=out)
    finally:
        reconciliation_drift.disconnect(dispatch_uid="t1")
    assert "60 day and model rows, 0 over the 1% tolerance" in out.getvalue()
    assert Reconciliation.objects.count() == 60
    assert not Reconciliation.objects.filter(within_tolerance=False).exists()
    assert set(Reconciliation.objects.values_list("difference_usd", flat=True)) == {Decimal(0)}
    assert drifts == [] and mail.outbox == []
    # Only GETs, one page a month (31 days at most), grouped by model.
    assert len(admin_api.requests) == 1
    assert admin_api.requests[0]["group_by[]"] == ["description"]


@pytest.mark.django_db
def test_a_known_difference_is_reported_on_its_day_and_model(
    admin_api, caplog, django_capture_on_commit_callbacks
):
    a_month_that_agrees(admin_api)
    off_day = NOV[17]
    admin_api.costs[off_day][HAIKU] = Decimal("0.2625")  # they billed $0.0125 more
    drifts = []
    reconciliation_drift.connect(lambda **kw: drifts.append(kw), weak=False, dispatch_uid="t2")
    try:
        with (
            caplog.at_level(logging.WARNING, logger="django_claude.costs.reconcile"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            call_command(
                "claude_reconcile", "--date", "2026-11-26", "--days", "30", stdout=StringIO()
            )
    finally:
        reconciliation_drift.disconnect(dispatch_uid="t2")
    [row] = Reconciliation.objects.filter(within_tolerance=False)
    assert (row.day, row.model) == (off_day, HAIKU)
    assert row.difference_usd == Decimal("-0.0125")
    assert (row.our_cost_usd, row.their_cost_usd) == (Decimal("0.25"), Decimal("0.2625"))
    assert [(d["day"], d["model"], d["difference_usd"]) for d in drifts] == [
        (off_day, HAIKU, Decimal("-0.0125"))
    ]
    assert any("claude.reconciliation_drift" in r.getMessage() for r in caplog.records)
    [message] = mail.outbox
    assert HAIKU in message.body and str(off_day) in message.body


@pytest.mark.django_db
def test_a_difference_within_the_tolerance_is_not_a_drift(admin_api, settings):
    settings.DJANGO_CLAUDE_RECONCILE_TOLERANCE = 0.05
    spend(NOV[0], SONNET, "1.00")
    admin_api.costs[NOV[0]] = {SONNET: Decimal("1.04")}
    [line] = reconcile.reconcile(NOV[0], NOV[0])
    assert line.difference == Decimal("-0.04")
    assert Reconciliation.objects.get().within_tolerance


@pytest.mark.django_db
def test_what_only_one_side_knows_is_a_drift(admin_api):
    spend(NOV[0], SONNET, "0.50", None)  # and one unpriced call
    admin_api.costs[NOV[0]] = {"claude-opus-5": Decimal("2")}  # another app on the org
    call_command("claude_reconcile", "--date", str(NOV[0]), stdout=StringIO())
    rows = {r.model: r for r in Reconciliation.objects.all()}
    assert rows[SONNET].their_cost_usd == 0 and not rows[SONNET].within_tolerance
    assert rows[SONNET].unpriced_calls == 1
    assert rows["claude-opus-5"].our_cost_usd == 0 and not rows["claude-opus-5"].within_tolerance


@pytest.mark.django_db
def test_long_ranges_read_every_page(admin_api):
    days = [datetime.date(2026, 9, 1) + datetime.timedelta(days=n) for n in range(45)]
    for day in days:
        spend(day, SONNET, "0.10")
        admin_api.costs[day] = {SONNET: Decimal("0.10")}
    lines = reconcile.reconcile(days[0], days[-1])
    assert len(lines) == 45 and all(line.difference == 0 for line in lines)
    assert len(admin_api.requests) == 2  # 31 days, then 14
    assert admin_api.requests[1]["page"][0].startswith("page_")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault(status=500), "answered 500: api_error"),
        (Fault(status=401), "answered 401: authentication_error"),
        (Fault(delay=2), "did not answer within"),
    ],
    ids=["error", "refused", "slow"],
)
def test_a_failing_or_slow_admin_api_writes_nothing(admin_api, monkeypatch, fault, said):
    monkeypatch.setattr(reconcile, "TIMEOUT", 0.5)
    a_month_that_agrees(admin_api)
    call_command("claude_reconcile", "--date", "2026-11-26", "--days", "30", stdout=StringIO())
    before = list(Reconciliation.objects.order_by("day", "model").values_list("id", flat=True))
    admin_api.costs[NOV[3]][SONNET] = Decimal("99")
    admin_api.fault = fault
    with pytest.raises(CommandError, match=said):
        call_command("claude_reconcile", "--date", "2026-11-26", "--days", "30", stdout=StringIO())
    after = list(Reconciliation.objects.order_by("day", "model").values_list("id", flat=True))
    assert after == before  # the earlier run's rows, untouched
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_second_page_failing_writes_nothing(admin_api):
    days = [datetime.date(2026, 9, 1) + datetime.timedelta(days=n) for n in range(40)]
    for day in days:
        admin_api.costs[day] = {SONNET: Decimal("0.10")}
    calls = []
    answer = admin_api.answer

    def second_fails(path, headers):
        calls.append(path)
        if len(calls) == 2:
            return 503, {"type": "error", "error": {"type": "overloaded_error", "message": "-"}}
        return answer(path, headers)

    admin_api.answer = second_fails
    with pytest.raises(reconcile.ReconcileError, match="503"):
        reconcile.reconcile(days[0], days[-1])
    assert not Reconciliation.objects.exists()


@pytest.mark.django_db
def test_no_admin_key_is_a_clear_error(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_ADMIN_API_KEY = None
    with pytest.raises(CommandError, match="DJANGO_CLAUDE_ADMIN_API_KEY"):
        call_command("claude_reconcile", stdout=StringIO())
    assert fake_anthropic.admin.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--date", "yesterday"], "--date"),
        (["--days", "0"], "--days"),
        (["--days", "400"], "--days"),
    ],
)
def test_bad_arguments(admin_api, args, match):
    with pytest.raises(CommandError, match=match):
        call_command("claude_reconcile", *args, stdout=StringIO())


@pytest.mark.django_db
def test_the_daily_task_reconciles_the_two_days_before_today(admin_api):
    from django_claude import tasks

    today = datetime.datetime.now(datetime.UTC).date()
    yesterday, before = today - datetime.timedelta(days=1), today - datetime.timedelta(days=2)
    for day in (yesterday, before):
        spend(day, SONNET, "0.30")
        admin_api.costs[day] = {SONNET: Decimal("0.30")}
    admin_api.costs[yesterday][HAIKU] = Decimal("0.05")  # not ours
    assert tasks.reconcile_costs() == 1
    assert set(Reconciliation.objects.values_list("day", "model")) == {
        (before, SONNET),
        (yesterday, SONNET),
        (yesterday, HAIKU),
    }


@pytest.mark.django_db
def test_the_daily_task_without_an_admin_key_reads_nothing(fake_anthropic, settings):
    from django_claude import tasks

    settings.DJANGO_CLAUDE_ADMIN_API_KEY = None
    assert tasks.reconcile_costs() == 0
    assert fake_anthropic.admin.requests == []
    assert not Reconciliation.objects.exists()


def test_the_admin_key_never_goes_to_the_messages_gateway(settings):
    """BASE_URL may be a proxy for the Messages API (LiteLLM, a company
    gateway): the organization's admin key goes to Anthropic, or where
    ADMIN_BASE_URL says, over https."""
    settings.DJANGO_CLAUDE_BASE_URL = "https://llm-gateway.example.com"
    settings.DJANGO_CLAUDE_ADMIN_BASE_URL = None
    assert reconcile.admin_base_url() == "https://api.anthropic.com"
    settings.DJANGO_CLAUDE_ADMIN_BASE_URL = "http://admin-proxy.example.com"
    with pytest.raises(reconcile.ReconcileError, match="https"):
        reconcile.admin_base_url()
    settings.DJANGO_CLAUDE_ADMIN_BASE_URL = "http://127.0.0.1:8765"
    assert reconcile.admin_base_url() == "http://127.0.0.1:8765"


@pytest.mark.django_db
def test_an_amount_that_is_not_a_number_is_a_clear_error(admin_api, monkeypatch):
    from django_claude.testing import admin_api as fake_admin

    monkeypatch.setattr(fake_admin, "_result", lambda usd, model: {"amount": "NaN", "model": model})
    admin_api.costs[NOV[0]] = {SONNET: Decimal("1")}
    with pytest.raises(CommandError, match="finite amount"):
        call_command("claude_reconcile", "--date", str(NOV[0]), stdout=StringIO())
    assert not Reconciliation.objects.exists()


@pytest.mark.django_db
def test_web_search_fees_are_compared_where_anthropic_reports_them(admin_api, fake_anthropic):
    """The cost report puts server-tool fees under no model; a call's cost
    includes its searches: they are moved to the same row before comparing."""
    import django_claude

    fake_anthropic.usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
    }
    result = django_claude.call("search", feature="reconcile")
    day = CallRecord.objects.get(id=result.request_id).created_at.astimezone(datetime.UTC).date()
    admin_api.costs[day] = {SONNET: Decimal("0.0045")}  # 1000*3 + 100*15 per million
    admin_api.web_search[day] = Decimal("0.03")
    lines = {line.model: line for line in reconcile.reconcile(day, day)}
    assert (lines[SONNET].ours, lines[SONNET].theirs) == (Decimal("0.0045"), Decimal("0.0045"))
    assert (lines["(no model)"].ours, lines["(no model)"].theirs) == (
        Decimal("0.03"),
        Decimal("0.03"),
    )
    assert all(line.difference == 0 for line in lines.values())


@pytest.mark.django_db
def test_other_workspaces_of_the_organization_are_left_out_when_told_which_is_ours(
    admin_api, settings
):
    spend(NOV[0], SONNET, "1.00")
    admin_api.costs[NOV[0]] = {SONNET: Decimal("1.00")}  # the default workspace: this site
    admin_api.workspaces["wrkspc_batch_jobs"] = {NOV[0]: {SONNET: Decimal("7.50")}}
    [whole_org] = reconcile.reconcile(NOV[0], NOV[0])
    assert whole_org.theirs == Decimal("8.50") and not whole_org.within(Decimal("0.01"))
    settings.DJANGO_CLAUDE_RECONCILE_WORKSPACE = "default"
    [ours] = reconcile.reconcile(NOV[0], NOV[0])
    assert (ours.ours, ours.theirs) == (Decimal("1.00"), Decimal("1.00"))
    assert admin_api.requests[-1]["group_by[]"] == ["description", "workspace_id"]
    settings.DJANGO_CLAUDE_RECONCILE_WORKSPACE = "wrkspc_batch_jobs"
    [theirs] = reconcile.reconcile(NOV[0], NOV[0])
    assert theirs.theirs == Decimal("7.50")
