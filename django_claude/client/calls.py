"""``call`` and ``acall``: one request/response call through the attempt engine.

Validate, route, reuse a stored answer if the call asked for it, drive the
engine with ``messages.create``, then record and return (``outcome.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec

from anthropic.types import Message

from django_claude.client import outcome
from django_claude.client.answers import Reuse, text_of
from django_claude.client.drivers import (
    aroute,
    arun_plan,
    ending_cannot_block,
    off_loop,
    prefix_meanwhile,
    provisional_route,
    recording_off_loop,
    run_plan,
)
from django_claude.client.engine import Attempt
from django_claude.client.parsing import acreate_message, create_message
from django_claude.client.request import CallRequest, prepare, prepare_from
from django_claude.client.sdk import get_async_client, get_client
from django_claude.client.state import CallState
from django_claude.routing import Route, serving_route
from django_claude.types import ClaudeResult

P = ParamSpec("P")


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
    tenant: str | None = None,
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
        smell_test=smell_test,
        create_kwargs=create_kwargs,
        tenant=tenant,
    )
    return _call(req, route=serving_route(req.feature, req.canary_key))


def call_with_route(prompt: str | None = None, *, route: Route, **kwargs: Any) -> ClaudeResult:
    """``call`` on a given route instead of the feature's (the smell-test judge)."""
    return _call(prepare_from(prompt, kwargs), route=route)


def _conclude(state: CallState, reuse: Reuse) -> ClaudeResult:
    """Record the call and build its result (or raise); keep a reusable answer."""
    message = state.plan.answer if state.plan is not None else None
    if message is None:
        return outcome.failed(state)
    result = outcome.answered(
        state, text=text_of(message), message=message, model=message.model, upstream=message
    )
    reuse.keep(message, result.usage)
    return result


def _ends_on_the_loop(state: CallState, reuse: Reuse) -> bool:
    """Can an answered async call be recorded on the event loop? Not when it
    keeps its answer for reuse (a cache write), nor when its ending could
    otherwise block (``ending_cannot_block``)."""
    return (
        state.plan is not None
        and state.plan.answer is not None
        and not reuse.wanted
        and (ending_cannot_block(state))
    )


def _call(req: CallRequest, *, route: Route) -> ClaudeResult:
    state = CallState(req=req, route=route)
    reuse = Reuse(req, model=route.model)
    try:
        stored = reuse.find(wait=state.deadline.remaining()) if reuse.wanted else None
        if stored is not None:
            return outcome.replayed(state, stored)
        client = get_client(quiet=state.span.quiet)

        def attempt(step: Attempt) -> Message:
            return create_message(
                client,
                raw=not state.span.recording,
                model=step.model,
                timeout=step.timeout,
                **req.params,
            )

        with state.span.current():
            run_plan(state.start(), attempt, state.admit, state.confirm)
        return _conclude(state, reuse)
    finally:
        reuse.release()
        state.release()


def _takes_arguments_of(
    template: Callable[P, Any],
) -> Callable[
    [Callable[..., Coroutine[Any, Any, ClaudeResult]]],
    Callable[P, Coroutine[Any, Any, ClaudeResult]],
]:
    """Give an async twin ``template``'s signature (for type checkers and ``help()``)."""

    def decorate(fn: Callable[..., Coroutine[Any, Any, ClaudeResult]]) -> Any:
        fn.__signature__ = inspect.signature(template).replace(  # type: ignore[attr-defined]
            return_annotation="ClaudeResult"
        )
        return fn

    return decorate


@_takes_arguments_of(call)
async def acall(prompt: str | None = None, **kwargs: Any) -> ClaudeResult:
    """``call`` for async views: the same arguments, result and guarantees.

    Uses ``AsyncAnthropic`` and ``asyncio.sleep``; database and cache work runs
    in threads, never on the event loop. A cancelled call (the client went
    away) is still recorded, with outcome ``"interrupted"``, and the
    ``CancelledError`` propagates.
    """
    req = prepare_from(prompt, kwargs)
    state = CallState(req=req, route=provisional_route(req.feature))
    reuse: Reuse | None = None
    try:
        route = await aroute(req)
        plan = state.start(route)
        reuse = Reuse(req, model=route.model)
        if reuse.wanted:
            stored = await off_loop(reuse.find)(wait=state.deadline.remaining())
            if stored is not None:
                return await recording_off_loop(outcome.replayed)(state, stored)
        client = get_async_client(quiet=state.span.quiet)

        async def attempt(step: Attempt) -> Message:
            return await acreate_message(
                client,
                raw=not state.span.recording,
                model=step.model,
                timeout=step.timeout,
                **req.params,
            )

        with state.span.current():
            await arun_plan(plan, attempt, state.aadmit, prefix_meanwhile(state))
        if _ends_on_the_loop(state, reuse):
            return _conclude(state, reuse)  # nothing in it blocks: no thread hop
        return await recording_off_loop(_conclude)(state, reuse)
    except asyncio.CancelledError:
        outcome.cancelled(state)
        raise
    finally:
        state.release()  # settled by its ending; this covers any other way out
        if reuse is not None and reuse.lock is not None:
            with contextlib.suppress(BaseException):
                await off_loop(reuse.release)()
