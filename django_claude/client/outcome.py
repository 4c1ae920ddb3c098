"""One call in progress, and the one place its ending is built.

``CallState`` holds what every entry point shares (the request, the route,
the deadline, the attempt plan) and builds the facts of every record. The
endings (``answered``, ``failed``, ``cancelled``, ``replayed``) turn the
plan's runs into ``CallFacts`` for recording and into the caller's
``ClaudeResult``, for calls and streams alike.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from anthropic.types import Message
from django.utils import timezone

from django_claude.client.answers import StoredAnswer
from django_claude.client.engine import AttemptPlan, Deadline, ModelRun, Policy
from django_claude.client.errors import ErrorKind, error_status, error_type
from django_claude.client.request import CallRequest
from django_claude.conf import conf
from django_claude.quotas.config import Quota
from django_claude.quotas.enforce import NOTHING_HELD, Refusal, Reservation, Scope, admit, applying
from django_claude.recording import sampling
from django_claude.recording.facts import CallFacts, record_call, redactor
from django_claude.recording.pricing import Usage
from django_claude.routing import Route
from django_claude.telemetry import CallSpan
from django_claude.types import (
    ClaudeLimited,
    ClaudeResult,
    ClaudeUnavailable,
    Outcome,
    SmellVerdict,
)

logger = logging.getLogger(__name__)


# Attempt-log errors of steps that sent no request.
NOT_SENT = frozenset({"breaker_open", "deadline", "rate_limited", "limited"})


def policy() -> Policy:
    """The engine's limits, read from settings at call time."""
    return Policy(
        timeout=conf.TIMEOUT,
        max_attempts=conf.MAX_ATTEMPTS,
        fallback_attempts=conf.FALLBACK_ATTEMPTS,
        backoff_base=conf.BACKOFF_BASE,
        backoff_max=conf.BACKOFF_MAX,
    )


def upstream_id_of(answer_or_error: Any) -> str:
    """Anthropic's request id, from a Message, a stream or an API error."""
    for name in ("_request_id", "request_id"):
        value = getattr(answer_or_error, name, None)
        if value:
            return str(value)
    return ""


@dataclass
class CallState:
    """What the drivers of one call share, from its start to its record."""

    req: CallRequest
    route: Route
    started: float = field(default_factory=time.monotonic)
    created_at: datetime.datetime = field(default_factory=timezone.now)
    deadline: Deadline = field(default_factory=lambda: Deadline(conf.DEADLINE))
    plan: AttemptPlan | None = None
    sampled: bool | None = None  # the smell test's draw, once made (``draw_sample``)
    # What the call's quotas hold for it, settled by its ending.
    reservation: Reservation = field(default_factory=lambda: NOTHING_HELD)
    released: bool = False  # ``release`` ran: the call is over for its caller
    _release_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    span: CallSpan = field(init=False, repr=False)  # OpenTelemetry's, ended by the record

    def __post_init__(self) -> None:
        self.span = CallSpan(
            feature=self.req.feature,
            model=self.route.model,
            max_tokens=self.req.params.get("max_tokens"),
        )

    def draw_sample(self) -> bool:
        """Is this call judged? Drawn once, whoever asks first."""
        if self.sampled is None:
            self.sampled = sampling.should_sample(self.req.feature, self.req.smell_test)
        return self.sampled

    def start(self, route: Route | None = None) -> AttemptPlan:
        """The attempt plan for ``route`` (default: the state's own)."""
        self.route = route or self.route
        self.span.routed(self.route.model)
        self.plan = AttemptPlan(
            model=self.route.model,
            fallback_model=self.route.fallback_model,
            deadline=self.deadline,
            policy=policy(),
            admit=bool(self._quotas()),
        )
        return self.plan

    def _quotas(self) -> list[tuple[Quota, str]]:
        """The quotas that apply to this call, each with its scope key."""
        req = self.req
        return applying(Scope(feature=req.feature, user=req.user_ref, tenant=req.tenant))

    def admit(self) -> Refusal | None:
        """Reserve the call's worst case on its route's models (the plan's
        ``Admit`` step); the refusal, if a quota refuses it. Blocking (cache)."""
        admitted = admit(
            self._quotas(),
            self.req.params,
            [self.route.model, self.route.fallback_model],
        )
        if isinstance(admitted, Refusal):
            return admitted
        with self._release_lock:
            released = self.released
            if not released:
                # A second reservation (before a retry that follows an attempt
                # whose cost is unknown) leaves the first one charged.
                self.reservation = admitted
        if released:  # the caller went away while this reserved (an async cancel)
            admitted.settle(None, None, billed=False)
        return None

    def release(self) -> None:
        """The call is over for its caller: give back what it still holds, if
        nothing was sent (an ending settles first; this covers any other way
        out). A request that was sent and never settled may have been billed:
        its worst case stays charged. A reservation an ``admit`` still in
        flight makes later is given back by it (``released``)."""
        with self._release_lock:
            self.released = True
        if not self.sent_anything():
            self.reservation.settle(None, None, billed=False)

    def sent_anything(self) -> bool:
        return any(run.attempts for run in self.runs)

    def spend_unknown(self) -> bool:
        """Did an attempt reach Anthropic without an answer that says it was
        not billed (a timeout, a dropped connection, a cancel)? Then what
        it cost is unknown, and its worst case stays charged."""
        return any(
            "status" not in entry and entry.get("error") not in NOT_SENT
            for run in self.runs
            for entry in run.log
        )

    @property
    def runs(self) -> list[ModelRun]:
        return self.plan.runs if self.plan is not None else []

    # -- facts ------------------------------------------------------------------------

    def facts(self, outcome: Outcome, *, upstream: Any = None) -> CallFacts:
        """The facts every record of this call carries, whatever its ending."""
        runs = self.runs
        return CallFacts(
            request_id=uuid.uuid4(),
            created_at=self.created_at,
            feature=self.req.feature,
            model_requested=self.route.model,
            outcome=outcome,
            prompt_text=self.req.prompt_text,
            user_id=self.req.user_id,
            user_ref=self.req.user_ref,
            tenant=self.req.tenant,
            arm=self.route.arm,
            canary_id=self.route.canary_id,
            attempts=sum(run.attempts for run in runs),
            attempt_log=[entry for run in runs for entry in run.log],
            fallback_used=len(runs) > 1,
            tags=self.req.tags,
            idempotency_key=self.req.idempotency_key,
            upstream_request_id=upstream_id_of(upstream),
            latency_ms=round((time.monotonic() - self.started) * 1000),
            span=self.span,
        )


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
    facts.usage = usage or Usage.from_api(getattr(message, "usage", None))
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
