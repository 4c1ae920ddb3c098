"""Every management command answers bad input with one CommandError line
naming the bad option: exit status 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection

from django_claude.models import ModelRoute, ModelRouteChange, SmellBaseline

ROOT = Path(__file__).resolve().parent.parent
SONNET = "claude-sonnet-4-6"


def fails(command: str, *args: str, match: str) -> None:
    with pytest.raises(CommandError, match=match) as caught:
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
    assert "\n" not in str(caught.value), "one line"


def run_django(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m django ...`` on an empty in-memory SQLite database: each case
    fails before it needs a table (or because there is none)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CACHE_URL")}
    env["PYTHONPATH"] = "."
    return subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings=tests.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], option: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("CommandError: ") and option in lines[-1], result.stderr
    assert len([line for line in lines if line.startswith("CommandError")]) == 1


# -- claude_cost_report ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--date", "9999-12-31"], "--date: 9999-12-31 is out of range"),
        (["--date", "0001-01-01"], "--date: 0001-01-01 is out of range"),
        (["--date", ""], "--date: not a date"),
        (["--date", "2026-02-30"], "--date: not a date"),
        (["--date", "2026-11-20\x00"], "--date: not a date"),
        (["--since", "yesterday"], "--since: not a date"),
        (["--since", "2026-11-01", "--until", "9999-12-31"], "--until: .* out of range"),
        (["--since", "2026-11-01", "--until", ""], "--until: not a date"),
        (["--date", "2026-11-01", "--until", "2026-11-02"], "--date, or --since/--until"),
        (["--tz", "Mars/Olympus"], "--tz: unknown time zone"),
        (["--tz", ""], "--tz: empty"),
        (["--tz", "Europe"], "--tz: unknown time zone"),
        (["--tz", "../../etc/passwd"], "--tz: unknown time zone"),
        (["--tz", "x" * 5000], "--tz: unknown time zone 'xxx"),
        (["--tz", "UTC\x00"], "--tz: unknown time zone"),
        (["--by", "colour"], "--by: invalid choice"),
        (["--format", "xlsx"], "--format: invalid choice"),
        (["--since", "0026-01-01", "--until", "2026-01-01", "--save"], "--save: .* at most"),
        (["--date", "2026-11-20", "--from-log", "/no/such/file.log"], "--from-log: .*no such"),
    ],
)
def test_cost_report_bad_input(db, args, match):
    fails("claude_cost_report", *args, match=match)


def test_cost_report_unreadable_logs(db, tmp_path):
    fails(
        "claude_cost_report",
        "--from-log",
        str(tmp_path),
        str(tmp_path / "nope.log"),
        match="--from-log: no file could be read .*is a directory.*no such file",
    )


def test_cost_report_from_the_command_line():
    assert_one_line_error(run_django("claude_cost_report", "--date", "9999-12-31"), "--date")


# -- claude_ingest_log -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--batch-size", "0"], "--batch-size must be between 1 and"),
        (["--batch-size", "-5"], "--batch-size must be between 1 and"),
        (["--batch-size", str(10**12)], "--batch-size must be between 1 and"),
        (["--batch-size", "many"], "--batch-size: invalid int value"),
    ],
)
def test_ingest_bad_options(db, tmp_path, args, match):
    log = tmp_path / "calls.log"
    log.write_text("")
    fails("claude_ingest_log", str(log), *args, match=match)


def test_ingest_nothing_readable(db, tmp_path):
    fails("claude_ingest_log", str(tmp_path / "nope.log"), match="no such file")
    fails("claude_ingest_log", str(tmp_path), match="is a directory")
    fails("claude_ingest_log", match="the following arguments are required: FILE")


def test_ingest_from_the_command_line(tmp_path):
    result = run_django("claude_ingest_log", str(tmp_path / "missing.log"))
    assert_one_line_error(result, "missing.log: no such file")


# -- claude_reprice --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--since", ""], "--since: not a date"),
        (["--since", "9999-12-31"], "--since: 9999-12-31 is out of range"),
        (["--since", "last week"], "--since: not a date"),
        (["--since", "2026-11-01", "--tz", "Mars/Olympus"], "--tz: unknown time zone"),
        (["--since", "2026-11-01", "--tz", ""], "--tz: empty"),
        ([], "--since"),
    ],
)
def test_reprice_bad_input(db, args, match):
    fails("claude_reprice", *args, match=match)


def test_reprice_from_the_command_line():
    assert_one_line_error(run_django("claude_reprice", "--since", ""), "--since")


# -- claude_route ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["set", "--feature", "f" * 300, "--model", SONNET], "--feature: 300 characters"),
        (["set", "--feature", "sup\x00port", "--model", SONNET], "--feature: contains a NUL"),
        (["set", "--feature", "a\nb", "--model", SONNET], "--feature: contains a control"),
        (["set", "--feature", "chat", "--model", "m" * 101], "--model: 101 characters"),
        (["set", "--feature", "chat", "--model", "claude\x00"], "--model: contains a NUL"),
        (["set", "--feature", "chat", "--model", " claude"], "--model: A model id is required"),
        (["set", "--feature", "chat", "--model", "claude-unknown-9"], "--model: .*no price"),
        (
            ["set", "--feature", "chat", "--model", SONNET, "--fallback", SONNET],
            "--fallback: The fallback must be a different model",
        ),
        (
            ["set", "--feature", "chat", "--model", SONNET, "--fallback", "x\x00"],
            "--fallback: contains a NUL",
        ),
        (
            ["set", "--feature", "chat", "--model", SONNET, "--reason", "why\x00"],
            "--reason: contains a NUL",
        ),
        (
            ["set", "--feature", "chat", "--model", SONNET, "--reason", "r" * 501],
            "--reason: 501 characters, at most 500",
        ),
        (["set", "--feature", "chat", "--model", SONNET, "--user", "ghost"], "--user: no user"),
        (["set", "--feature", "chat", "--model", SONNET, "--user", "a\x00"], "--user: contains"),
        (["set", "--model", SONNET], "set needs --feature"),
        (["set", "--feature", "chat"], "set needs --model"),
        (["rollback", "--feature", "never-routed"], "--feature: .*no history"),
        (["show", "--feature", "a\x00"], "--feature: contains a NUL"),
        (["flip"], "invalid choice"),
    ],
)
def test_route_bad_input(db, args, match):
    fails("claude_route", *args, match=match)
    assert not ModelRoute.objects.exists() and not ModelRouteChange.objects.exists()


def test_route_show_a_feature_without_its_own_route(db):
    out = StringIO()
    call_command("claude_route", "show", "--feature", "chat", stdout=out)
    assert "chat has no route of its own: it uses" in out.getvalue()


def test_route_from_the_command_line():
    result = run_django("claude_route", "set", "--feature", "f" * 300, "--model", SONNET)
    assert_one_line_error(result, "--feature")


# -- claude_smell_baseline -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--feature", "chat", "--sample", "0"], "--sample must be between 1 and"),
        (["--feature", "chat", "--sample", "-3"], "--sample must be between 1 and"),
        (["--feature", "chat", "--sample", str(10**20)], "--sample must be between 1 and"),
        (["--feature", "chat", "--sample", "ten"], "--sample: invalid int value"),
        (["--feature", ""], "--feature: empty"),
        (["--feature", "f" * 300], "--feature: 300 characters"),
        (["--feature", "ch\x00at"], "--feature: contains a control"),
        (["--feature", "never-judged"], "--feature: no judged calls"),
        (["--feature", "chat", "--from-file", "/no/such/history.jsonl"], "--from-file: no such"),
        (["--feature", "chat", "--from-file", ""], "--from-file: no such file"),
        ([], "--feature"),
    ],
)
def test_smell_baseline_bad_input(db, args, match):
    fails("claude_smell_baseline", *args, match=match)
    assert not SmellBaseline.objects.exists()


def test_smell_baseline_bad_files(db, tmp_path):
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "\n")
    for path, match in [
        (tmp_path, "--from-file: .* is a directory"),
        (binary, "--from-file: .*binary.jsonl: not UTF-8 text"),
        (empty, "--from-file: .*empty.jsonl holds no prompt/response pairs"),
        (deep, "--from-file: .*deep.jsonl:1: expected"),
    ]:
        fails("claude_smell_baseline", "--feature", "chat", "--from-file", str(path), match=match)


def test_smell_baseline_from_the_command_line():
    result = run_django("claude_smell_baseline", "--feature", "chat", "--sample", "0")
    assert_one_line_error(result, "--sample")


# -- claude_install_schedules ----------------------------------------------------------------


def test_install_schedules_bad_setups(db, settings):
    fails("claude_install_schedules", "extra", match="unrecognized arguments")

    def refuse(execute, sql, params, many, context):
        if "django_celery_beat" in sql:
            raise OperationalError("no such table: django_celery_beat_crontabschedule")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse):
        fails("claude_install_schedules", match="could not write the schedules.*migrate")
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_celery_beat"]
    fails("claude_install_schedules", match="django_celery_beat is not in INSTALLED_APPS")


def test_install_schedules_from_the_command_line():
    # The subprocess's in-memory database has no tables: as if migrate never ran.
    result = run_django("claude_install_schedules")
    assert_one_line_error(result, "could not write the schedules")
