"""``call``: route, cache, resilient attempts, fallback, degraded answer, record.

This module is the only place that knows the order of the steps; each step
lives in its own module.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import anthropic
from anthropic.types import Message
from asgiref.sync import sync_to_async
from django.utils import timezone

from django_claude.client import answers
from django_claude.client.errors import (
    BadResponse,
    CircuitBreaker,
    Deadline,
    ErrorKind,
    MissingCredentials,
    RetryDecision,
    StreamCutOff,
    backoff_delay,
    classify,
    decide_retry,
    error_status,
    error_type,
    retry_after_of,
)
from django_claude.client.sdk import get_async_client, get_client
from django_claude.conf import conf
from django_claude.recording import facts as records
from django_claude.recording import sampling
from django_claude.recording.pricing import Usage
from django_claude.routing import Route, active_route, route_table_is_fresh
from django_claude.types import ClaudeResult, ClaudeUnavailable

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Arguments that django-claude owns; passing them through **create_kwargs is a mistake.
RESERVED_KWARGS = frozenset({"model", "messages", "max_tokens", "system", "stream", "timeout"})
MAX_TAGS = 20
_MISSING_KEY_TEXT = "Could not resolve authentication method"


@dataclass
class CallRequest:
    """A validated call: what goes upstream, and what is recorded about it."""

    feature: str
    params: dict[str, Any]  # messages.create arguments, without model and timeout
    prompt_text: str  # the text the record's redacted prefix comes from
    user_id: Any
    user_ref: str
    cache_ttl: int | None
    idempotency_key: str
    tags: dict[str, Any]


@dataclass
class ModelRun:
    """What happened on one model: its answer, or why it gave none."""

    model: str
    message: Message | None = None
    error: BaseException | None = None
    kind: ErrorKind | None = None
    skipped: str = ""  # "breaker_open" or "deadline": no request was sent
    attempts: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


# -- validation ---------------------------------------------------------------


def _check_text(value: Any, where: str) -> None:
    """Refuse text the API cannot receive (lone surrogates cannot be UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{where} contains a lone surrogate at index {exc.start}; "
                "decode the user's input with errors='replace' first"
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_text(item, f"{where}[{i}]")


def _last_user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    for message in reversed(list(messages)):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(block.get("text", ""))
                for block in content
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
    return ""


def _user_refs(user: Any) -> tuple[Any, str]:
    if user is None:
        return None, ""
    if isinstance(user, str):
        return None, user
    if isinstance(user, int):
        return None, str(user)
    if not getattr(user, "is_authenticated", False):
        return None, ""
    return user.pk, str(user.pk)


def prepare(
    prompt: str | None,
    *,
    feature: str,
    user: Any,
    system: Any,
    max_tokens: int | None,
    messages: list[dict[str, Any]] | None,
    cache_ttl: int | None,
    idempotency_key: str | None,
    tags: Mapping[str, Any] | None,
    create_kwargs: dict[str, Any],
) -> CallRequest:
    """Validate the arguments of a call; raise ``TypeError``/``ValueError`` early."""
    if not isinstance(feature, str) or not feature.strip():
        raise ValueError("feature= is required: a non-empty string naming the caller")
    if len(feature) > 100:
        raise ValueError("feature must be at most 100 characters")
    if (prompt is None) == (messages is None):
        raise ValueError("pass either a prompt or messages=[...], not both and not neither")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        if not prompt.strip():
            raise ValueError("prompt is empty")
        _check_text(prompt, "prompt")
        message_list: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        prompt_text = prompt
    else:
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
        _check_text(messages, "messages")
        message_list = list(messages)
        prompt_text = _last_user_text(message_list)
    if system is not None:
        _check_text(system, "system")
    limit = conf.MAX_TOKENS if max_tokens is None else max_tokens
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError("max_tokens must be a positive int")
    if cache_ttl is not None and (not isinstance(cache_ttl, int) or cache_ttl < 1):
        raise ValueError("cache_ttl must be a positive number of seconds")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not idempotency_key or len(idempotency_key) > 200
    ):
        raise ValueError("idempotency_key must be a non-empty string of at most 200 characters")
    clean_tags = dict(tags or {})
    if len(clean_tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    for key, value in clean_tags.items():
        if not isinstance(key, str):
            raise TypeError("tag names must be strings")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"tag {key!r} must be a str, number, bool or None")
    reserved = RESERVED_KWARGS & set(create_kwargs)
    if reserved:
        raise TypeError(
            f"{', '.join(sorted(reserved))} cannot be passed to call(): the model comes from "
            "the feature's route, the timeout from DJANGO_CLAUDE_TIMEOUT; use stream() to stream"
        )
    params: dict[str, Any] = {"max_tokens": limit, "messages": message_list, **create_kwargs}
    if system is not None:
        params["system"] = system
    user_id, user_ref = _user_refs(user)
    return CallRequest(
        feature=feature,
        params=params,
        prompt_text=prompt_text,
        user_id=user_id,
        user_ref=user_ref,
        cache_ttl=cache_ttl,
        idempotency_key=idempotency_key or "",
        tags=clean_tags,
    )


# -- attempts -------------------------------------------------------------------


def _attempt_entry(model: str, started: float, exc: BaseException | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model": model,
        "latency_ms": round((time.monotonic() - started) * 1000),
    }
    if exc is None:
        entry["status"] = 200
    else:
        entry["error"] = error_type(exc)
        status = error_status(exc)
        if status is not None:
            entry["status"] = status
    return entry


def _off_loop(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run blocking cache or database work in a thread, off the event loop."""
    return sync_to_async(fn, thread_sensitive=False)


def _sdk_call(fn: Any, /, **kwargs: Any) -> Any:
    """Call the SDK, turning its missing-key TypeError into MissingCredentials."""
    try:
        return fn(**kwargs)
    except TypeError as exc:
        if _MISSING_KEY_TEXT in str(exc):
            raise MissingCredentials(
                "no Anthropic API key: set DJANGO_CLAUDE_API_KEY or ANTHROPIC_API_KEY"
            ) from None
        raise


def gate(run: ModelRun, breaker: CircuitBreaker, deadline: Deadline) -> float | None:
    """The timeout of the next attempt on ``run.model``, or None when none may
    start (its breaker is open, or the deadline leaves no time)."""
    if not breaker.allow():
        run.skipped = "breaker_open"
        run.log.append({"model": run.model, "error": "breaker_open"})
        return None
    timeout = deadline.attempt_timeout(conf.TIMEOUT)
    if timeout is None:
        run.skipped = run.skipped or "deadline"
        if run.attempts == 0:
            run.log.append({"model": run.model, "error": "deadline"})
        return None
    run.attempts += 1
    return timeout


def attempt_failed(
    run: ModelRun,
    exc: BaseException,
    *,
    started: float,
    breaker: CircuitBreaker,
    deadline: Deadline,
    max_attempts: int,
) -> RetryDecision:
    """Record a failed attempt and say whether (and when) to try again."""
    run.log.append(_attempt_entry(run.model, started, exc))
    if isinstance(exc, (anthropic.AnthropicError, BadResponse, MissingCredentials, StreamCutOff)):
        run.error, run.kind = exc, classify(exc)
    else:
        run.error, run.kind = exc, ErrorKind.CALLER  # a TypeError from the SDK...
    if run.kind is ErrorKind.TRANSIENT:
        breaker.record_failure()
    return decide_retry(
        kind=run.kind,
        attempts_made=run.attempts,
        max_attempts=max_attempts,
        remaining=deadline.remaining(),
        backoff=backoff_delay(run.attempts - 1, base=conf.BACKOFF_BASE, cap=conf.BACKOFF_MAX),
        server_delay=retry_after_of(exc),
    )


def attempt_succeeded(run: ModelRun, *, started: float, breaker: CircuitBreaker) -> None:
    run.log.append(_attempt_entry(run.model, started, None))
    run.error = run.kind = None
    breaker.record_success()


def run_model(
    model: str, params: dict[str, Any], *, deadline: Deadline, max_attempts: int
) -> ModelRun:
    """Up to ``max_attempts`` requests to ``model`` within the deadline."""
    run = ModelRun(model=model)
    breaker = CircuitBreaker(model)
    client = get_client()
    while (timeout := gate(run, breaker, deadline)) is not None:
        started = time.monotonic()
        try:
            answer = _sdk_call(client.messages.create, model=model, timeout=timeout, **params)
            if not isinstance(answer, Message):
                raise BadResponse(answer)
        except Exception as exc:
            decision = attempt_failed(
                run,
                exc,
                started=started,
                breaker=breaker,
                deadline=deadline,
                max_attempts=max_attempts,
            )
            if not decision.retry:
                return run
            time.sleep(decision.delay)
            continue
        run.message = answer
        attempt_succeeded(run, started=started, breaker=breaker)
        return run
    return run


async def arun_model(
    model: str,
    params: dict[str, Any],
    *,
    deadline: Deadline,
    max_attempts: int,
    run: ModelRun | None = None,
) -> ModelRun:
    """``run_model`` on the async client; cache I/O runs off the event loop.

    Pass ``run`` to see its attempts even when the task is cancelled."""
    run = run or ModelRun(model=model)
    breaker = CircuitBreaker(model)
    client = get_async_client()
    while (timeout := await _off_loop(gate)(run, breaker, deadline)) is not None:
        started = time.monotonic()
        try:
            answer = await _sdk_call(client.messages.create, model=model, timeout=timeout, **params)
            if not isinstance(answer, Message):
                raise BadResponse(answer)
        except asyncio.CancelledError:
            run.log.append(_attempt_entry(model, started, asyncio.CancelledError()))
            raise
        except Exception as exc:
            decision = await _off_loop(attempt_failed)(
                run,
                exc,
                started=started,
                breaker=breaker,
                deadline=deadline,
                max_attempts=max_attempts,
            )
            if not decision.retry:
                return run
            await asyncio.sleep(decision.delay)
            continue
        run.message = answer
        if breaker.has_state_to_clear:
            await _off_loop(attempt_succeeded)(run, started=started, breaker=breaker)
        else:
            attempt_succeeded(run, started=started, breaker=breaker)  # no I/O: stay on the loop
        return run
    return run


def _should_fall_back(run: ModelRun) -> bool:
    if run.skipped:
        return True
    return run.kind in (ErrorKind.TRANSIENT, ErrorKind.MODEL)


# -- the call ---------------------------------------------------------------------


def _text_of(message: Message) -> str:
    return "".join(getattr(block, "text", "") for block in message.content if block.type == "text")


def _upstream_id(run: ModelRun) -> str:
    if run.message is not None:
        return str(getattr(run.message, "_request_id", None) or "")
    return str(getattr(run.error, "request_id", None) or "")


def _stored(message: Message, usage: Usage) -> answers.StoredAnswer:
    return answers.StoredAnswer(
        text=_text_of(message),
        model=message.model,
        stop_reason=message.stop_reason or "",
        usage=usage.as_dict(),
        message=message.model_dump(mode="json"),
    )


def _cached_result(
    req: CallRequest,
    stored: answers.StoredAnswer,
    *,
    model_requested: str,
    started: float,
    created_at: datetime.datetime,
) -> ClaudeResult:
    request_id = uuid.uuid4()
    facts = records.CallFacts(
        request_id=request_id,
        created_at=created_at,
        feature=req.feature,
        model_requested=model_requested,
        outcome="cached",
        prompt_text=req.prompt_text,
        user_id=req.user_id,
        user_ref=req.user_ref,
        model=stored.model,
        latency_ms=round((time.monotonic() - started) * 1000),
        stop_reason=stored.stop_reason,
        tags=req.tags,
        idempotency_key=req.idempotency_key,
        billable=False,
    )
    records.finish(facts)
    message = Message.model_validate(stored.message) if stored.message else None
    return ClaudeResult(
        text=stored.text,
        outcome="cached",
        model=stored.model,
        attempts=0,
        request_id=request_id,
        cost_usd=Decimal(0),
        usage=dict(stored.usage),
        message=message,
        stop_reason=stored.stop_reason,
    )


def call(
    prompt: str | None = None,
    *,
    feature: str,
    user: Any = None,
    system: Any = None,
    max_tokens: int | None = None,
    messages: list[dict[str, Any]] | None = None,
    cache_ttl: int | None = None,
    idempotency_key: str | None = None,
    smell_test: bool | None = None,
    tags: Mapping[str, Any] | None = None,
    **create_kwargs: Any,
) -> ClaudeResult:
    """Ask Claude, survive what the API does, and record the call.

    Returns a ``ClaudeResult`` whose ``outcome`` is ``ok``, ``fallback``,
    ``cached`` or ``degraded``. Raises ``ValueError``/``TypeError`` for bad
    arguments (before any request), the SDK's own ``BadRequestError`` (and
    413/422 errors) when the API calls the request invalid (after recording
    it), and ``ClaudeUnavailable`` instead of a degraded answer when
    ``DJANGO_CLAUDE_RAISE_ON_FAILURE`` is set.
    """
    req = prepare(
        prompt,
        feature=feature,
        user=user,
        system=system,
        max_tokens=max_tokens,
        messages=messages,
        cache_ttl=cache_ttl,
        idempotency_key=idempotency_key,
        tags=tags,
        create_kwargs=create_kwargs,
    )
    return _call(req, route=active_route(req.feature), smell_test=smell_test)


def prepare_from(prompt: str | None, kwargs: dict[str, Any]) -> CallRequest:
    """``prepare`` for wrappers that take ``call``'s arguments as ``**kwargs``:
    the known ones are popped, the rest go to ``messages.create``."""
    return prepare(
        prompt,
        feature=kwargs.pop("feature"),
        user=kwargs.pop("user", None),
        system=kwargs.pop("system", None),
        max_tokens=kwargs.pop("max_tokens", None),
        messages=kwargs.pop("messages", None),
        cache_ttl=kwargs.pop("cache_ttl", None),
        idempotency_key=kwargs.pop("idempotency_key", None),
        tags=kwargs.pop("tags", None),
        create_kwargs=kwargs,
    )


def call_with_route(
    prompt: str | None = None, *, route: Route, smell_test: bool | None = None, **kwargs: Any
) -> ClaudeResult:
    """``call`` on a given route instead of the feature's (the smell-test judge)."""
    return _call(prepare_from(prompt, kwargs), route=route, smell_test=smell_test)


@dataclass
class _Call:
    """One call in progress: what the sync and async drivers share."""

    req: CallRequest
    route: Route
    smell_test: bool | None
    started: float = field(default_factory=time.monotonic)
    created_at: datetime.datetime = field(default_factory=timezone.now)
    deadline: Deadline = field(default_factory=lambda: Deadline(conf.DEADLINE))
    runs: list[ModelRun] = field(default_factory=list)
    cache_key: str = ""
    idem_key: str = ""
    lock: answers.IdempotencyLock | None = None

    def __post_init__(self) -> None:
        self.use_route(self.route)

    def use_route(self, route: Route) -> None:
        """Serve the call from ``route`` (the answer keys depend on its model)."""
        self.route = route
        if self.req.cache_ttl:
            self.cache_key = answers.request_key({"model": self.route.model, **self.req.params})
        if self.req.idempotency_key:
            self.idem_key = answers.idempotency_cache_key(
                self.req.feature, self.req.idempotency_key
            )

    def replay(self) -> answers.StoredAnswer | None:
        """A stored answer to reuse, waiting for a concurrent twin if needed
        (blocking: the async driver runs it in a thread)."""
        for key in (self.idem_key, self.cache_key):
            if key and (stored := answers.get(key)) is not None:
                return stored
        if self.idem_key:
            self.lock = answers.IdempotencyLock(self.idem_key)
            if not self.lock.acquire(ttl=conf.DEADLINE):
                return self.lock.wait_for(self.idem_key, seconds=self.deadline.remaining())
        return None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def cached(self, stored: answers.StoredAnswer) -> ClaudeResult:
        return _cached_result(
            self.req,
            stored,
            model_requested=self.route.model,
            started=self.started,
            created_at=self.created_at,
        )

    def models_to_try(self) -> Iterator[tuple[str, int]]:
        """The route's model, then its fallback if the first run calls for it
        (lazy: asked after the first run has happened)."""
        yield self.route.model, conf.MAX_ATTEMPTS
        if self.needs_fallback():
            yield self.route.fallback_model, conf.FALLBACK_ATTEMPTS

    def needs_fallback(self) -> bool:
        first = self.runs[0]
        return (
            len(self.runs) == 1
            and first.message is None
            and bool(self.route.fallback_model)
            and _should_fall_back(first)
        )

    def facts(self) -> records.CallFacts:
        runs, last = self.runs, self.runs[-1]
        return records.CallFacts(
            request_id=uuid.uuid4(),
            created_at=self.created_at,
            feature=self.req.feature,
            model_requested=self.route.model,
            outcome="ok",
            prompt_text=self.req.prompt_text,
            user_id=self.req.user_id,
            user_ref=self.req.user_ref,
            attempts=sum(run.attempts for run in runs),
            attempt_log=[entry for run in runs for entry in run.log],
            fallback_used=len(runs) > 1,
            tags=self.req.tags,
            idempotency_key=self.req.idempotency_key,
            upstream_request_id=_upstream_id(last),
            latency_ms=round((time.monotonic() - self.started) * 1000),
        )

    def conclude(self) -> ClaudeResult:
        """Record the call and build its result (or raise the caller's error)."""
        facts = self.facts()
        last = self.runs[-1]
        if last.message is not None:
            return self._answered(facts, last.message)
        return self.conclude_failure(facts)

    def conclude_failure(self, facts: records.CallFacts | None = None) -> ClaudeResult:
        """Nothing answered: record it, then raise the caller's error, raise
        ``ClaudeUnavailable`` (``RAISE_ON_FAILURE``) or return the degraded answer."""
        facts = facts or self.facts()
        last = self.runs[-1]
        failed = next((run for run in reversed(self.runs) if run.error is not None), last)
        if failed.error is not None:
            facts.error_type = error_type(failed.error)
            facts.error_status = error_status(failed.error)
            facts.error_kind = failed.kind.value if failed.kind else ""
        else:
            facts.error_type = (
                "BreakerOpen" if last.skipped == "breaker_open" else "DeadlineExceeded"
            )
        facts.billable = False
        if failed.kind is ErrorKind.CALLER and failed.error is not None:
            facts.outcome = "error"
            records.finish(facts)
            raise failed.error
        facts.outcome = "degraded"
        if failed.kind is ErrorKind.AUTH:
            logger.error(
                "claude call %s: the API refused our credentials (%s); check DJANGO_CLAUDE_API_KEY",
                facts.request_id,
                facts.error_type,
            )
        records.finish(facts)
        if conf.RAISE_ON_FAILURE:
            raise ClaudeUnavailable(
                f"Claude is unavailable for {self.req.feature!r} ({facts.error_type})",
                request_id=facts.request_id,
                error_type=facts.error_type,
            ) from failed.error
        return ClaudeResult(
            text=conf.DEGRADED_MESSAGE,
            outcome="degraded",
            model="",
            attempts=facts.attempts,
            request_id=facts.request_id,
            cost_usd=Decimal(0),
            usage={},
            message=None,
        )

    def _answered(self, facts: records.CallFacts, message: Message) -> ClaudeResult:
        usage = Usage.from_api(message.usage)
        facts.outcome = "fallback" if len(self.runs) > 1 else "ok"
        facts.model = message.model or self.runs[-1].model
        facts.usage = usage
        facts.stop_reason = message.stop_reason or ""
        text = _text_of(message)
        after_write = None
        if sampling.should_sample(self.req.feature, self.smell_test) and sampling.stash(
            facts.request_id, prompt=self.req.prompt_text, answer=text
        ):
            facts.smell_verdict = "pending"
            after_write = sampling.judge_after_write(facts.request_id)
        _, cost = records.finish(facts, after_write=after_write)
        if self.cache_key or self.idem_key:
            stored = _stored(message, usage)
            if self.cache_key and self.req.cache_ttl:
                answers.put(self.cache_key, stored, self.req.cache_ttl)
            if self.idem_key:
                answers.put(
                    self.idem_key, stored, max(conf.IDEMPOTENCY_TTL, self.req.cache_ttl or 0)
                )
        return ClaudeResult(
            text=text,
            outcome=facts.outcome,
            model=facts.model,
            attempts=facts.attempts,
            request_id=facts.request_id,
            cost_usd=cost,
            usage=usage.as_dict(),
            message=message,
            stop_reason=facts.stop_reason,
        )

    def cancelled(self) -> None:
        """Record a call whose task was cancelled (the client went away).

        Runs on the event loop: the log line now, the row by the background
        writer, so nothing here blocks or awaits.
        """
        if not self.runs:
            self.runs.append(ModelRun(model=self.route.model))
        facts = self.facts()
        facts.outcome = "interrupted"
        facts.error_type = "CancelledError"
        facts.billable = False
        records.finish(facts, background=True)


def _call(req: CallRequest, *, route: Route, smell_test: bool | None) -> ClaudeResult:
    state = _Call(req=req, route=route, smell_test=smell_test)
    stored = state.replay()
    if stored is not None:
        return state.cached(stored)
    try:
        for model, attempts in state.models_to_try():
            state.runs.append(
                run_model(model, req.params, deadline=state.deadline, max_attempts=attempts)
            )
        return state.conclude()
    finally:
        state.release()


async def acall(
    prompt: str | None = None,
    *,
    feature: str,
    user: Any = None,
    system: Any = None,
    max_tokens: int | None = None,
    messages: list[dict[str, Any]] | None = None,
    cache_ttl: int | None = None,
    idempotency_key: str | None = None,
    smell_test: bool | None = None,
    tags: Mapping[str, Any] | None = None,
    **create_kwargs: Any,
) -> ClaudeResult:
    """``call`` for async views: the same arguments, result and guarantees.

    Uses ``AsyncAnthropic`` and ``asyncio.sleep``; database and cache work runs
    in threads, never on the event loop. A cancelled call (the client went
    away) is still recorded, with outcome ``"interrupted"``, and the
    ``CancelledError`` propagates.
    """
    req = prepare(
        prompt,
        feature=feature,
        user=user,
        system=system,
        max_tokens=max_tokens,
        messages=messages,
        cache_ttl=cache_ttl,
        idempotency_key=idempotency_key,
        tags=tags,
        create_kwargs=create_kwargs,
    )
    state = _Call(req=req, route=_cancelled_route(req.feature), smell_test=smell_test)
    try:
        if route_table_is_fresh():
            route = active_route(req.feature)  # from memory
        else:
            route = await sync_to_async(active_route)(req.feature)  # reads the database
        state.use_route(route)
        if state.cache_key or state.idem_key:
            stored = await _off_loop(state.replay)()
            if stored is not None:
                return await sync_to_async(state.cached)(stored)
        for model, attempts in state.models_to_try():
            run = ModelRun(model=model)
            state.runs.append(run)
            await arun_model(
                model, req.params, deadline=state.deadline, max_attempts=attempts, run=run
            )
        return await sync_to_async(state.conclude)()
    except asyncio.CancelledError:
        state.cancelled()
        raise
    finally:
        if state.lock is not None:
            with contextlib.suppress(BaseException):
                await _off_loop(state.release)()


def _cancelled_route(feature: str) -> Route:
    """What a call cancelled before its route was read is recorded against."""
    return Route(feature=feature, model=conf.DEFAULT_MODEL, fallback_model="")
