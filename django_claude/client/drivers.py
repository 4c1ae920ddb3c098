"""Do what the attempt engine says: one blocking loop, one on the event loop.

The four entry points hand these an ``attempt`` function (send a request, or
open a stream up to its first token); everything else (the breaker, backoff,
the deadline, the fallback) comes from the plan.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, router

from django_claude.client.breaker import Breakers
from django_claude.client.deadline import AttemptTimedOut, bounded
from django_claude.client.engine import (
    Admit,
    Attempt,
    AttemptPlan,
    BreakerStep,
    Done,
    Sleep,
    Step,
)
from django_claude.client.ratelimits import attempt_model
from django_claude.client.request import CallRequest
from django_claude.client.sdk import NotAdmitted, admission
from django_claude.client.state import CallState
from django_claude.conf import DEFAULTS, conf
from django_claude.models import CallRecord
from django_claude.recording import catalog
from django_claude.recording.facts import redactor
from django_claude.recording.pricing import price_book_is_fresh
from django_claude.recording.redaction import prompt_prefix
from django_claude.recording.transactions import under_test_runner
from django_claude.recording.writer import writes_behind
from django_claude.routing import (
    Route,
    look_again_soon,
    route_table_is_fresh,
    route_table_is_served_stale,
    serving_route,
)

P = ParamSpec("P")
R = TypeVar("R")


def off_loop(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run blocking cache or database work in a thread, off the event loop."""
    return sync_to_async(fn, thread_sensitive=False)


def recording_off_loop(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run an ending (record, build the result) off the event loop: in any
    free thread, so that a server's concurrent calls do not queue for the one
    thread-sensitive thread; under a test runner in that thread, where the
    test's transaction (and its connection) lives, so records roll back with
    the test."""
    if under_test_runner():
        return sync_to_async(fn, thread_sensitive=True)

    @functools.wraps(fn)
    def in_a_worker_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        # No request cycle closes this thread's connections: drop broken or
        # expired ones (CONN_MAX_AGE) before an ending may write.
        close_old_connections()
        return fn(*args, **kwargs)

    return sync_to_async(in_a_worker_thread, thread_sensitive=False)


# The redactors known to do nothing but compute (a site's own might block).
BUILT_IN_REDACTORS = frozenset({DEFAULTS["REDACTOR"], "django_claude.redaction.redact"})


def ending_cannot_block(state: CallState) -> bool:
    """Can this async call's ending (price, line, record, result) run on the
    event loop, saving the hop to a thread and back? Only when no step of it
    can block: not sampled (an insert for the judge), prices in memory (the
    site's and the list's), the built-in redactor, and the row written behind."""
    return (
        not state.draw_sample()
        and price_book_is_fresh()
        and catalog.is_loaded()
        and conf.REDACTOR in BUILT_IN_REDACTORS
        and not conf.OTEL_CAPTURE_CONTENT  # the whole prompt and answer to redact
        and writes_behind(router.db_for_write(CallRecord))
    )


def run_plan(
    plan: AttemptPlan,
    attempt: Callable[[Attempt], Any],
    admit: Callable[[], Any] = lambda: None,
    confirm: Callable[[], Any] = lambda: None,
) -> None:
    """Carry out ``plan`` in this thread until it is done; ``admit`` reserves
    the call's quotas (``CallState.admit``) and may answer before the cache
    does: ``confirm`` then waits for its answer (the refusal or None). It is
    asked just before the first request goes out (the SDK builds it
    meanwhile), or before any step that could not be undone or must not wait
    on it (a sleep, a breaker probe, the end)."""
    breakers = Breakers()
    step: Step = plan.first()
    unconfirmed = False
    while True:
        if unconfirmed and not (
            isinstance(step, Attempt)
            or (isinstance(step, BreakerStep) and not breakers.needs_io(step))
        ):
            unconfirmed = False
            refusal = confirm()
            if refusal is not None:
                step = plan.refused(refusal)
        if isinstance(step, Done):
            return
        if isinstance(step, Admit):
            step = plan.send(admit())
            unconfirmed = True
        elif isinstance(step, BreakerStep):
            step = plan.send(breakers.perform(step))
        elif isinstance(step, Sleep):
            time.sleep(step.seconds)
            step = plan.send()
        else:
            step = _attempt(plan, step, attempt, confirm if unconfirmed else None)
            if unconfirmed:  # asked by the request, or now (none went out)
                unconfirmed = False
                refusal = confirm()
                if refusal is not None:
                    step = plan.refused(refusal)


def _attempt(
    plan: AttemptPlan,
    step: Attempt,
    attempt: Callable[[Attempt], Any],
    confirm: Callable[[], Any] | None,
) -> Step:
    token = attempt_model.set(step.model)
    try:
        with bounded(time.monotonic() + step.timeout), admission(confirm, plan.deadline.ends):
            answer = attempt(step)
    except NotAdmitted:  # refused by the quota; the request was not sent
        return plan.refused(confirm() if confirm is not None else None)
    except Exception as exc:
        return plan.failed(exc)
    else:
        return plan.succeeded(answer)
    finally:
        attempt_model.reset(token)


def prefix_meanwhile(state: CallState) -> Callable[[], None] | None:
    """The redaction of the prompt's prefix for the log line, to run on the
    event loop while it waits for the first attempt's answer instead of in
    the ending: only when the ending would run on the loop anyway (the
    built-in redactor, nothing that blocks), so the loop does no more work
    than before, only earlier. Kept with the settings it was made under: the
    ending makes it again if they changed meanwhile."""
    if not ending_cannot_block(state):
        return None

    def redact() -> None:
        if state.early_prefix is None and not state.ending_taken:
            text, limit, name = state.req.prompt_text, conf.PROMPT_PREFIX_CHARS, conf.REDACTOR
            made = prompt_prefix(text, limit=limit, redactor=redactor())
            state.early_prefix = (made, name, limit)

    return redact


async def arun_plan(
    plan: AttemptPlan,
    attempt: Callable[[Attempt], Awaitable[Any]],
    admit: Callable[[], Awaitable[Any]] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Carry out ``plan`` on the event loop; breaker I/O goes to a thread
    only when it touches a cache that can block, and ``admit``
    (``CallState.aadmit``) sees to its own. ``meanwhile`` runs once the first
    attempt waits for its answer. A cancelled attempt is logged, then
    re-raised."""
    breakers = Breakers()
    step: Step = plan.first()
    try:
        while not isinstance(step, Done):
            if isinstance(step, Admit):
                step = plan.send(None if admit is None else await admit())
            elif not isinstance(step, (BreakerStep, Sleep)):
                if meanwhile is not None:  # (at the loop's next turn: once this one waits)
                    asyncio.get_running_loop().call_soon(meanwhile)
                    meanwhile = None
                token = attempt_model.set(step.model)
                try:
                    step = await _settle(plan, attempt(step), seconds=step.timeout)
                finally:
                    attempt_model.reset(token)
            elif isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                step = plan.send()
            elif breakers.needs_io(step):
                step = plan.send(await off_loop(breakers.perform)(step))
            else:
                step = plan.send(breakers.perform(step))
    except asyncio.CancelledError:
        plan.cancelled()
        raise


async def _settle(plan: AttemptPlan, pending: Awaitable[Any], *, seconds: float) -> Step:
    """Await one attempt for at most ``seconds``, and tell the plan how it went."""
    try:
        async with asyncio.timeout(seconds):
            answer = await pending
    except TimeoutError:
        return plan.failed(AttemptTimedOut(f"no answer within {seconds:.2f}s"))
    except Exception as exc:
        return plan.failed(exc)
    return plan.succeeded(answer)


async def aroute(req: CallRequest) -> Route:
    """The route serving ``req``: from memory when the table is fresh, or
    known while a thread looks again; else read in a thread."""
    if route_table_is_fresh():
        # Even if the second runs out meanwhile: no reload on the loop.
        return serving_route(req.feature, req.canary_key, refresh=False)
    if route_table_is_served_stale():
        look_again_soon()
        return serving_route(req.feature, req.canary_key, refresh=False)
    return await sync_to_async(serving_route)(req.feature, req.canary_key)


def provisional_route(feature: str) -> Route:
    """What an async call cancelled before its route was read is recorded against."""
    return Route(feature=feature, model=conf.DEFAULT_MODEL, fallback_model="")
