"""Hostile input: every bad argument is a clear error before any request, any
user model works, and whatever a call carries, its line and row are written."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import enum
import json
import math
import os
import subprocess
import sys
import uuid

import pytest

import django_claude
from django_claude.models import CallRecord
from django_claude.recording.encoding import call_line_json, json_safe, to_json
from django_claude.recording.rows import CUT, record_from_line
from django_claude.types import Outcome

USER_UUID = uuid.UUID("6f1c2a9e-3b7d-4c1e-9a2f-5d8e7b6c4a31")

# (keyword arguments, the exception, a word the message must contain)
BAD_ARGUMENTS = [
    ({"messages": [1]}, TypeError, "messages[0]"),
    ({"messages": []}, ValueError, "messages"),
    ({"messages": "hello"}, ValueError, "messages"),
    ({"messages": [{"role": "bot", "content": "x"}]}, ValueError, "role"),
    ({"messages": [{"role": "user"}]}, ValueError, "content"),
    ({"messages": [{"role": "user", "content": [1]}]}, TypeError, "content"),
    ({"messages": [{"role": "user", "content": 5}]}, TypeError, "content"),
    ({"prompt": 5}, TypeError, "prompt"),
    ({"prompt": "   "}, ValueError, "prompt"),
    ({"prompt": "bad \ud800 surrogate"}, ValueError, "surrogate"),
    ({"feature": None}, ValueError, "feature"),
    ({"feature": ""}, ValueError, "feature"),
    ({"feature": "x" * 300}, ValueError, "feature"),
    ({"feature": "nul\x00inside"}, ValueError, "feature"),
    ({"feature": "line\nbreak"}, ValueError, "feature"),
    ({"feature": 42}, TypeError, "feature"),
    ({"max_tokens": "5"}, TypeError, "max_tokens"),
    ({"max_tokens": True}, TypeError, "max_tokens"),
    ({"max_tokens": 0}, ValueError, "max_tokens"),
    ({"max_tokens": 10**9}, ValueError, "max_tokens"),
    ({"system": 5}, TypeError, "system"),
    ({"system": [{"text": "no type"}]}, TypeError, "system"),
    ({"tags": "x"}, TypeError, "tags"),
    ({"tags": {"n": math.nan}}, ValueError, "'n'"),
    ({"tags": {"n": math.inf}}, ValueError, "'n'"),
    ({"tags": {"n": -math.inf}}, ValueError, "'n'"),
    ({"tags": {"n": 10**5000}}, ValueError, "'n'"),
    ({"tags": {"n": 2**64}}, ValueError, "'n'"),
    ({"tags": {"n": object()}}, TypeError, "'n'"),
    ({"tags": {"n": [1, 2]}}, TypeError, "'n'"),
    ({"tags": {"n": "x" * 5000}}, ValueError, "'n'"),
    ({"tags": {1: "x"}}, TypeError, "tag names"),
    ({"tags": {f"t{i}": i for i in range(30)}}, ValueError, "tags"),
    ({"user": object()}, TypeError, "user"),
    ({"user": 3.5}, TypeError, "user"),
    ({"user": True}, TypeError, "user"),
    ({"user": ""}, ValueError, "user"),
    ({"user": "x" * 151}, ValueError, "user"),
    ({"user": "a\x00b"}, ValueError, "user"),
    ({"smell_test": "yes"}, TypeError, "smell_test"),
    ({"model": "claude-opus-4-5"}, TypeError, "model"),
    ({"timeout": 3}, TypeError, "timeout"),
]
CALL_ONLY = [
    ({"cache_ttl": True}, TypeError, "cache_ttl"),
    ({"cache_ttl": -1}, ValueError, "cache_ttl"),
    ({"cache_ttl": 1.5}, TypeError, "cache_ttl"),
    ({"idempotency_key": ""}, ValueError, "idempotency_key"),
    ({"idempotency_key": "k\x00"}, ValueError, "idempotency_key"),
    ({"idempotency_key": "k" * 201}, ValueError, "idempotency_key"),
    ({"idempotency_key": 5}, TypeError, "idempotency_key"),
]


def _arguments(overrides):
    kwargs = {"feature": "hostile", **overrides}
    prompt = kwargs.pop("prompt", None if "messages" in kwargs else "Hello")
    return prompt, kwargs


def _stream(prompt, **kwargs):
    with django_claude.stream(prompt, **kwargs) as s:
        "".join(s.text_stream)


async def _astream(prompt, **kwargs):
    async with django_claude.astream(prompt, **kwargs) as s:
        async for _ in s.text_stream:
            pass


ENTRY_POINTS = {
    "call": django_claude.call,
    "acall": lambda prompt, **kw: asyncio.run(django_claude.acall(prompt, **kw)),
    "stream": _stream,
    "astream": lambda prompt, **kw: asyncio.run(_astream(prompt, **kw)),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(("overrides", "error", "names"), BAD_ARGUMENTS)
def test_every_bad_argument_is_a_clear_error_before_any_request(
    claude, entry, overrides, error, names
):
    prompt, kwargs = _arguments(overrides)
    with pytest.raises(error) as raised:
        ENTRY_POINTS[entry](prompt, **kwargs)
    assert names in str(raised.value)
    assert claude.count() == 0
    assert not CallRecord.objects.exists()


@pytest.mark.parametrize("entry", ["call", "acall"])
@pytest.mark.parametrize(("overrides", "error", "names"), CALL_ONLY)
def test_bad_reuse_arguments_are_clear_errors(claude, entry, overrides, error, names):
    prompt, kwargs = _arguments(overrides)
    with pytest.raises(error) as raised:
        ENTRY_POINTS[entry](prompt, **kwargs)
    assert names in str(raised.value)
    assert claude.count() == 0


def test_a_stream_without_feature_says_so(claude):
    with pytest.raises(ValueError, match="feature"):
        django_claude.stream("hi")


@pytest.mark.parametrize(
    ("user", "ref"),
    [("user-42", "user-42"), (42, "42"), (USER_UUID, str(USER_UUID))],
)
def test_user_may_be_a_plain_id(claude, call_lines, user, ref):
    result = django_claude.call("Hello", feature="ids", user=user)
    record = CallRecord.objects.get(id=result.request_id)
    assert (record.user_id, record.user_ref) == (None, ref)
    assert call_lines.lines[0]["user_ref"] == ref


def test_tags_of_every_allowed_kind_reach_the_line_and_the_row(claude, call_lines):
    tags = {"s": "text", "i": -(2**63) + 1, "big": 2**62, "f": 0.25, "b": False, "none": None}
    result = django_claude.call("Hello", feature="tags", tags=tags)
    line = call_lines.lines[0]
    assert line["tags"]["f"] == 0.25 and line["tags"]["b"] is False
    assert line["tags"]["big"] == str(2**62)  # past 2**53: text, so no JSON tool rounds it
    record = CallRecord.objects.get(id=result.request_id)
    assert record.tags["s"] == "text" and record.tags["none"] is None


def test_a_failing_redactor_loses_neither_the_call_nor_privacy(claude, call_lines, settings):
    settings.DJANGO_CLAUDE_REDACTOR = "tests.test_hostile.broken_redactor"
    result = django_claude.call("my email is a@b.example", feature="broken-redactor")
    assert result.outcome == "ok"
    line = call_lines.lines[0]
    assert "a@b.example" not in call_lines.raw
    assert line["prompt_prefix"] == "[REDACTION FAILED]"
    assert CallRecord.objects.filter(id=result.request_id).exists()


def broken_redactor(text: str) -> str:
    raise RuntimeError("boom")


# -- the log line's JSON -----------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        ("tëxt", "tëxt"),
        (5, 5),
        (2**53, str(2**53)),
        (-(2**60), str(-(2**60))),
        (10**5000, "<int of 16610 bits>"),
        (1.5, 1.5),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (decimal.Decimal("0.0003300000"), "0.0003300000"),
        (decimal.Decimal("NaN"), "NaN"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (datetime.date(2026, 1, 2), "2026-01-02"),
        (datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC), "2026-01-02T03:04:00+00:00"),
        (datetime.time(3, 4), "03:04:00"),
        (Outcome.OK, "ok"),
        (Color.RED, "red"),
        (b"\x00\x01", "<2 bytes>"),
        ({1: {2: (3, {4})}}, {"1": {"2": [3, [4]]}}),
        (Unprintable(), "<Unprintable>"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_every_value_a_call_can_carry_encodes(value, expected):
    assert json_safe(value) == expected
    assert json.loads(to_json({"v": value})) == {"v": expected}
    # A call's line takes a faster road, to the same line.
    assert call_line_json({"v": value}) == to_json({"v": value})


def test_deep_nesting_does_not_break_the_encoder():
    value: list = []
    for _ in range(10_000):
        value = [value]
    assert json.loads(to_json({"v": value}))


# -- values from upstream too big for their columns ----------------------------------------


def _line(**values):
    line = {
        "request_id": str(uuid.uuid4()),
        "created_at": "2026-11-27T10:00:00+00:00",
        "feature": "f",
        "model_requested": "m",
        "outcome": "ok",
    }
    line.update(values)
    return line


@pytest.mark.django_db
def test_oversized_upstream_values_are_cut_or_clamped_and_the_row_is_written():
    record = record_from_line(
        _line(
            model="claude-" + "x" * 300,
            upstream_request_id="req_" + "y" * 200,
            stop_reason="a_very_long_stop_reason_" * 5,
            error_type="E" * 100,
            input_tokens=2**40,
            output_tokens=2**31,
            attempts=10**6,
            latency_ms=-5,
            error_status=70_000,
            feature="nul\x00here",
            tags={"k": "nul\x00", "nested": {"z": "\x00"}},
        )
    )
    record.save(force_insert=True)
    saved = CallRecord.objects.get(id=record.id)
    assert len(saved.model) == 100 and saved.model.endswith(CUT)
    assert len(saved.upstream_request_id) == 64 and saved.upstream_request_id.endswith(CUT)
    assert len(saved.stop_reason) == 32 and len(saved.error_type) == 64
    assert saved.input_tokens == saved.output_tokens == 2_147_483_647
    assert saved.attempts == 32_767 and saved.latency_ms == 0 and saved.error_status == 32_767
    assert "\x00" not in saved.feature and "\x00" not in json.dumps(saved.tags)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"request_id": "not-a-uuid"}, "request_id"),
        ({"created_at": None}, "created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"input_tokens": "lots"}, "input_tokens"),
        ({"input_tokens": [1]}, "input_tokens"),
        ({"attempt_log": "x"}, "attempt_log"),
        ({"tags": [1]}, "tags"),
        ({"cost_usd": "free"}, "cost_usd"),
        ({"cost_usd": "NaN"}, "cost_usd"),
    ],
)
def test_a_garbled_line_is_a_clear_value_error(values, complaint):
    with pytest.raises(ValueError, match=complaint):
        record_from_line(_line(**values))


def test_a_user_key_that_does_not_fit_the_user_model_is_left_out():
    assert record_from_line(_line(user_id="not-an-int")).user_id is None
    assert record_from_line(_line(user_id="12")).user_id == 12


# -- any user model ----------------------------------------------------------------------------

SCRIPT = """
import json, logging, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.conf import settings
from django.contrib.auth import get_user_model
from django_claude.testing import FakeAnthropic, flush_pending
import django_claude
from django_claude.models import CallRecord

lines = []
class Keep(logging.Handler):
    def emit(self, record):
        lines.append(json.loads(record.getMessage()))
logging.getLogger("django_claude.calls").addHandler(Keep())

User = get_user_model()
name = "ada@example.com" if User.USERNAME_FIELD == "email" else "ada-1"
user = User.objects.create(**{User.USERNAME_FIELD: name})
with FakeAnthropic() as fake:
    settings.DJANGO_CLAUDE_BASE_URL = fake.url
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0
    answered = django_claude.call("Hello", feature="custom-user", user=user)
    with django_claude.stream("Hello", feature="custom-user", user=user) as s:
        "".join(s.text_stream)
flush_pending()
rows = CallRecord.objects.filter(user_id=user.pk).count()
print(json.dumps({"pk": str(user.pk), "rows": rows, "users": [l["user_id"] for l in lines],
                  "outcomes": [answered.outcome, s.result.outcome]}))
"""


@pytest.mark.parametrize("model", ["custom_users.UuidUser", "custom_users.CodeUser"])
def test_any_user_model_works(tmp_path, model):
    """On SQLite, and on a fresh PostgreSQL database when the suite runs on one."""
    database = str(tmp_path / "db.sqlite3")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        name = f"django_claude_users_{model.rsplit('.', 1)[1].lower()}"
        database = _fresh_postgres_database(url, name)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_custom_user",
        "CUSTOM_USER_MODEL": model,
        "CUSTOM_USER_DB": database,
        "PYTHONPATH": os.getcwd(),
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == ["ok", "ok"]
    assert result["rows"] == 2  # the call and the stream, each with the user's key
    assert result["users"] == [result["pk"], result["pk"]]


def _fresh_postgres_database(url: str, name: str) -> str:
    """An empty database beside the suite's, for a project with its own user model."""
    import psycopg

    server = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
