"""``call``: route, cache, resilient attempts, fallback, degraded answer, record.

This module is the only place that knows the order of the steps; each step
lives in its own module.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
from anthropic.types import Message
from django.utils import timezone

from django_claude import answers, evals, records
from django_claude.client import get_client
from django_claude.conf import conf
from django_claude.exceptions import ClaudeUnavailable
from django_claude.pricing import Usage
from django_claude.resilience import (
    BadResponse,
    CircuitBreaker,
    Deadline,
    ErrorKind,
    MissingCredentials,
    backoff_delay,
    classify,
    decide_retry,
    error_status,
    error_type,
    retry_after_of,
)
from django_claude.results import ClaudeResult
from django_claude.routing import Route, active_route

logger = logging.getLogger(__name__)

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


def _send(
    client: anthropic.Anthropic, model: str, params: dict[str, Any], timeout: float
) -> Message:
    try:
        answer = client.messages.create(model=model, timeout=timeout, **params)
    except TypeError as exc:
        if _MISSING_KEY_TEXT in str(exc):
            raise MissingCredentials(
                "no Anthropic API key: set DJANGO_CLAUDE_API_KEY or ANTHROPIC_API_KEY"
            ) from None
        raise
    if not isinstance(answer, Message):
        raise BadResponse(answer)
    return answer


def run_model(
    model: str, params: dict[str, Any], *, deadline: Deadline, max_attempts: int
) -> ModelRun:
    """Up to ``max_attempts`` requests to ``model`` within the deadline."""
    run = ModelRun(model=model)
    breaker = CircuitBreaker(model)
    client = get_client()
    while True:
        if not breaker.allow():
            run.skipped = "breaker_open"
            run.log.append({"model": model, "error": "breaker_open"})
            return run
        timeout = deadline.attempt_timeout(conf.TIMEOUT)
        if timeout is None:
            run.skipped = run.skipped or "deadline"
            if run.attempts == 0:
                run.log.append({"model": model, "error": "deadline"})
            return run
        started = time.monotonic()
        run.attempts += 1
        try:
            run.message = _send(client, model, params, timeout)
        except (anthropic.AnthropicError, BadResponse, MissingCredentials) as exc:
            run.log.append(_attempt_entry(model, started, exc))
            run.error, run.kind = exc, classify(exc)
            if run.kind is ErrorKind.TRANSIENT:
                breaker.record_failure()
            decision = decide_retry(
                kind=run.kind,
                attempts_made=run.attempts,
                max_attempts=max_attempts,
                remaining=deadline.remaining(),
                backoff=backoff_delay(
                    run.attempts - 1, base=conf.BACKOFF_BASE, cap=conf.BACKOFF_MAX
                ),
                server_delay=retry_after_of(exc),
            )
            if not decision.retry:
                return run
            time.sleep(decision.delay)
            continue
        except Exception as exc:
            # A mistake in the caller's arguments (TypeError from the SDK...).
            run.log.append(_attempt_entry(model, started, exc))
            run.error, run.kind = exc, ErrorKind.CALLER
            return run
        run.log.append(_attempt_entry(model, started, None))
        run.error = run.kind = None
        breaker.record_success()
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


def call_with_route(
    prompt: str | None = None, *, route: Route, smell_test: bool | None = None, **kwargs: Any
) -> ClaudeResult:
    """``call`` on a given route instead of the feature's (the smell-test judge)."""
    req = prepare(
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
    return _call(req, route=route, smell_test=smell_test)


def _call(req: CallRequest, *, route: Route, smell_test: bool | None) -> ClaudeResult:
    started = time.monotonic()
    created_at = timezone.now()
    deadline = Deadline(conf.DEADLINE)

    cache_key = answers.request_key({"model": route.model, **req.params}) if req.cache_ttl else ""
    idem_key = (
        answers.idempotency_cache_key(req.feature, req.idempotency_key)
        if req.idempotency_key
        else ""
    )
    lock: answers.IdempotencyLock | None = None
    for key in (idem_key, cache_key):
        if key:
            stored = answers.get(key)
            if stored is not None:
                return _cached_result(
                    req, stored, model_requested=route.model, started=started, created_at=created_at
                )
    if idem_key:
        lock = answers.IdempotencyLock(idem_key)
        if not lock.acquire(ttl=conf.DEADLINE):
            stored = lock.wait_for(idem_key, seconds=deadline.remaining())
            if stored is not None:
                return _cached_result(
                    req, stored, model_requested=route.model, started=started, created_at=created_at
                )
    try:
        return _call_upstream(
            req,
            route.model,
            route.fallback_model,
            deadline=deadline,
            started=started,
            created_at=created_at,
            cache_key=cache_key,
            idem_key=idem_key,
            smell_test=smell_test,
        )
    finally:
        if lock is not None:
            lock.release()


def _call_upstream(
    req: CallRequest,
    primary: str,
    fallback: str,
    *,
    deadline: Deadline,
    started: float,
    created_at: datetime.datetime,
    cache_key: str,
    idem_key: str,
    smell_test: bool | None,
) -> ClaudeResult:
    runs = [run_model(primary, req.params, deadline=deadline, max_attempts=conf.MAX_ATTEMPTS)]
    if runs[0].message is None and fallback and _should_fall_back(runs[0]):
        runs.append(
            run_model(fallback, req.params, deadline=deadline, max_attempts=conf.FALLBACK_ATTEMPTS)
        )
    last = runs[-1]
    attempt_log = [entry for run in runs for entry in run.log]
    facts = records.CallFacts(
        request_id=uuid.uuid4(),
        created_at=created_at,
        feature=req.feature,
        model_requested=primary,
        outcome="ok",
        prompt_text=req.prompt_text,
        user_id=req.user_id,
        user_ref=req.user_ref,
        attempts=sum(run.attempts for run in runs),
        attempt_log=attempt_log,
        fallback_used=len(runs) > 1,
        tags=req.tags,
        idempotency_key=req.idempotency_key,
        upstream_request_id=_upstream_id(last),
    )
    if last.message is not None:
        message = last.message
        usage = Usage.from_api(message.usage)
        facts.outcome = "fallback" if len(runs) > 1 else "ok"
        facts.model = message.model or last.model
        facts.usage = usage
        facts.stop_reason = message.stop_reason or ""
        facts.latency_ms = round((time.monotonic() - started) * 1000)
        after_write = None
        if evals.should_sample(req.feature, smell_test) and evals.stash(
            facts.request_id, prompt=req.prompt_text, answer=_text_of(message)
        ):
            facts.smell_verdict = "pending"
            after_write = evals.enqueue(facts.request_id)
        _, cost = records.finish(facts, after_write=after_write)
        if cache_key or idem_key:
            stored = _stored(message, usage)
            if cache_key and req.cache_ttl:
                answers.put(cache_key, stored, req.cache_ttl)
            if idem_key:
                answers.put(idem_key, stored, max(conf.IDEMPOTENCY_TTL, req.cache_ttl or 0))
        return ClaudeResult(
            text=_text_of(message),
            outcome=facts.outcome,
            model=facts.model,
            attempts=facts.attempts,
            request_id=facts.request_id,
            cost_usd=cost,
            usage=usage.as_dict(),
            message=message,
            stop_reason=facts.stop_reason,
        )

    failed = next((run for run in reversed(runs) if run.error is not None), last)
    if failed.error is not None:
        facts.error_type = error_type(failed.error)
        facts.error_status = error_status(failed.error)
        facts.error_kind = failed.kind.value if failed.kind else ""
    else:
        facts.error_type = "BreakerOpen" if last.skipped == "breaker_open" else "DeadlineExceeded"
    facts.latency_ms = round((time.monotonic() - started) * 1000)
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
            f"Claude is unavailable for {req.feature!r} ({facts.error_type})",
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
