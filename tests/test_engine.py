"""The attempt engine: the plan alone (no I/O), then the four entry points driving it."""

from __future__ import annotations

import asyncio
import random

import anthropic
import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import django_claude
from django_claude.client.engine import (
    Attempt,
    AttemptPlan,
    BreakerEvent,
    BreakerStep,
    Deadline,
    Done,
    Policy,
    Sleep,
)
from django_claude.client.errors import ErrorKind
from django_claude.models import CallRecord
from django_claude.recording import writer
from django_claude.testing import Fault

POLICY = Policy(timeout=5.0, max_attempts=3, fallback_attempts=2, backoff_base=1.0, backoff_max=8.0)


def status_error(status: int) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://fake/v1/messages")
    response = httpx2.Response(status, request=request, json={"error": {"type": "x"}})
    return anthropic.APIStatusError("boom", response=response, body=None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plan(*, seconds: float = 60.0, fallback: str = "fb", clock: Clock | None = None) -> AttemptPlan:
    return AttemptPlan(
        model="primary",
        fallback_model=fallback,
        deadline=Deadline(seconds, clock=clock or Clock()),
        policy=POLICY,
        rng=random.Random(7),
    )


def drive(p: AttemptPlan, outcomes: list[object], *, breaker_open: frozenset[str] = frozenset()):
    """Play ``outcomes`` (an answer, or an exception to raise) to the plan; the trace of steps."""
    trace: list[object] = []
    step = p.first()
    pending = list(outcomes)
    while not isinstance(step, Done):
        trace.append(step)
        if isinstance(step, BreakerStep) and step.event is BreakerEvent.ALLOW:
            step = p.send(step.model not in breaker_open)
        elif isinstance(step, (BreakerStep, Sleep)):
            step = p.send()
        else:
            outcome = pending.pop(0)
            step = p.failed(outcome) if isinstance(outcome, BaseException) else p.succeeded(outcome)
    return trace


def attempts(trace):
    return [step.model for step in trace if isinstance(step, Attempt)]


def test_first_answer_ends_the_plan_and_tells_the_breaker():
    p = plan()
    trace = drive(p, ["answer"])
    assert attempts(trace) == ["primary"]
    assert trace[-1] == BreakerStep("primary", BreakerEvent.SUCCEEDED)
    assert p.answer == "answer" and p.runs[0].log[0]["status"] == 200


def test_transient_failures_back_off_then_fall_back():
    p = plan()
    trace = drive(p, [status_error(529)] * 3 + ["from the fallback"])
    assert attempts(trace) == ["primary"] * 3 + ["fb"]
    assert sum(isinstance(step, Sleep) for step in trace) == 2  # between the primary's attempts
    failures = [s for s in trace if isinstance(s, BreakerStep) and s.event is BreakerEvent.FAILED]
    assert len(failures) == 3
    assert p.answer == "from the fallback" and len(p.runs) == 2


def test_a_model_error_goes_straight_to_the_fallback_without_tripping_the_breaker():
    p = plan()
    trace = drive(p, [status_error(404), "ok"])
    assert attempts(trace) == ["primary", "fb"]
    assert not any(isinstance(s, Sleep) for s in trace)
    assert BreakerStep("primary", BreakerEvent.FAILED) not in trace


def test_a_caller_error_is_final():
    p = plan()
    trace = drive(p, [status_error(400)])
    assert attempts(trace) == ["primary"]
    assert p.answer is None and p.failed_run is not None
    assert p.failed_run.kind is ErrorKind.CALLER


def test_an_open_breaker_skips_the_model():
    p = plan()
    trace = drive(p, ["ok"], breaker_open=frozenset({"primary"}))
    assert attempts(trace) == ["fb"]
    assert p.runs[0].skipped == "breaker_open"


def test_no_fallback_configured_means_done_after_the_primary():
    p = plan(fallback="")
    drive(p, [status_error(500)] * 3)
    assert [run.model for run in p.runs] == ["primary"] and p.answer is None


def test_the_deadline_bounds_every_attempt_and_stops_retries():
    clock = Clock()
    p = plan(seconds=2.0, clock=clock)
    step = p.first()
    step = p.send(True)
    assert isinstance(step, Attempt) and step.timeout == 2.0  # cut to what is left
    clock.now = 1.99
    step = p.failed(status_error(503))
    assert step == BreakerStep("primary", BreakerEvent.FAILED)
    step = p.send()  # no time for a backoff and another attempt: the fallback is asked
    assert step == BreakerStep("fb", BreakerEvent.ALLOW)
    assert isinstance(p.send(True), Done)  # and gets no attempt either
    assert p.runs[1].skipped == "deadline"


def test_retry_after_longer_than_the_deadline_is_not_waited_for():
    request = httpx2.Request("POST", "http://fake/v1/messages")
    response = httpx2.Response(429, request=request, headers={"retry-after": "3600"}, json={})
    limited = anthropic.RateLimitError("slow down", response=response, body=None)
    p = plan()
    trace = drive(p, [limited, "ok"])
    assert attempts(trace) == ["primary", "fb"]


def test_send_after_an_attempt_is_a_protocol_error():
    p = plan()
    p.first()
    p.send(True)
    with pytest.raises(RuntimeError):
        p.send()


# -- the four entry points drive the one engine alike ----------------------------------------

PRIMARY, FALLBACK = "claude-sonnet-4-6", "claude-haiku-4-5-20251001"


def _call(**kwargs):
    return django_claude.call("Hello", feature="engine", **kwargs)


def _stream(**kwargs):
    with django_claude.stream("Hello", feature="engine", **kwargs) as s:
        "".join(s.text_stream)
    return s.result


async def _acall(**kwargs):
    try:
        return await django_claude.acall("Hello", feature="engine", **kwargs)
    finally:
        await sync_to_async(connections.close_all)()


async def _astream(**kwargs):
    try:
        async with django_claude.astream("Hello", feature="engine", **kwargs) as s:
            async for _ in s.text_stream:
                pass
        return s.result
    finally:
        await sync_to_async(connections.close_all)()


ENTRY_POINTS = {
    "call": _call,
    "stream": _stream,
    "acall": lambda **kw: asyncio.run(_acall(**kw)),
    "astream": lambda **kw: asyncio.run(_astream(**kw)),
}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("primary", "fallback", "outcome", "attempts", "error_type"),
    [
        ([529, 529, 529, 529], ["ok"], "fallback", 5, ""),
        ([404], ["ok"], "fallback", 2, ""),
        ([529, 529, 529, 529], [529, 529], "degraded", 6, "OverloadedError"),
        ([401], [], "degraded", 1, "AuthenticationError"),
    ],
)
def test_every_entry_point_ends_the_same_way(
    fake_anthropic, entry, primary, fallback, outcome, attempts, error_type
):
    fake_anthropic.script(PRIMARY, [Fault() if f == "ok" else Fault(status=f) for f in primary])
    fake_anthropic.script(FALLBACK, [Fault() if f == "ok" else Fault(status=f) for f in fallback])
    result = ENTRY_POINTS[entry]()
    assert writer.flush_pending()
    assert result.outcome == outcome
    assert result.attempts == attempts
    record = CallRecord.objects.get(id=result.request_id)
    assert (record.outcome, record.attempts, record.error_type) == (outcome, attempts, error_type)
    assert len(record.attempt_log) == attempts


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_deadline_that_leaves_no_attempt_is_recorded_as_such(fake_anthropic, settings, entry):
    """Once recorded as BreakerOpen by the streams: every entry point says DeadlineExceeded."""
    settings.DJANGO_CLAUDE_DEADLINE = 0.01
    result = ENTRY_POINTS[entry]()
    assert writer.flush_pending()
    assert result.outcome == "degraded" and result.attempts == 0
    assert CallRecord.objects.get(id=result.request_id).error_type == "DeadlineExceeded"
    assert fake_anthropic.count() == 0


def test_ok_means_a_whole_answer():
    import uuid

    from django_claude.types import ClaudeResult, Outcome

    def result(outcome: Outcome) -> ClaudeResult:
        return ClaudeResult("t", outcome, "m", 1, uuid.uuid4(), None)

    assert [o for o in Outcome if result(o).ok] == [Outcome.OK, Outcome.FALLBACK, Outcome.CACHED]
    assert not result(Outcome.INTERRUPTED).ok and result(Outcome.DEGRADED).degraded
