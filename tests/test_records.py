"""One record and one log line per call, whatever happens to the caller."""

from __future__ import annotations

import asyncio
import gzip
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, transaction

import django_claude
from django_claude.conf import conf
from django_claude.models import CallRecord
from django_claude.recording import rows, writer
from django_claude.testing import Fault

LINE_FIELDS = {
    "event",
    "request_id",
    "created_at",
    "feature",
    "user_id",
    "user_ref",
    "tenant",
    "arm",
    "canary_id",
    "trace_id",
    "span_id",
    "model_requested",
    "model",
    "outcome",
    "attempts",
    "attempt_log",
    "fallback_used",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "web_search_requests",
    "web_fetch_requests",
    "inference_geo",
    "speed",
    "service_tier",
    "code_execution_requests",
    "container_id",
    "stop_reason",
    "cost_usd",
    "cost_breakdown",
    "priced",
    "prompt_prefix",
    "error_type",
    "error_status",
    "upstream_request_id",
    "smell_verdict",
    "tags",
    "idempotency_key",
}


class Boom(Exception):
    pass


def test_exactly_one_line_and_one_record_with_every_field(claude, call_lines):
    result = django_claude.call("hello", feature="f", tags={"plan": "pro"})
    [line] = call_lines.lines
    assert set(line) == LINE_FIELDS
    assert line["request_id"] == str(result.request_id)
    assert line["tags"] == {"plan": "pro"}
    assert call_lines.records[0].claude == line  # structured too, for JSON handlers
    assert CallRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_record_survives_the_callers_rollback(fake_anthropic):
    User = get_user_model()
    with pytest.raises(Boom), transaction.atomic():
        User.objects.create(username="rolled-back")
        result = django_claude.call("hi", feature="f")
        raise Boom
    assert writer.flush_pending()
    assert not User.objects.filter(username="rolled-back").exists()
    assert CallRecord.objects.get().id == result.request_id


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_record_inside_a_committed_transaction(fake_anthropic):
    with transaction.atomic():
        result = django_claude.call("hi", feature="f")
        # the caller's transaction is untouched and still usable
        assert get_user_model().objects.count() == 0
    assert writer.flush_pending()
    assert CallRecord.objects.get().id == result.request_id


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_record_survives_atomic_requests(fake_anthropic, client, monkeypatch, settings):
    settings.ROOT_URLCONF = "tests.urls_atomic"
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    client.raise_request_exception = False
    response = client.get("/ask-then-fail/")
    assert response.status_code == 500
    assert writer.flush_pending()
    assert not get_user_model().objects.exists()
    assert CallRecord.objects.get().feature == "atomic-view"


def _refuse_call_records(execute, sql, params, many, context):
    if "django_claude_callrecord" in sql and sql.lstrip().upper().startswith("INSERT"):
        raise OperationalError("database is down")
    return execute(sql, params, many, context)


def test_database_down_keeps_the_answer_and_the_line(claude, call_lines, caplog, tmp_path):
    with connection.execute_wrapper(_refuse_call_records):
        result = django_claude.call("hi there", feature="f")
    assert result.outcome == "ok"
    assert result.text == "Hello from the fake Claude."
    assert not CallRecord.objects.exists()
    assert "claude_ingest_log" in caplog.text
    [line] = call_lines.lines
    assert line["request_id"] == str(result.request_id)
    # ...and the line alone rebuilds the record
    log = tmp_path / "calls.log"
    log.write_text(call_lines.raw + "\n")
    out = StringIO()
    call_command("claude_ingest_log", str(log), stdout=out)
    assert "1 records created" in out.getvalue()
    record = CallRecord.objects.get()
    assert record.id == result.request_id
    assert record.cost_usd == result.cost_usd
    assert record.prompt_prefix == "hi there"
    assert record.attempt_log == line["attempt_log"]


def test_ingest_is_idempotent_and_tolerant(claude, call_lines, tmp_path):
    django_claude.call("one", feature="a")
    django_claude.call("two", feature="b")
    lines = call_lines.raw.splitlines()
    CallRecord.objects.all().delete()
    plain = tmp_path / "app.log"
    plain.write_text(
        "2026-11-26 10:00:00 INFO django_claude.calls " + lines[0] + "\n"
        "2026-11-26 10:00:01 INFO django.request GET /health 200\n"
        '{"event": "claude.call", "request_id": \n'
        '{"event": "something.else"}\n'
    )
    zipped = tmp_path / "app.log.1.gz"
    with gzip.open(zipped, "wt") as handle:
        handle.write(lines[1] + "\n")
    out = StringIO()
    call_command("claude_ingest_log", str(plain), str(zipped), stdout=out, stderr=StringIO())
    assert "2 records created" in out.getvalue()
    assert "1 corrupt lines" in out.getvalue()
    out = StringIO()
    call_command("claude_ingest_log", str(plain), str(zipped), stdout=out, stderr=StringIO())
    assert "0 records created, 2 already present" in out.getvalue()
    assert sorted(CallRecord.objects.values_list("feature", flat=True)) == ["a", "b"]


def test_ingest_missing_file_is_a_command_error(db, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("claude_ingest_log", str(tmp_path / "nope.log"), stdout=StringIO())


def test_log_line_is_redacted(claude, call_lines):
    django_claude.call(
        "My card is 4111 1111 1111 1111, email ada@example.com",
        feature="f",
        user="ada@example.com",
        idempotency_key="order-for-ada@example.com",
    )
    raw = call_lines.raw
    # The card's digit groups, not "4111" alone: a version-4 request id is
    # "...-4xxx-..." and was "-4111-" once in 4,096 runs (a CI run hit it).
    assert "4111 1111" not in raw and "1111 1111" not in raw
    assert "ada@example.com" not in raw
    record = CallRecord.objects.get()
    assert record.prompt_prefix == "My card is [CARD], email [EMAIL]"
    assert record.user_ref == "[EMAIL]"
    assert record.idempotency_key == "[EMAIL]"


def test_custom_redactor(claude, settings):
    settings.DJANGO_CLAUDE_REDACTOR = "tests.test_records.shout_redactor"
    django_claude.call("project Apollo is secret", feature="f")
    assert CallRecord.objects.get().prompt_prefix == "project [CODENAME] is secret"


def shout_redactor(text: str) -> str:
    from django_claude.recording.redaction import redact

    return redact(text).replace("Apollo", "[CODENAME]")


PII_PROMPT = "Mail jane.doe@example.com with key sk-ant-api03-" + "x" * 40 + " about the invoice"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("redactor", ["default", "site's own"])
def test_async_calls_record_the_prefix_a_sync_call_does(
    fake_anthropic, call_lines, settings, redactor
):
    """acall and astream redact the prompt's prefix while they wait for the
    answer (the built-in redactor), or in their ending (a site's own, which
    might block): the line says the same either way."""
    settings.DJANGO_CLAUDE_WRITE_BEHIND = True  # the ending on the loop: the prefix made early
    if redactor != "default":
        settings.DJANGO_CLAUDE_REDACTOR = "tests.test_records.shout_redactor"

    async def both() -> list:
        called = await django_claude.acall(PII_PROMPT, feature="prefix")
        async with django_claude.astream(PII_PROMPT, feature="prefix") as s:
            assert [text async for text in s.text_stream]
        return [called, s.result]

    results = [django_claude.call(PII_PROMPT, feature="prefix"), *asyncio.run(both())]
    lines = {line["request_id"]: line for line in call_lines.lines}
    prefixes = {lines[str(result.request_id)]["prompt_prefix"] for result in results}
    assert len(prefixes) == 1
    (prefix,) = prefixes
    assert "jane.doe" not in prefix and "sk-ant-api03" not in prefix
    assert "[EMAIL]" in prefix


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_prefix_made_early_is_made_again_if_its_settings_change_meanwhile(
    fake_anthropic, call_lines, settings
):
    settings.DJANGO_CLAUDE_WRITE_BEHIND = True
    django_claude.call("warm", feature="f")  # prices in memory: the ending can run on the loop
    fake_anthropic.script(conf.DEFAULT_MODEL, [Fault(delay=0.3)])

    async def tighten_while_it_waits() -> str:
        call = asyncio.ensure_future(django_claude.acall("Project Apollo launch plan", feature="f"))
        await asyncio.sleep(0.15)  # the prefix was made at the loop's first turn
        settings.DJANGO_CLAUDE_REDACTOR = "tests.test_records.shout_redactor"
        settings.DJANGO_CLAUDE_PROMPT_PREFIX_CHARS = 20
        return str((await call).request_id)

    request_id = asyncio.run(tighten_while_it_waits())
    (line,) = [line for line in call_lines.lines if line["request_id"] == request_id]
    assert line["prompt_prefix"] == "Project [CODENAME] …"


def test_prefix_length_setting(claude, settings):
    settings.DJANGO_CLAUDE_PROMPT_PREFIX_CHARS = 10
    django_claude.call("abcdefghijklmnopqrstuvwxyz", feature="f")
    assert CallRecord.objects.get().prompt_prefix == "abcdefghi…"


def test_without_time_zones_a_call_is_recorded_in_local_time(claude, settings):
    import datetime

    from django.utils import timezone

    settings.USE_TZ = False
    settings.TIME_ZONE = "Asia/Tokyo"
    before = timezone.now()  # naive, Tokyo time
    result = django_claude.call("hi", feature="f")
    assert result.outcome == "ok"
    saved = CallRecord.objects.get(id=result.request_id)
    assert timezone.is_naive(saved.created_at)
    assert abs(saved.created_at - before) < datetime.timedelta(minutes=1)


def test_record_from_line_round_trip(claude, call_lines):
    result = django_claude.call("hi", feature="f")
    saved = CallRecord.objects.get()
    rebuilt = rows.record_from_line(json.loads(call_lines.raw))
    for field in CallRecord._meta.concrete_fields:
        assert getattr(rebuilt, field.attname) == getattr(saved, field.attname), field.name
    assert rebuilt.id == result.request_id


def test_inside_a_test_case_records_roll_back_with_the_test(claude):
    # pytest-django's `db` wraps each test in a transaction; a nested atomic
    # of the test's own writes its record in that transaction, synchronously.
    with transaction.atomic():
        result = django_claude.call("hi", feature="f")
        assert CallRecord.objects.filter(id=result.request_id).exists()


def test_a_broken_test_transaction_still_gets_its_answer(claude, caplog):
    from django.db import IntegrityError

    User = get_user_model()
    User.objects.create(username="twin")
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            User.objects.create(username="twin")  # the block is now marked for rollback
        result = django_claude.call("hi", feature="f")
    assert result.outcome == "ok"
    assert "not saved" in caplog.text
