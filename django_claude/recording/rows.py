"""A call's log line back into a row: the values of its ``CallRecord``.

The writer's thread makes rows from lines (``line_values``: on PostgreSQL
they are copied as they are, elsewhere they make a ``CallRecord``), and so
does ``claude_ingest_log`` (``record_from_line``). A value too long or too
large for its column is cut or clamped, never the row dropped; a line
without a valid request id or timestamp, or with a value of the wrong kind,
raises ``ValueError``.
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from django_claude.models import CallRecord
from django_claude.recording.clock import as_stored
from django_claude.recording.encoding import storable

CUT = "\u2026"  # marks text cut to fit its column

# Fields of the log line that are copied onto a CallRecord as they are.
RECORD_FIELDS = (
    "feature",
    "user_ref",
    "tenant",
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
    "cost_breakdown",
    "stop_reason",
    "prompt_prefix",
    "error_type",
    "error_status",
    "upstream_request_id",
    "smell_verdict",
    "tags",
    "idempotency_key",
    "arm",
    "canary_id",
    "trace_id",
    "span_id",
)


def _limits() -> dict[str, tuple[str, int]]:
    """Per column of the line: ("text", max length) or ("int", max value)."""
    limits: dict[str, tuple[str, int]] = {}
    for model_field in CallRecord._meta.concrete_fields:
        if isinstance(model_field, models.CharField) and model_field.max_length:
            limits[model_field.name] = ("text", model_field.max_length)
        elif isinstance(model_field, models.PositiveSmallIntegerField):
            limits[model_field.name] = ("int", 32_767)
        elif isinstance(model_field, models.PositiveIntegerField):
            limits[model_field.name] = ("int", 2_147_483_647)
    return limits


_LIMITS = _limits()
_FIELD_LIMITS = tuple((name, *_LIMITS.get(name, ("", 0))) for name in RECORD_FIELDS)


def fit(name: str, value: Any) -> Any:
    """A line's value made storable in its column: text cut (with a marker)
    and stripped of NULs, numbers clamped to the column's range. Raises
    ``ValueError`` for a value that is not of the column's kind at all."""
    kind, limit = _LIMITS.get(name, ("", 0))
    if kind == "text":
        text = str(value).replace("\x00", "\\x00")
        return text if len(text) <= limit else text[: limit - 1] + CUT
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{name} is not a number: {type(value).__name__}")
        try:
            number = value if isinstance(value, int) else float(value)
        except ValueError:
            raise ValueError(f"{name} is not a number: {str(value)[:40]!r}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"{name} is not a finite number")
        return max(0, min(int(number), limit))
    return value


def _fits(kind: str, limit: int, value: Any) -> bool:
    """Would ``fit`` return ``value`` unchanged? (Most of a line's values:
    checked here, they are kept without the call.)"""
    if kind == "text":
        return type(value) is str and len(value) <= limit and "\x00" not in value
    return kind == "int" and type(value) is int and 0 <= value <= limit


def _timestamp(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("created_at is missing")
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"created_at is not an ISO timestamp: {value[:40]!r}") from None
    return as_stored(when)


def record_from_line(line: Mapping[str, Any]) -> CallRecord:
    """An unsaved ``CallRecord`` from a log line (also used by claude_ingest_log).

    Values too long or too large for their column are cut or clamped (the row
    is written, never dropped); a line without a valid request id or
    timestamp, or with a value of the wrong kind, raises ``ValueError``.
    """
    return CallRecord(**line_values(line))


def line_values(line: Mapping[str, Any]) -> dict[str, Any]:
    """``record_from_line``'s values, by field name (``user_id`` for the
    user): what the record is made of, for a writer that needs no instance."""
    try:
        request_id = uuid.UUID(str(line["request_id"]))
    except (KeyError, ValueError):
        raise ValueError("request_id is missing or not a UUID") from None
    values: dict[str, Any] = {}
    for name, column, limit in _FIELD_LIMITS:
        value = line.get(name)
        if value is None:
            continue
        values[name] = value if _fits(column, limit, value) else fit(name, value)
    for name, kind in (("attempt_log", list), ("tags", dict), ("cost_breakdown", dict)):
        if name in values and not isinstance(values[name], kind):
            raise ValueError(f"{name} must be a JSON {kind.__name__}")
    for name in ("tags", "cost_breakdown", "attempt_log"):
        if name in values:
            values[name] = storable(values[name])
    tool_fee = _usd("cost_breakdown.tools", values.get("cost_breakdown", {}).get("tools"))
    values.update(
        id=request_id,
        created_at=_timestamp(line.get("created_at")),
        user_id=_user_id(line.get("user_id")),
        cost_usd=_usd("cost_usd", line.get("cost_usd")),
        tool_cost_usd=Decimal(0) if tool_fee is None else tool_fee,
    )
    return values


def _usd(name: str, value: Any) -> Decimal | None:
    """An amount of a line as a Decimal (None when absent). Raises
    ``ValueError`` for one that is not a finite number."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ArithmeticError
        amount = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{name} is not a finite number")
    return amount


def _user_id(value: Any) -> Any:
    """The user key as the user model stores it; one that does not fit (a
    line from another site, a garbled id, beyond the column) is left out."""
    try:
        target = CallRecord._meta.get_field("user").target_field
        key = target.to_python(value)
        if key is not None:
            target.run_validators(key)
        return key
    except (ValidationError, TypeError, ValueError, AttributeError):
        return None
