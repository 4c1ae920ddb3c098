"""One JSON log line and one ``CallRecord`` per call, PII redacted first.

The record is written outside the caller's transaction: when the caller is
inside ``atomic()`` (``ATOMIC_REQUESTS`` included), a background writer with
its own connection inserts it, so a rollback in the caller never loses it and
a failed insert never breaks the caller's transaction. The log line is written
first and carries every field, so ``claude_ingest_log`` can rebuild a record
the database could not take.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.module_loading import import_string

from django_claude.conf import conf
from django_claude.models import CallRecord
from django_claude.recording import pricing
from django_claude.recording.pricing import Usage
from django_claude.recording.redaction import clean_text, escape_controls, prompt_prefix
from django_claude.recording.writer import write_record
from django_claude.types import Outcome, SmellVerdict

logger = logging.getLogger(__name__)
call_logger = logging.getLogger("django_claude.calls")

# Fields of the log line that are copied onto a CallRecord as they are.
RECORD_FIELDS = (
    "feature",
    "user_ref",
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
    "stop_reason",
    "prompt_prefix",
    "error_type",
    "error_status",
    "upstream_request_id",
    "smell_verdict",
    "tags",
    "idempotency_key",
)


@dataclass
class CallFacts:
    """Everything the service knows about a finished call, before redaction."""

    request_id: uuid.UUID
    created_at: datetime.datetime
    feature: str
    model_requested: str
    outcome: Outcome
    prompt_text: str
    user_id: Any = None
    user_ref: str = ""
    model: str = ""
    attempts: int = 0
    attempt_log: list[dict[str, Any]] = field(default_factory=list)
    fallback_used: bool = False
    latency_ms: int = 0
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = ""
    error_type: str = ""
    error_status: int | None = None
    error_kind: str = ""
    upstream_request_id: str = ""
    smell_verdict: str = SmellVerdict.NOT_SAMPLED
    tags: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""
    billable: bool = True  # False: nothing was billed (cached, degraded, refused)


def redactor() -> Callable[[str], str]:
    redact: Callable[[str], str] = import_string(conf.REDACTOR)
    return redact


def safe_text(value: str, *, limit: int, redact: Callable[[str], str]) -> str:
    """Redact, cut and escape a short string for a log line or a row."""
    if not value:
        return ""
    return escape_controls(redact(clean_text(value[: limit * 4])), limit)


def log_line(facts: CallFacts, cost: Decimal | None) -> dict[str, Any]:
    """The call's log line as a dict: redacted, never the prompt or answer."""
    redact = redactor()
    event = "claude.call" if Outcome(facts.outcome).answered else "claude.error"
    usage = facts.usage
    return {
        "event": event,
        "request_id": str(facts.request_id),
        "created_at": facts.created_at.isoformat(),
        "feature": safe_text(facts.feature, limit=100, redact=redact),
        "user_id": facts.user_id,
        "user_ref": safe_text(facts.user_ref, limit=150, redact=redact),
        "model_requested": facts.model_requested,
        "model": facts.model,
        "outcome": facts.outcome,
        "attempts": facts.attempts,
        "attempt_log": facts.attempt_log,
        "fallback_used": facts.fallback_used,
        "latency_ms": facts.latency_ms,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_creation_1h_input_tokens": usage.cache_creation_1h_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "stop_reason": facts.stop_reason,
        "cost_usd": None if cost is None else str(cost),
        "priced": cost is not None,
        "prompt_prefix": prompt_prefix(
            facts.prompt_text, limit=conf.PROMPT_PREFIX_CHARS, redactor=redact
        ),
        "error_type": facts.error_type,
        "error_status": facts.error_status,
        "upstream_request_id": facts.upstream_request_id,
        "smell_verdict": facts.smell_verdict,
        "tags": {
            safe_text(str(k), limit=40, redact=redact): (
                safe_text(v, limit=200, redact=redact) if isinstance(v, str) else v
            )
            for k, v in facts.tags.items()
        },
        "idempotency_key": safe_text(facts.idempotency_key, limit=128, redact=redact),
    }


def record_from_line(line: Mapping[str, Any]) -> CallRecord:
    """An unsaved ``CallRecord`` from a log line (also used by claude_ingest_log)."""
    values = {name: line[name] for name in RECORD_FIELDS if name in line and line[name] is not None}
    cost = line.get("cost_usd")
    created = line["created_at"]
    return CallRecord(
        id=uuid.UUID(str(line["request_id"])),
        created_at=(
            datetime.datetime.fromisoformat(created) if isinstance(created, str) else created
        ),
        user_id=line.get("user_id"),
        cost_usd=None if cost is None else Decimal(str(cost)),
        **values,
    )


def record_call(
    facts: CallFacts,
    *,
    after_write: Callable[[], None] | None = None,
    background: bool = False,
) -> Decimal | None:
    """Price the call, write its log line, then its record; returns the cost
    (None: the model has no price). ``after_write`` runs once the record
    exists (or could not be saved). ``background`` hands the row to the writer
    thread (for code that must not block). Never raises."""
    if facts.billable:
        cost = pricing.price_call(
            facts.model, facts.usage, on=facts.created_at.astimezone(datetime.UTC).date()
        )
    else:
        cost = Decimal(0)
    line = log_line(facts, cost)
    level = logging.INFO
    if facts.error_kind == "auth":
        level = logging.ERROR
    elif facts.outcome in (Outcome.DEGRADED, Outcome.ERROR, Outcome.INTERRUPTED):
        level = logging.WARNING
    call_logger.log(level, json.dumps(line, ensure_ascii=False), extra={"claude": line})
    record = record_from_line(line)
    write_record(record, after=after_write, background=background)
    return cost
