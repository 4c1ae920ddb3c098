"""The one place a call's ending is built.

``CallState`` (``client.state``) holds what every entry point shares and
builds the facts of every record. The endings (``answered``, ``failed``,
``cancelled``, ``replayed``) turn the plan's runs into ``CallFacts`` for
recording and into the caller's ``ClaudeResult``, for calls and streams alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from anthropic.types import Message

from django_claude.client.answers import StoredAnswer
from django_claude.client.errors import ErrorKind, error_status, error_type
from django_claude.client.state import CallState
from django_claude.conf import conf
from django_claude.quotas.enforce import Refusal, Reservation
from django_claude.recording import sampling
from django_claude.recording.facts import CallFacts, record_call, redactor
from django_claude.recording.pricing import Usage
from django_claude.types import (
    ClaudeLimited,
    ClaudeResult,
    ClaudeUnavailable,
    Outcome,
    SmellVerdict,
)

logger = logging.getLogger(__name__)

# -- endings: each records the call and builds what the caller gets --------------


def answered(
    call: CallState,
    *,
    text: str,
    message: Any,
    model: str,
    upstream: Any,
    usage: Usage | None = None,
    interrupted: str | BaseException | None = None,
    background: bool = False,
) -> ClaudeResult:
    """A model answered (``interrupted``: a stream that ended early, with
    why). Samples a whole answer for the smell test, records, and returns."""
    if interrupted is None:
        outcome = Outcome.FALLBACK if len(call.runs) > 1 else Outcome.OK
    else:
        outcome = Outcome.INTERRUPTED
    facts = call.facts(outcome, upstream=upstream)
    facts.model = model or call.runs[-1].model
    facts.usage = usage or Usage.from_message(message)
    facts.stop_reason = str(getattr(message, "stop_reason", None) or "")
    call.span.answered(message)
    if conf.OTEL_CAPTURE_CONTENT and call.span.recording:
        redact = redactor()
        call.span.content(
            prompt=redact(call.req.prompt_text),
            answer=redact(text),
            finish_reason=facts.stop_reason,
        )
    if isinstance(interrupted, BaseException):
        facts.error_type = error_type(interrupted)
        facts.error_status = error_status(interrupted)
    elif interrupted is not None:
        facts.error_type = interrupted
    after_write = None
    if (
        interrupted is None
        and call.draw_sample()
        and sampling.stash(facts.request_id, prompt=call.req.prompt_text, answer=text)
    ):
        facts.smell_verdict = SmellVerdict.PENDING
        after_write = sampling.judge_after_write(facts.request_id)
    return _result(
        facts,
        text=text,
        message=message if interrupted is None else None,
        after_write=after_write,
        background=background,
        # A stream cut off has no final usage: its worst case stays charged.
        reservation=call.reservation if interrupted is None else None,
    )


def failed(call: CallState) -> ClaudeResult:
    """Nothing answered: record it, then raise the caller's error, raise
    ``ClaudeUnavailable`` (``RAISE_ON_FAILURE``) or return the degraded answer
    (or the limited one, when a quota refused the call)."""
    if call.plan is not None and call.plan.refusal is not None:
        return limited(call, call.plan.refusal)
    failed = call.plan.failed_run if call.plan is not None else None
    error = failed.error if failed is not None else None
    facts = call.facts(Outcome.DEGRADED, upstream=error)
    facts.billable = False
    if failed is not None and error is not None:
        facts.error_type = error_type(error)
        facts.error_status = error_status(error)
        facts.error_kind = failed.kind.value if failed.kind else ""
    elif call.runs and call.runs[-1].skipped == "breaker_open":
        facts.error_type = "BreakerOpen"
    elif call.runs and call.runs[-1].skipped == "rate_limited":
        facts.error_type = "RateLimited"
    else:
        facts.error_type = "DeadlineExceeded"
    if failed is not None and failed.kind is ErrorKind.CALLER and error is not None:
        facts.outcome = Outcome.ERROR
        record_call(facts)
        if not call.spend_unknown():  # refused with a status: nothing was billed
            call.reservation.settle(None, None, billed=False)
        raise error
    if failed is not None and failed.kind is ErrorKind.AUTH:
        logger.error(
            "claude call %s: the API refused our credentials (%s); check DJANGO_CLAUDE_API_KEY",
            facts.request_id,
            facts.error_type,
        )
    result = _result(
        facts,
        text=conf.DEGRADED_MESSAGE,
        message=None,
        reservation=None if call.spend_unknown() else call.reservation,
    )
    if conf.RAISE_ON_FAILURE:
        raise ClaudeUnavailable(
            f"Claude is unavailable for {call.req.feature!r} ({facts.error_type})",
            request_id=facts.request_id,
            error_type=facts.error_type,
        ) from error
    return result


def cancelled(
    call: CallState, *, partial: str = "", usage: Usage | None = None, model: str = ""
) -> None:
    """The task was cancelled (the client went away). Runs on the event
    loop: the log line now, the row by the background writer. ``usage``:
    what a stream had reported before it was cut (else nothing is billed)."""
    facts = call.facts(Outcome.INTERRUPTED)
    facts.error_type = "CancelledError"
    if usage is not None:
        facts.model = model
        facts.usage = usage
    else:
        facts.billable = False
    # A request cut off in flight may be billed: without usage, keep its worst case.
    keep = usage is None and call.sent_anything()
    _result(
        facts,
        text=partial,
        message=None,
        background=True,
        reservation=None if keep else call.reservation,
    )


# Why a quota refused a call, as its record's error type.
REFUSAL_ERRORS = {
    "limit": "QuotaExceeded",
    "unpriced": "QuotaUnpriced",
    "cache down": "QuotaStoreDown",
}


def limited(call: CallState, refusal: Refusal) -> ClaudeResult:
    """A quota refused the call: nothing was sent. Record it, then raise
    ``ClaudeLimited`` (``RAISE_ON_FAILURE``) or return the limited answer."""
    facts = call.facts(Outcome.LIMITED)
    facts.billable = False
    facts.error_type = REFUSAL_ERRORS.get(refusal.reason, "QuotaExceeded")
    retry_after = round(refusal.retry_after, 3)
    facts.attempt_log = [
        {"quota": refusal.quota, "error": "limited", "retry_after": round(refusal.retry_after)}
    ]
    result = _result(
        facts,
        text=conf.LIMITED_MESSAGE,
        message=None,
        refusal=(refusal.quota, retry_after),
    )
    if conf.RAISE_ON_FAILURE:
        raise ClaudeLimited(
            f"quota {refusal.quota!r} refuses this call for {call.req.feature!r}; "
            f"retry in {retry_after:.0f}s",
            request_id=facts.request_id,
            quota=refusal.quota,
            retry_after=retry_after,
            error_type=facts.error_type,
        )
    return result


def replayed(call: CallState, stored: StoredAnswer) -> ClaudeResult:
    """An answer reused from the cache or an idempotent twin: no request."""
    facts = call.facts(Outcome.CACHED)
    facts.model = stored.model
    facts.stop_reason = stored.stop_reason
    facts.billable = False
    message = Message.model_validate(stored.message) if stored.message else None
    return _result(facts, text=stored.text, message=message, usage=dict(stored.usage))


def _result(
    facts: CallFacts,
    *,
    text: str,
    message: Any,
    usage: dict[str, int] | None = None,
    after_write: Callable[[], None] | None = None,
    background: bool = False,
    reservation: Reservation | None = None,
    refusal: tuple[str, float] | None = None,
) -> ClaudeResult:
    """Record the call, settle what its quotas reserved, and build what the
    caller gets: the one place a ``ClaudeResult`` is made."""
    cost = record_call(facts, after_write=after_write, background=background)
    if reservation is not None:
        reservation.settle(facts.usage, cost, billed=facts.billable)
    answered = facts.outcome in (Outcome.OK, Outcome.FALLBACK, Outcome.INTERRUPTED)
    if usage is None:
        usage = facts.usage.as_dict() if answered else {}
    return ClaudeResult(
        text=text,
        outcome=facts.outcome,
        model=facts.model if facts.outcome != Outcome.DEGRADED else "",
        attempts=facts.attempts,
        request_id=facts.request_id,
        cost_usd=cost if answered else Decimal(0),
        usage=usage,
        message=message,
        stop_reason=facts.stop_reason,
        quota=refusal[0] if refusal else "",
        retry_after=refusal[1] if refusal else None,
    )
