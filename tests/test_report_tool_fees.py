"""Tool fees and the cost breakdown in claude_cost_report, the rollups and the
dashboard: the same numbers from the database and from the log lines.

Hand-computed costs (claude-opus-5 list rates, USD per million tokens: input
5, output 25, cache read 0.5, 5-minute write 6.25, 1-hour write 10; web search
$10 per 1,000 searches, https://docs.anthropic.com/en/docs/about-claude/pricing):

- SEARCHING: 1000 in, 200 out, 3 searches
  input 0.005, output 0.005, tools 0.03: 0.04
- CACHING: 400 in, 100 out, 2000 cache read, 80 5m writes, 20 1h writes
  input 0.002, output 0.0025, read 0.001, 5m 0.0005, 1h 0.0002: 0.0062
"""

from __future__ import annotations

import csv
import datetime
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

import django_claude
from django_claude.costs import rollups
from django_claude.models import CallRecord, DailyCost

SEARCHING = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "server_tool_use": {"web_search_requests": 3},
}
CACHING = {
    "input_tokens": 400,
    "output_tokens": 100,
    "cache_read_input_tokens": 2000,
    "ephemeral_5m_input_tokens": 80,
    "ephemeral_1h_input_tokens": 20,
}


def report(*args: str, fmt: str = "json") -> str:
    out = StringIO()
    today = timezone.now().astimezone(datetime.UTC).date().isoformat()
    call_command(
        "claude_cost_report", "--date", today, *args, "--format", fmt, stdout=out, stderr=StringIO()
    )
    return out.getvalue()


@pytest.fixture
def billed_day(claude, settings):
    """Three calls through the real SDK: two searching on "research", one caching on "chat"."""
    settings.TIME_ZONE = "UTC"
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-opus-5"
    claude.usage = SEARCHING
    django_claude.call("find the news", feature="research")
    django_claude.call("find more news", feature="research")
    claude.usage = CACHING
    django_claude.call("hello again", feature="chat")
    return claude


def test_tool_fees_have_their_own_columns(billed_day):
    rows = {row["feature"]: row for row in json.loads(report())["rows"]}
    assert rows["research"]["web_search_requests"] == 6
    assert rows["research"]["tool_cost_usd"] == "0.0600000000"
    assert rows["research"]["cost_usd"] == "0.0800000000"
    assert rows["chat"]["web_search_requests"] == 0
    assert rows["chat"]["tool_cost_usd"] == "0.0000000000"
    assert json.loads(report())["total_tool_cost_usd"] == "0.0600000000"
    assert "cost_breakdown" not in rows["research"]  # only when asked for


def test_the_breakdown_splits_each_cost_into_its_parts(billed_day):
    data = json.loads(report("--breakdown"))
    rows = {row["feature"]: row for row in data["rows"]}
    assert rows["research"]["cost_breakdown"] == {
        "input": "0.0100000000",
        "output": "0.0100000000",
        "cache_read": "0.0000000000",
        "cache_write_5m": "0.0000000000",
        "cache_write_1h": "0.0000000000",
        "tools": "0.0600000000",
        "code_execution": "0.0000000000",
        "other": "0.0000000000",
    }
    assert rows["chat"]["cost_breakdown"] == {
        "input": "0.0020000000",
        "output": "0.0025000000",
        "cache_read": "0.0010000000",
        "cache_write_5m": "0.0005000000",
        "cache_write_1h": "0.0002000000",
        "tools": "0.0000000000",
        "code_execution": "0.0000000000",
        "other": "0.0000000000",
    }
    assert data["total_cost_breakdown"]["tools"] == "0.0600000000"
    assert data["total_cost_breakdown"]["input"] == "0.0120000000"
    assert sum(Decimal(v) for v in data["total_cost_breakdown"].values()) == Decimal(
        data["total_cost_usd"]
    )


def test_the_database_and_the_log_agree_on_tool_fees_and_breakdown(
    billed_day, call_lines, tmp_path
):
    log = tmp_path / "calls.log"
    log.write_text(call_lines.raw)
    for by in ("feature", "model", "user"):
        for extra in ((), ("--breakdown",)):
            from_db = json.loads(report("--by", by, *extra))
            from_log = json.loads(report("--by", by, *extra, "--from-log", str(log)))
            assert from_db == from_log, (by, extra)
    assert from_db["total_tool_cost_usd"] == "0.0600000000"


def test_a_call_recorded_before_breakdowns_is_other(db, settings):
    """A record without a breakdown (written before it was kept) keeps its
    whole cost in "other": the parts always add up to the cost."""
    settings.TIME_ZONE = "UTC"
    CallRecord.objects.create(
        created_at=timezone.now(),
        feature="legacy",
        model_requested="claude-sonnet-4-6",
        model="claude-sonnet-4-6",
        outcome="ok",
        cost_usd=Decimal("0.25"),
    )
    (row,) = json.loads(report("--breakdown"))["rows"]
    assert row["cost_breakdown"]["other"] == "0.2500000000"
    assert row["cost_breakdown"]["input"] == "0.0000000000"


def test_the_table_and_csv_show_the_new_columns(billed_day):
    table = report("--breakdown", fmt="table")
    header = table.splitlines()[1].split()
    assert "searches" in header and "tools" in header
    for column in ("input", "output", "read", "5m", "1h", "other"):
        assert column in header
    research = next(line for line in table.splitlines() if line.startswith("research"))
    assert "0.060000" in research.split()  # its tool fees
    rows = list(csv.DictReader(StringIO(report("--breakdown", fmt="csv"))))
    by_feature = {row["feature"]: row for row in rows}
    assert by_feature["research"]["tool_cost_usd"] == "0.0600000000"
    assert by_feature["research"]["tools_cost_usd"] == "0.0600000000"
    assert by_feature["chat"]["cache_write_1h_cost_usd"] == "0.0002000000"
    plain = list(csv.DictReader(StringIO(report(fmt="csv"))))
    assert "input_cost_usd" not in plain[0] and plain[0]["web_search_requests"] in ("6", "0")


def test_an_empty_csv_with_breakdown_still_names_its_columns(db):
    header = next(csv.reader(StringIO(report("--breakdown", fmt="csv"))))
    assert header[-8:] == [
        "input_cost_usd",
        "output_cost_usd",
        "cache_read_cost_usd",
        "cache_write_5m_cost_usd",
        "cache_write_1h_cost_usd",
        "tools_cost_usd",
        "code_execution_cost_usd",
        "other_cost_usd",
    ]
    assert "tool_cost_usd" in header


def test_rollups_keep_searches_and_tool_fees(billed_day, call_lines):
    today = timezone.now().astimezone(datetime.UTC).date()
    rollups.rollup_day(today)
    saved = DailyCost.objects.get(feature="research")
    assert (saved.web_search_requests, saved.tool_cost_usd) == (6, Decimal("0.06"))
    DailyCost.objects.all().delete()
    rollups.rollup_from_lines(call_lines.lines, since=today, until=today)
    saved = DailyCost.objects.get(feature="research")
    assert (saved.web_search_requests, saved.tool_cost_usd) == (6, Decimal("0.06"))


def test_reprice_fills_the_tool_fee(db, settings):
    """A searching call recorded unpriced gets its tool fee when repriced."""
    from django_claude.costs.repricing import reprice
    from tests.prices import site_price

    settings.TIME_ZONE = "UTC"
    when = timezone.now()
    CallRecord.objects.create(
        created_at=when,
        feature="research",
        model_requested="claude-internal-9",
        model="claude-internal-9",
        outcome="ok",
        input_tokens=1000,
        web_search_requests=4,
        cost_usd=None,
    )
    site_price(
        "claude-internal-9", when.date() - datetime.timedelta(days=1), "1", "2", "1.25", "2", "0.1"
    )
    assert reprice(since=when.date()).repriced == 1
    record = CallRecord.objects.get()
    assert record.tool_cost_usd == Decimal("0.04")
    assert record.cost_usd == Decimal("0.041")


@pytest.mark.parametrize(
    "breakdown",
    [["not", "an", "object"], {"tools": "a lot"}, {"input": "NaN"}, {"tools": True}],
)
def test_a_log_line_with_a_garbled_breakdown_is_skipped_and_counted(db, tmp_path, breakdown):
    line = {
        "event": "claude.call",
        "request_id": "6f1c7a9e-1111-4222-8333-444455556666",
        "created_at": timezone.now().isoformat(),
        "feature": "research",
        "model": "claude-opus-5",
        "outcome": "ok",
        "cost_usd": "0.04",
        "cost_breakdown": breakdown,
    }
    log = tmp_path / "calls.log"
    log.write_text(json.dumps(line) + "\n")
    out, err = StringIO(), StringIO()
    today = timezone.now().astimezone(datetime.UTC).date().isoformat()
    call_command(
        "claude_cost_report",
        "--date",
        today,
        "--tz",
        "UTC",
        "--breakdown",
        "--format",
        "json",
        "--from-log",
        str(log),
        stdout=out,
        stderr=err,
    )
    assert json.loads(out.getvalue())["rows"] == []
    assert "1 corrupt log lines were skipped" in err.getvalue()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_fills_the_tool_fees_of_past_calls():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("django_claude", "0011_reconciliation")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    executor.loader.build_graph()
    old = executor.loader.project_state(before).apps.get_model("django_claude", "CallRecord")
    common = {
        "created_at": timezone.now(),
        "feature": "research",
        "model_requested": "claude-opus-5",
        "model": "claude-opus-5",
        "outcome": "ok",
    }
    searched = old.objects.create(
        **common,
        web_search_requests=2,
        cost_usd=Decimal("0.03"),
        cost_breakdown={"input": "0.01", "tools": "0.02"},
    )
    garbled = old.objects.create(**common, web_search_requests=1, cost_breakdown={"tools": "lots"})
    plain = old.objects.create(**common, cost_usd=Decimal("0.01"), cost_breakdown={"input": "0.01"})
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    fees = dict(CallRecord.objects.values_list("id", "tool_cost_usd"))
    assert fees == {searched.id: Decimal("0.02"), garbled.id: Decimal(0), plain.id: Decimal(0)}
    CallRecord.objects.all().delete()
