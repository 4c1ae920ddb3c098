"""Property tests: whatever a caller or a log file hands over, nothing crashes
that should not, and what is written can be read back.

Budgets are fixed (``derandomize=True``: the same examples every run)."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_claude.client.request import prepare
from django_claude.recording.encoding import json_safe, to_json
from django_claude.recording.rows import RECORD_FIELDS, record_from_line

BUDGET = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary(max_size=8)
    | st.uuids()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.datetimes()
    | st.dates(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=20,
)


@BUDGET
@given(anything)
def test_the_encoder_takes_anything_and_writes_plain_json(value):
    text = to_json({"v": value})
    assert "\n" not in text
    decoded = json.loads(text)
    assert decoded == {"v": json_safe(value)}
    assert json_safe(json_safe(value)) == json_safe(value)  # idempotent


call_arguments = st.fixed_dictionaries(
    {},
    optional={
        "feature": st.one_of(st.none(), st.text(max_size=120), st.integers()),
        "user": st.one_of(st.none(), st.text(max_size=160), st.integers(), st.uuids(), st.floats()),
        "system": st.one_of(
            st.none(), st.text(max_size=20), st.integers(), st.lists(anything, max_size=2)
        ),
        "max_tokens": st.one_of(st.none(), st.integers(), st.booleans(), st.text(max_size=3)),
        "messages": st.one_of(
            st.none(),
            anything,
            st.lists(
                st.dictionaries(st.sampled_from(["role", "content", "x"]), anything, max_size=3),
                max_size=3,
            ),
        ),
        "cache_ttl": st.one_of(st.none(), st.integers(), st.floats()),
        "idempotency_key": st.one_of(st.none(), st.text(max_size=210), st.integers()),
        "tags": st.one_of(
            st.none(), anything, st.dictionaries(st.text(max_size=8), anything, max_size=25)
        ),
        "smell_test": st.one_of(st.none(), st.booleans(), st.integers()),
    },
)


@pytest.mark.django_db
@BUDGET
@given(prompt=st.one_of(st.none(), st.text(max_size=50), st.integers()), args=call_arguments)
def test_prepare_either_accepts_or_names_the_problem(prompt, args):
    """Only TypeError or ValueError, and whatever it accepts encodes and stores."""
    args = {
        "feature": "f",
        "user": None,
        "system": None,
        "max_tokens": None,
        "messages": None,
        "cache_ttl": None,
        "idempotency_key": None,
        "tags": None,
        "smell_test": None,
        **args,
    }
    try:
        req = prepare(prompt, create_kwargs={}, **args)
    except (TypeError, ValueError) as exc:
        assert str(exc)
        return
    assert req.feature and req.params["max_tokens"] >= 1
    for value in req.tags.values():
        assert not isinstance(value, float) or math.isfinite(value)
    json.loads(to_json({"tags": req.tags, "user": req.user_ref}))


LINE_FIELDS = (*RECORD_FIELDS, "cost_usd", "user_id")
line_values = st.fixed_dictionaries(
    {
        "request_id": st.one_of(
            st.uuids().map(str), st.text(max_size=40), st.none(), st.integers()
        ),
        "created_at": st.one_of(
            st.datetimes().map(lambda d: d.isoformat()),
            st.text(max_size=30),
            st.none(),
            st.integers(),
        ),
    },
    optional=dict.fromkeys(LINE_FIELDS, anything),
)


@BUDGET
@given(line_values)
def test_record_from_line_builds_a_record_or_says_why(line):
    try:
        record = record_from_line(line)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    assert isinstance(record.id, uuid.UUID)
    for field in ("feature", "model", "stop_reason", "upstream_request_id", "error_type"):
        value = getattr(record, field)
        limit = record._meta.get_field(field).max_length
        assert (
            value is None or isinstance(value, str) and len(value) <= limit and "\x00" not in value
        )
    for field in ("input_tokens", "output_tokens", "latency_ms"):
        assert 0 <= getattr(record, field) <= 2_147_483_647
