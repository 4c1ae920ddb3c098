"""``CallState``: what every entry point of one call shares (the request, the
route, the deadline, the attempt plan, the quota reservation, the span), and
the facts every ending records."""

from __future__ import annotations

import datetime
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from django_claude.client.deadline import bounded
from django_claude.client.engine import AttemptPlan, Deadline, ModelRun, Policy
from django_claude.client.request import CallRequest
from django_claude.client.sdk import get_async_client, get_client
from django_claude.conf import conf
from django_claude.quotas.config import Quota
from django_claude.quotas.counting import acount_input, count_input, count_timeout, counts_tokens
from django_claude.quotas.enforce import NOTHING_HELD, Refusal, Reservation, Scope, admit, applying
from django_claude.recording import sampling
from django_claude.recording.facts import CallFacts
from django_claude.routing import Route
from django_claude.shared_cache import cache_is_local
from django_claude.telemetry import CallSpan
from django_claude.types import Outcome

# Attempt-log errors of steps that sent no request.
NOT_SENT = frozenset({"breaker_open", "deadline", "rate_limited", "limited"})


class _RandomIds:
    """Version 4 UUIDs, as ``uuid.uuid4()`` makes them, from ``os.urandom``
    read 4 KB at a time: one system call per 256 calls instead of one each.
    A fork's child never hands out its parent's ids: the pool belongs to
    the process that read it (checked on each id, since some servers fork
    without running Python's at-fork hooks)."""

    SIZE = 16 * 256

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool, self.at, self.pid = b"", 0, os.getpid()

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.pool, self.at, self.pid = b"", 0, os.getpid()

    def new(self) -> uuid.UUID:
        with self.lock:
            if self.at >= len(self.pool) or self.pid != os.getpid():
                self.pool, self.at, self.pid = os.urandom(self.SIZE), 0, os.getpid()
            raw, self.at = self.pool[self.at : self.at + 16], self.at + 16
        return uuid.UUID(bytes=raw, version=4)


_ids = _RandomIds()
os.register_at_fork(after_in_child=_ids.after_fork)  # (a new lock too)
new_request_id = _ids.new


def _early(prefix: tuple[str, str, int] | None) -> str | None:
    """A prompt prefix made early (with the redactor and length it names), if
    those settings still hold."""
    if prefix is None or prefix[1:] != (conf.REDACTOR, conf.PROMPT_PREFIX_CHARS):
        return None
    return prefix[0]


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
    quotas_found: list[tuple[Quota, str]] = field(default_factory=list)  # with scope keys
    counted: dict[str, int] | None = None  # input tokens per model, Anthropic's count
    early_prefix: tuple[str, str, int] | None = None  # redacted while it waited (``_early``)
    released: bool = False  # ``release`` ran: the call is over for its caller
    # An ending built the facts: a second one (a cancel racing it) records nothing.
    ending_taken: bool = False
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
        req = self.req
        self.quotas_found = applying(Scope(req.feature, user=req.user_ref, tenant=req.tenant))
        self.plan = AttemptPlan(
            model=self.route.model,
            fallback_model=self.route.fallback_model,
            deadline=self.deadline,
            policy=policy(),
            admit=bool(self.quotas_found),
        )
        return self.plan

    def models(self) -> list[str]:
        """The route's models: what a reservation is priced on."""
        return [self.route.model, self.route.fallback_model]

    def admit(self) -> Refusal | None:
        """Reserve the call's worst case (the plan's ``Admit``); the refusal,
        if any. The first one's answer is read just before the request goes
        out (``confirm``); one before a retry, and a token count, now."""
        found = self.quotas_found
        if self.counted is None and counts_tokens(found):
            self.counted = count_input_of(self)
        return self._reserve(found, later=self.plan is not None and not self.plan.runs)

    def confirm(self) -> Refusal | None:  # (``admit``)
        return self.reservation.confirm()

    async def aadmit(self) -> Refusal | None:
        """``admit`` for the event loop: the token count is awaited there, the
        reservation made in a thread when the cache can block."""
        found = self.quotas_found
        if self.counted is None and counts_tokens(found):
            self.counted = await acount_input_of(self)
        if cache_is_local():
            return self._reserve(found)
        return await sync_to_async(self._reserve, thread_sensitive=False)(found)

    def _reserve(self, found: list[tuple[Quota, str]], *, later: bool = False) -> Refusal | None:
        admitted = admit(found, self.req.params, self.models(), counted=self.counted, later=later)
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
        """The call is over for its caller: give back what it holds if nothing
        was sent (a request sent and never settled may have been billed: its
        worst case stays charged); an ``admit`` still in flight gives back
        what it makes later (``released``)."""
        with self._release_lock:
            self.released = True
            unrecorded = not self.ending_taken
        if self.reservation.unconfirmed or not self.sent_anything():  # (unread: none went out)
            self.reservation.give_back()
        if unrecorded:  # left by an exception no ending saw (KeyboardInterrupt...)
            self.span.abandon()

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
        """The facts every record of this call carries, whatever its ending
        (marked ``duplicate`` for any ending after the first)."""
        with self._release_lock:
            duplicate, self.ending_taken = self.ending_taken, True
        runs = self.runs
        return CallFacts(
            request_id=new_request_id(),
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
            duplicate=duplicate,
            prompt_prefix=_early(self.early_prefix),
        )


def count_input_of(state: CallState) -> dict[str, int]:
    """The call's input tokens per model of its route, as Anthropic's
    token-counting endpoint counts them with the client the call uses
    ({} when there is no time left to ask)."""
    timeout = count_timeout(state.deadline.remaining())
    if timeout is None:
        return {}
    client, until = get_client(quiet=state.span.quiet), time.monotonic() + timeout

    def send(model: str, request: dict[str, Any], left: float) -> Any:
        with bounded(until):  # a count that dribbles in is cut off too
            return client.messages.count_tokens(model=model, timeout=left, **request)

    return count_input(send, state.req.params, state.models(), timeout=timeout)


async def acount_input_of(state: CallState) -> dict[str, int]:
    """``count_input_of`` with the event loop's async client."""
    timeout = count_timeout(state.deadline.remaining())
    if timeout is None:
        return {}
    client = get_async_client(quiet=state.span.quiet)

    async def send(model: str, request: dict[str, Any], left: float) -> Any:
        return await client.messages.count_tokens(model=model, timeout=left, **request)

    return await acount_input(send, state.req.params, state.models(), timeout=timeout)
