"""Rows written behind on PostgreSQL are copied from the call's log line
without making a ``CallRecord``: each column must be exactly what the record
the line makes would have sent."""

from __future__ import annotations

import copy
import json
import math
import uuid
from typing import Any

import pytest
from django.db import connection

import django_claude
from django_claude.models import CallRecord
from django_claude.recording.encoding import storable
from django_claude.recording.inserts import Columns, FromLine
from django_claude.recording.rows import RECORD_FIELDS, fit, line_values, record_from_line
from django_claude.testing import Fault


def comparable(row: list[Any]) -> list[Any]:
    """psycopg's JSON wrapper compares by identity: compare what it wraps; a
    JSON column sent as text (as COPY sends it), compare what it says."""
    json_columns = Columns.of("default").json
    return [
        json.loads(value) if is_json and isinstance(value, str) else getattr(value, "obj", value)
        for value, is_json in zip(row, json_columns, strict=True)
    ]


def as_copied(line: dict[str, Any]) -> list[Any]:
    return comparable(Columns.of("default").of_values(line_values(line), connection))


def as_record(line: dict[str, Any]) -> list[Any]:
    record = record_from_line(line)
    return comparable(Columns.of("default").of_record(record, connection))


@pytest.fixture
def lines(claude, call_lines, django_user_model):
    """Log lines of real calls: answered, failed over, degraded, with a user,
    a tenant, tags and a price."""
    user = django_user_model.objects.create(username="ada")
    django_claude.call("Summarise the ticket.", feature="support", user=user, tenant="acme")
    django_claude.call("hi", feature="tags", tags={"plan": "pro", "n": 3, "ok": True})
    from django_claude.conf import conf

    claude.script(conf.DEFAULT_MODEL, [Fault(status=529) for _ in range(5)])
    assert django_claude.call("hi", feature="fallback").outcome == "fallback"
    claude.always(conf.DEFAULT_MODEL, 529)
    claude.always(conf.FALLBACK_MODEL, 529)
    assert django_claude.call("hi", feature="degraded").outcome == "degraded"
    return [json.loads(record.getMessage()) for record in call_lines.records]


def variants(line: dict[str, Any]) -> list[dict[str, Any]]:
    """The line as another site, an old version or a hand-edited file may
    carry it."""
    out = []
    for change in (
        {"user_id": None},
        {"user_id": "not-a-user-key"},
        {"user_id": 10**30},
        {"cost_usd": None},
        {"cost_usd": "0.0012345678901"},
        {"cost_usd": 0.5},
        {"tags": {"nul": "a\x00b", "nan": math.nan, "nested": {"k": [1, "x\x00"]}}},
        {"cost_breakdown": {"input": "0.1", "tools": "0.02"}},
        {"created_at": "2026-11-28T09:00:00"},  # no zone: UTC
        {"created_at": "2026-11-28T09:00:00+05:30"},
        {"input_tokens": 10**12, "latency_ms": -5, "attempts": 3.7},
        {"feature": "x" * 500, "prompt_prefix": "ünïcødé " * 40},
        {"error_status": None, "canary_id": None, "arm": None},
        {"error_status": 529, "canary_id": 7, "arm": "canary"},
        {"judged_at": None, "smell_verdict": "pending"},
    ):
        changed = copy.deepcopy(line)
        changed.update(change)
        out.append(changed)
    for missing in ("tags", "cost_breakdown", "attempt_log", "tenant", "model", "user_id"):
        shorter = copy.deepcopy(line)
        shorter.pop(missing, None)
        out.append(shorter)
    return out


def test_a_line_is_copied_as_the_record_it_makes_would_be(lines):
    assert len(lines) >= 3
    checked = 0
    for line in lines:
        for variant in [line, *variants(line)]:
            try:
                expected = as_record(variant)
            except ValueError:
                with pytest.raises(ValueError):
                    as_copied(variant)
                continue
            assert as_copied(variant) == expected, variant
            checked += 1
    assert checked > 3 * 15


def test_a_call_record_needs_no_save_hooks():
    # Copying values straight from a line skips Model.save's pre_save: right
    # only while no column sets itself on save.
    for field in CallRecord._meta.concrete_fields:
        assert not getattr(field, "auto_now", False), field.name
        assert not getattr(field, "auto_now_add", False), field.name


@pytest.mark.postgres
def test_copy_itself_takes_the_rows_json_columns_sent_as_text(lines):
    # Not the writer, which would fall back to one INSERT a row if COPY failed.
    from django.db import transaction

    from django_claude.recording.inserts import insert_rows

    nul = dict(lines[0], request_id=str(uuid.uuid4()), tags={"note": "a\x00b"})
    sent = [*lines, nul]
    CallRecord.objects.all().delete()
    with transaction.atomic():
        insert_rows("default", [line_values(line) for line in sent])
    for line in sent:
        expected = record_from_line(line)
        row = CallRecord.objects.get(pk=expected.pk)
        for field in CallRecord._meta.concrete_fields:
            assert getattr(row, field.attname) == getattr(expected, field.attname), field.name
    assert CallRecord.objects.get(pk=nul["request_id"]).tags == {"note": "a\\x00b"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rows_written_behind_by_copy_equal_their_lines(
    fake_anthropic, call_lines, settings, caplog
):
    from django_claude.recording.writer import flush_pending, write_record

    settings.DJANGO_CLAUDE_WRITE_BEHIND = False
    for n in range(6):
        # JSON that COPY's text format must carry through: quotes, a
        # backslash, a tab, non-ASCII, a float, a null.
        tags = {"n": n, "note": 'naïve "q" \\ b\tack', "x": 1.5, "none": None}
        django_claude.call(f"question {n}", feature="copy", tags=tags)
    made = [json.loads(r.getMessage()) for r in call_lines.records]
    CallRecord.objects.all().delete()
    broken = dict(made[0], request_id="not-a-uuid")
    for line in [*made[:3], broken, *made[3:]]:
        write_record(FromLine(line, line_values), background=True)
    assert flush_pending(10)
    stored = {r.id: r for r in CallRecord.objects.all()}
    assert len(stored) == len(made)  # the broken line given up, no other
    for line in made:
        expected = record_from_line(line)
        row = stored[expected.id]
        for field in CallRecord._meta.concrete_fields:
            assert getattr(row, field.attname) == getattr(expected, field.attname), field.name
    assert any("not built" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_line_whose_values_no_column_holds_keeps_its_row(lines):
    """A user key beyond the column, NUL and NaN inside the attempts: the row
    is written without what does not fit (before, the database refused it)."""
    line = dict(lines[0], request_id="6f1c1f5e-0000-4000-8000-000000000001")
    line["user_id"] = 2**63
    line["attempt_log"] = [{"model": "m\x00", "latency_ms": math.nan, "status": 200}]
    record = record_from_line(line)
    record.save(force_insert=True)
    stored = CallRecord.objects.get(id=record.id)
    assert stored.user_id is None
    assert stored.attempt_log == [{"model": "m\\x00", "latency_ms": "nan", "status": 200}]


ODD_VALUES = [
    "",
    "plain",
    "with\x00nul",
    "x" * 99,
    "x" * 100,
    "x" * 101,
    "x" * 5000,
    "é" * 120,
    0,
    1,
    -1,
    32_767,
    32_768,
    2_147_483_647,
    2_147_483_648,
    10**30,
    True,
    False,
    3.0,
    3.7,
    "12",
    "nan",
    float("inf"),
    [],
    {},
    {"a": "b\x00"},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_a_value_kept_without_fit_is_what_fit_would_make(value, settings):
    # line_values keeps most values as they are, without calling fit: for
    # every field and every odd value, what it keeps is what fit makes (or it
    # refuses the line, as fit would).
    base = {"request_id": "0" * 32, "created_at": "2026-11-28T10:00:00+00:00"}
    for name in RECORD_FIELDS:
        try:
            expected: Any = fit(name, value)
        except ValueError:
            with pytest.raises(ValueError):
                line_values({**base, name: value})
            continue
        try:
            made = line_values({**base, name: value})
        except ValueError:
            # Not fit's refusal: a JSON field's value of the wrong kind.
            assert name in ("attempt_log", "tags", "cost_breakdown")
            continue
        if name in ("attempt_log", "tags", "cost_breakdown"):
            expected = storable(expected)
        assert made[name] == expected or (expected != expected and made[name] != made[name])
        assert type(made[name]) is type(expected)


def test_json_sent_as_text_only_when_the_column_can_take_it_as_it_is():
    from django_claude.recording.encoding import json_column_text

    assert json.loads(json_column_text({"a": ["ü", 1.5, None]}) or "") == {"a": ["ü", 1.5, None]}
    assert json_column_text({"a": "nul \x00 here"}) is None  # storable() mends it first
    assert json_column_text([math.nan]) is None
    assert json_column_text({"a": object()}) is None
