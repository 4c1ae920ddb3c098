"""Code execution and the Priority Tier: what the bill depends on, and the fee
that only the bill knows.

Rules (https://docs.anthropic.com/en/docs/about-claude/pricing, "Code
execution tool"; https://docs.anthropic.com/en/api/usage-cost-api): code
execution is billed by container hours per organization (a minimum per
container session, free hours every month), not per run, and an answer's
usage carries no duration: a call cannot be priced for it when it ends. The
cost report lists it per day under no model, with ``cost_type``
``"code_execution"``; ``claude_reconcile`` shares each day's fee out
equally over the day's containers, and a container's share over its calls.
The cost report leaves Priority Tier usage out (billed by its commitment):
reconciliation leaves Priority Tier calls out of our side too.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

import django_claude
from django_claude.costs import containers, reconcile
from django_claude.models import CallRecord, DailyCost, ModelPrice

SONNET = "claude-sonnet-4-6"
CONTAINER = "container_011CodeExecFake"


@pytest.fixture
def admin_api(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_ADMIN_API_KEY = "sk-ant-admin-test-0000"
    settings.DJANGO_CLAUDE_ADMIN_BASE_URL = fake_anthropic.url
    return fake_anthropic.admin


def utc_day(record: CallRecord) -> datetime.date:
    return record.created_at.astimezone(datetime.UTC).date()


def call_in(fake, container: str | None, feature: str, runs: int = 1) -> CallRecord:
    fake.code_executions = runs if container else 0
    if container:
        fake.container = container
    result = django_claude.call("run this", feature=feature)
    assert result.outcome == "ok"
    return CallRecord.objects.get(id=result.request_id)


def test_a_call_records_its_code_execution_runs_and_container(claude, call_lines):
    record = call_in(claude, CONTAINER, "analysis", runs=3)
    assert (record.code_execution_requests, record.container_id) == (3, CONTAINER)
    # No fee yet: the tokens are priced, the container hours wait for the bill.
    assert containers.share_of(record) == 0
    assert record.cost_usd == sum(Decimal(v) for v in record.cost_breakdown.values())
    line = call_lines.lines[-1]
    assert (line["code_execution_requests"], line["container_id"]) == (3, CONTAINER)
    plain = call_in(claude, None, "analysis")
    assert (plain.code_execution_requests, plain.container_id) == (0, "")


def test_a_stream_records_the_same_runs_container_and_cost(claude):
    claude.code_executions, claude.container = 2, CONTAINER
    claude.reply_text = "The answer is 2."
    called = django_claude.call("run this", feature="analysis")
    with django_claude.stream("run this", feature="analysis") as stream:
        assert "".join(stream.text_stream) == "The answer is 2."
    record = CallRecord.objects.get(id=stream.result.request_id)
    assert (record.code_execution_requests, record.container_id) == (2, CONTAINER)
    assert stream.result.cost_usd == called.cost_usd


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_async_stream_records_the_same_runs_container_and_cost(fake_anthropic, call_lines):
    fake_anthropic.code_executions, fake_anthropic.container = 2, CONTAINER
    fake_anthropic.reply_text = "The answer is 2."

    async def both():
        called = await django_claude.acall("run this", feature="analysis")
        async with django_claude.astream("run this", feature="analysis") as chunks:
            assert "".join([c async for c in chunks.text_stream]) == "The answer is 2."
        return called, chunks.result

    called, streamed = asyncio.run(both())
    assert streamed.cost_usd == called.cost_usd
    lines = {line["request_id"]: line for line in call_lines.lines}
    for result in (called, streamed):
        line = lines[str(result.request_id)]
        assert (line["code_execution_requests"], line["container_id"]) == (2, CONTAINER)


def test_a_container_id_that_is_not_one_is_never_stored_as_sent(claude):
    record = call_in(claude, "container jane@example.com\n", "analysis")
    assert record.container_id == "other"
    assert "example.com" not in json.dumps(list(CallRecord.objects.values()), default=str)


def test_reconcile_shares_the_days_fee_over_containers_then_calls(claude, admin_api):
    a1 = call_in(claude, "container_A", "analysis", runs=2)
    a2 = call_in(claude, "container_A", "reports")
    b = call_in(claude, "container_B", "analysis")
    other = call_in(claude, None, "chat")
    day = utc_day(a1)
    tokens = {r.pk: r.cost_usd for r in (a1, a2, b, other)}
    admin_api.costs[day] = {SONNET: sum(tokens.values(), Decimal(0))}
    admin_api.code_execution[day] = Decimal("0.30")
    lines = {line.model: line for line in reconcile.reconcile(day, day)}
    # Half the fee to each container; container A's half to its two calls.
    expected = {a1.pk: "0.075", a2.pk: "0.075", b.pk: "0.15", other.pk: "0"}
    for record in CallRecord.objects.all():
        share = Decimal(expected[record.pk])
        assert containers.share_of(record) == share
        assert record.cost_usd == tokens[record.pk] + share
        assert record.tool_cost_usd == share
        parts = sum(Decimal(v) for v in record.cost_breakdown.values())
        assert record.cost_usd == parts + share
    # The bill's no-model row (container hours) now agrees, to the cent.
    assert lines["(no model)"].ours == lines["(no model)"].theirs == Decimal("0.30")
    assert all(line.difference == 0 for line in lines.values())
    # Cost per feature carries it: DailyCost and the report.
    analysis = DailyCost.objects.get(feature="analysis", model=SONNET)
    assert analysis.tool_cost_usd == Decimal("0.225")
    out = StringIO()
    call_command(
        "claude_cost_report", "--since", str(day), "--until", str(day), "--breakdown",
        "--format", "json", "--tz", "UTC", stdout=out,
    )  # fmt: skip
    rows = {row["feature"]: row for row in json.loads(out.getvalue())["rows"]}
    assert Decimal(rows["analysis"]["cost_breakdown"]["code_execution"]) == Decimal("0.225")
    assert Decimal(rows["reports"]["tool_cost_usd"]) == Decimal("0.075")


def test_reconciling_a_day_again_replaces_its_shares(claude, admin_api):
    first = call_in(claude, "container_A", "analysis")
    second = call_in(claude, "container_B", "analysis")
    day = utc_day(first)
    tokens = first.cost_usd + second.cost_usd
    admin_api.costs[day] = {SONNET: tokens}
    admin_api.code_execution[day] = Decimal("0.10")
    reconcile.reconcile(day, day)
    admin_api.code_execution[day] = Decimal("0.04")  # the bill was corrected
    reconcile.reconcile(day, day)
    reconcile.reconcile(day, day)
    records = list(CallRecord.objects.all())
    assert sum(containers.share_of(r) for r in records) == Decimal("0.04")
    assert sum(r.cost_usd for r in records) == tokens + Decimal("0.04")
    del admin_api.code_execution[day]  # no fee at all (free hours): no shares left
    reconcile.reconcile(day, day)
    assert sum(r.cost_usd for r in CallRecord.objects.all()) == tokens
    assert not CallRecord.objects.exclude(code_execution_usd=0).exists()
    assert sum(r.tool_cost_usd for r in CallRecord.objects.all()) == 0


def test_an_awkward_fee_is_shared_to_the_last_digit(claude, admin_api):
    records = [call_in(claude, f"container_{n}", "analysis") for n in range(3)]
    day = utc_day(records[0])
    admin_api.code_execution[day] = Decimal("0.10")
    reconcile.reconcile(day, day)
    shares = [containers.share_of(r) for r in CallRecord.objects.all()]
    assert sum(shares) == Decimal("0.10") and sorted(shares)[0] == Decimal("0.0333333333")
    assert max(shares) - min(shares) <= Decimal("1e-9")
    admin_api.code_execution[day] = Decimal("-0.0000000005")  # a credit, to the last digit
    reconcile.reconcile(day, day)
    assert sum(containers.share_of(r) for r in CallRecord.objects.all()) == Decimal("-5E-10")


def test_a_fee_nobody_here_ran_containers_for_is_a_drift(claude, admin_api):
    record = call_in(claude, None, "chat")
    day = utc_day(record)
    admin_api.costs[day] = {SONNET: record.cost_usd}
    admin_api.code_execution[day] = Decimal("0.25")
    lines = {line.model: line for line in reconcile.reconcile(day, day)}
    assert lines["(no model)"].difference == Decimal("-0.25")
    assert not lines["(no model)"].within(Decimal("0.01"))


def test_a_share_survives_repricing_an_unpriced_call(claude, admin_api, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-unlisted-9"
    record = call_in(claude, CONTAINER, "analysis")
    assert record.cost_usd is None
    day = utc_day(record)
    admin_api.code_execution[day] = Decimal("0.05")
    lines = {line.model: line for line in reconcile.reconcile(day, day)}
    record.refresh_from_db()
    # Its tokens stay unpriced (never $0); the fee is still its own, and compared.
    assert record.cost_usd is None and record.code_execution_usd == Decimal("0.05")
    assert record.tool_cost_usd == 0  # no tool fees above an unknown cost in the report
    assert lines["(no model)"].ours == Decimal("0.05")
    ModelPrice.objects.create(
        model="claude-unlisted-9", effective_from=day - datetime.timedelta(days=1),
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("5"),
        cache_write_5m_per_mtok=Decimal("1.25"), cache_write_1h_per_mtok=Decimal("2"),
        cache_read_per_mtok=Decimal("0.1"),
    )  # fmt: skip
    call_command(
        "claude_reprice", "--since", str(day - datetime.timedelta(days=1)), stdout=StringIO()
    )
    record.refresh_from_db()
    tokens = (record.input_tokens * 1 + record.output_tokens * 5) / Decimal(1_000_000)
    assert record.cost_usd == tokens + Decimal("0.05")
    assert record.tool_cost_usd == Decimal("0.05")
    assert containers.share_of(record) == Decimal("0.05")


def test_priority_tier_calls_are_left_out_as_the_bill_leaves_them(claude, admin_api):
    claude.usage = {"service_tier": "priority"}
    priority = django_claude.call("the same question", feature="chat")
    claude.usage = {}
    standard = django_claude.call("the same question", feature="chat")
    record = CallRecord.objects.get(id=priority.request_id)
    # Priced at the list's standard rates: what its tokens are worth.
    assert record.service_tier == "priority" and priority.cost_usd == standard.cost_usd > 0
    day = utc_day(record)
    admin_api.costs[day] = {SONNET: standard.cost_usd}  # the cost report: standard only
    [line] = reconcile.reconcile(day, day)
    assert (line.ours, line.theirs, line.difference) == (standard.cost_usd, standard.cost_usd, 0)


def test_a_hostile_answer_is_recorded_without_its_runs_never_lost(claude, monkeypatch):
    from django_claude.testing import messages

    def odd(runs):
        return [
            {
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": ["code_execution"],
                "input": {},
            },
            {"type": "server_tool_use", "id": "srvtoolu_2", "name": {"a": 1}, "input": {}},
            {"type": "server_tool_use", "id": "srvtoolu_3", "name": "code_execution", "input": {}},
        ]

    monkeypatch.setattr(messages, "code_execution_blocks", odd)
    claude.code_executions = 1
    result = django_claude.call("run this", feature="analysis")
    assert result.outcome == "ok" and result.text == "Hello from the fake Claude."
    record = CallRecord.objects.get(id=result.request_id)
    assert (record.code_execution_requests, record.container_id) == (1, CONTAINER)
    with django_claude.stream("run this", feature="analysis") as stream:
        assert "".join(stream.text_stream) == "Hello from the fake Claude."
    assert stream.result.outcome == "ok"
    assert CallRecord.objects.get(id=stream.result.request_id).code_execution_requests == 1


def test_priority_calls_containers_are_shared_and_compared(claude, admin_api):
    claude.usage = {"service_tier": "priority"}
    priority = call_in(claude, "container_P", "chat")
    claude.usage = {}
    standard = call_in(claude, "container_S", "chat")
    day = utc_day(standard)
    tokens = priority.cost_usd
    admin_api.costs[day] = {SONNET: standard.cost_usd}
    admin_api.code_execution[day] = Decimal("0.20")
    lines = {line.model: line for line in reconcile.reconcile(day, day)}
    assert lines["(no model)"].ours == lines["(no model)"].theirs == Decimal("0.20")
    assert lines[SONNET].difference == 0
    priority.refresh_from_db()
    assert priority.cost_usd == tokens + Decimal("0.10")
    assert containers.share_of(priority) == Decimal("0.10")


@pytest.mark.parametrize("amount", ["1e30", "1e12", "-1e12"])
def test_an_amount_no_day_can_cost_is_a_clear_error(claude, admin_api, amount):
    record = call_in(claude, CONTAINER, "analysis")
    day = utc_day(record)
    admin_api.code_execution[day] = Decimal(amount)
    with pytest.raises(reconcile.ReconcileError, match="too large"):
        reconcile.reconcile(day, day)
    record.refresh_from_db()
    assert containers.share_of(record) == 0


def test_the_breakdown_of_an_unpriced_call_with_a_share_stays_consistent(
    claude, admin_api, settings
):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-unlisted-9"
    record = call_in(claude, CONTAINER, "analysis")
    day = utc_day(record)
    admin_api.code_execution[day] = Decimal("0.05")
    reconcile.reconcile(day, day)
    out = StringIO()
    call_command(
        "claude_cost_report", "--since", str(day), "--until", str(day), "--breakdown",
        "--format", "json", "--tz", "UTC", stdout=out,
    )  # fmt: skip
    [row] = json.loads(out.getvalue())["rows"]
    assert Decimal(row["cost_usd"]) == 0 and Decimal(row["tool_cost_usd"]) == 0
    assert all(Decimal(v) == 0 for v in row["cost_breakdown"].values())
    assert row["unpriced_calls"] == 1
