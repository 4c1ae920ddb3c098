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
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.module_loading import import_string

from django_claude import telemetry
from django_claude.conf import conf
from django_claude.recording import calllog, pricing
from django_claude.recording.clock import aware
from django_claude.recording.encoding import call_line_json, json_safe
from django_claude.recording.inserts import FromLine
from django_claude.recording.pricing import Usage
from django_claude.recording.redaction import clean_text, escape_controls, prompt_prefix
from django_claude.recording.rows import CUT, line_values
from django_claude.recording.writer import write_record
from django_claude.types import Outcome, SmellVerdict

logger = logging.getLogger(__name__)
call_logger = logging.getLogger("django_claude.calls")


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
    tenant: str = ""  # whom per-tenant quotas charged
    arm: str = ""  # the canary arm that served the call ("control", "canary")
    canary_id: int | None = None
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
    span: Any = None  # the call's telemetry.CallSpan: its ids go in the line, the line ends it
    duplicate: bool = False  # another ending of the same call was recorded: record nothing
    prompt_prefix: str | None = None  # the line's, if redacted already (while the call waited)


REDACTION_FAILED = "[REDACTION FAILED]"


def redactor() -> Callable[[str], str]:
    """The site's redactor (``DJANGO_CLAUDE_REDACTOR``), made safe to call: if
    it raises or returns something other than text, nothing of the input is
    kept (a failing redactor must neither leak text nor lose the call)."""
    return _safe_redactor(conf.REDACTOR)


@functools.lru_cache(maxsize=8)
def _safe_redactor(path: str) -> Callable[[str], str]:
    """``redactor`` for the dotted ``path``: imported once, not on every call."""
    redact: Callable[[str], str] = import_string(path)

    def safely(text: str) -> str:
        try:
            result = redact(text)
        except Exception as exc:
            logger.error("claude redactor %s failed (%s)", path, type(exc).__name__)
            return REDACTION_FAILED
        return result if isinstance(result, str) else REDACTION_FAILED

    return safely


def safe_text(value: str, *, limit: int, redact: Callable[[str], str]) -> str:
    """Redact the whole value, then escape and cut it (with a marker) for a
    line or a row: a secret straddling the cut is redacted all the same."""
    if not value:
        return ""
    text = redact(clean_text(value))
    escaped = escape_controls(text)
    if len(escaped) <= limit:
        return escaped
    return escape_controls(text, limit - 1) + CUT


# A feature or a tenant is a label reused on every call: its redacted form is
# kept (per redactor), not redacted again each time. Bounded; cleared when full.
_LABELS_KEPT = 512
_labels: dict[tuple[str, int, str], str] = {}


def feature_label(feature: str, redact: Callable[[str], str], *, limit: int = 100) -> str:
    """``safe_text`` of a feature (or a tenant), remembered for the next call."""
    key = (conf.REDACTOR, limit, feature)
    label = _labels.get(key)
    if label is None:
        label = safe_text(feature, limit=limit, redact=redact)
        if label != REDACTION_FAILED:
            if len(_labels) >= _LABELS_KEPT:
                _labels.clear()
            _labels[key] = label
    return label


def log_line(
    facts: CallFacts, cost: Decimal | None, breakdown: dict[str, str] | None = None
) -> dict[str, Any]:
    """The call's log line as a dict: redacted, never the prompt or answer."""
    redact = redactor()
    event = "claude.call" if Outcome(facts.outcome).answered else "claude.error"
    usage = facts.usage
    return {
        "event": event,
        "request_id": str(facts.request_id),
        "created_at": aware(facts.created_at).isoformat(),
        "feature": feature_label(facts.feature, redact),
        "user_id": json_safe(facts.user_id),
        "user_ref": safe_text(facts.user_ref, limit=150, redact=redact),
        "tenant": feature_label(facts.tenant, redact, limit=200),
        "arm": facts.arm,
        "canary_id": facts.canary_id,
        **telemetry.ids_of(facts.span),
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
        "web_search_requests": usage.web_search_requests,
        "web_fetch_requests": usage.web_fetch_requests,
        "inference_geo": usage.inference_geo,
        "speed": usage.speed,
        "service_tier": usage.service_tier,
        "code_execution_requests": usage.code_execution_requests,
        "container_id": usage.container_id,
        "stop_reason": facts.stop_reason,
        "cost_usd": None if cost is None else str(cost),
        "cost_breakdown": breakdown or {},
        "priced": cost is not None,
        "prompt_prefix": facts.prompt_prefix
        if facts.prompt_prefix is not None
        else prompt_prefix(facts.prompt_text, limit=conf.PROMPT_PREFIX_CHARS, redactor=redact),
        "error_type": facts.error_type,
        "error_status": facts.error_status,
        "upstream_request_id": facts.upstream_request_id,
        "smell_verdict": facts.smell_verdict,
        "tags": json_safe(
            {
                safe_text(str(k), limit=40, redact=redact): (
                    safe_text(v, limit=200, redact=redact) if isinstance(v, str) else v
                )
                for k, v in facts.tags.items()
            }
        ),
        "idempotency_key": safe_text(facts.idempotency_key, limit=128, redact=redact),
    }


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
    if facts.duplicate:
        logger.info("claude call %s: a second ending, not recorded again", facts.request_id)
        return None
    try:
        return _record_call(facts, after_write=after_write, background=background)
    finally:
        if facts.span is not None:
            facts.span.abandon()  # ended already, unless something escaped (KeyboardInterrupt)


def _record_call(
    facts: CallFacts, *, after_write: Callable[[], None] | None, background: bool
) -> Decimal | None:
    cost: Decimal | None = Decimal(0)
    breakdown: dict[str, str] = {}
    if facts.billable:
        try:
            priced = pricing.price_detail(
                facts.model, facts.usage, on=facts.created_at.astimezone(datetime.UTC).date()
            )
        except Exception:  # never lose the line to pricing: unpriced, repriced later
            logger.exception("claude pricing failed for %s", facts.model)
            priced = None
        cost, breakdown = (None, {}) if priced is None else (priced.cost, priced.breakdown)
    line = log_line(facts, cost, breakdown)
    level = logging.INFO
    if facts.error_kind == "auth":
        level = logging.ERROR
    elif facts.outcome in (Outcome.DEGRADED, Outcome.ERROR, Outcome.INTERRUPTED):
        level = logging.WARNING
    calllog.emit(call_logger, level, call_line_json(line), line)
    try:
        if facts.span is not None:
            facts.span.finish(line)
        telemetry.measure(line)
    except Exception:  # a telemetry bug must never lose the record
        logger.exception("claude telemetry: could not finish call %s", line["request_id"])
    # Built where it is written: by the writer's thread, when written behind.
    write_record(FromLine(line, line_values), after=after_write, background=background)
    return cost
