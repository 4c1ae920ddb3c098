"""The deadline is hard: hostile upstreams hold no call past DEADLINE + 1 s.

These are correctness bounds, not speed measurements: without the bounded
transport and the async timeout each case below holds a call for tens of
seconds (a per-read timeout never fires on a dribbling upstream).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import django_claude
from django_claude.client import deadline, sdk
from django_claude.models import CallRecord
from django_claude.recording import writer
from django_claude.testing import Fault

PRIMARY, FALLBACK = "claude-sonnet-4-6", "claude-haiku-4-5-20251001"
TIMEOUT, DEADLINE = 0.5, 1.5
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

HOSTILE = {
    "slow first byte": Fault(delay=30),
    "dribbled body": Fault(dribble=0.05),
    "slow headers": Fault(slow_headers=0.4),
    "pings, never a token": Fault(pings=100_000, chunk_delay=0.05),
}


def _call():
    return django_claude.call("Hello", feature="hostile")


def _stream():
    with django_claude.stream("Hello", feature="hostile") as s:
        "".join(s.text_stream)
    return s.result


async def _closing(coro):
    try:
        return await coro
    finally:
        await sync_to_async(connections.close_all)()


async def _acall():
    return await django_claude.acall("Hello", feature="hostile")


async def _astream():
    async with django_claude.astream("Hello", feature="hostile") as s:
        async for _ in s.text_stream:
            pass
    return s.result


ENTRY_POINTS = {
    "call": _call,
    "stream": _stream,
    "acall": lambda: asyncio.run(_closing(_acall())),
    "astream": lambda: asyncio.run(_closing(_astream())),
}


@pytest.fixture
def hostile(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_TIMEOUT = TIMEOUT
    settings.DJANGO_CLAUDE_DEADLINE = DEADLINE
    return fake_anthropic


CASES = [
    (entry, case)
    for entry in sorted(ENTRY_POINTS)
    for case in sorted(HOSTILE)
    if "stream" in entry or not case.startswith("pings")  # pings exist only in streams
]


@pytest.mark.parametrize(("entry", "case"), CASES)
def test_no_upstream_holds_a_call_past_its_deadline(hostile, entry, case):
    hostile.always(PRIMARY, HOSTILE[case])
    hostile.always(FALLBACK, HOSTILE[case])
    started = time.monotonic()
    result = ENTRY_POINTS[entry]()
    elapsed = time.monotonic() - started
    assert writer.flush_pending()
    assert result.outcome == "degraded"
    assert elapsed < DEADLINE + 1.0, f"{entry} on {case!r} took {elapsed:.1f}s"
    record = CallRecord.objects.get(id=result.request_id)
    assert record.outcome == "degraded" and record.attempts >= 1


@pytest.mark.parametrize("entry", ["stream", "astream"])
def test_a_stream_that_stalls_after_its_first_token_ends_interrupted(hostile, entry):
    hostile.always(PRIMARY, Fault(stall_after=1, chunk_delay=0.05))
    started = time.monotonic()
    result = ENTRY_POINTS[entry]()
    elapsed = time.monotonic() - started
    assert writer.flush_pending()
    assert result.outcome == "interrupted" and result.text  # the first token reached the caller
    assert elapsed < TIMEOUT + DEADLINE + 1.0
    record = CallRecord.objects.get(id=result.request_id)
    assert (record.outcome, record.error_type) == ("interrupted", "StreamStalled")


def test_a_stream_may_run_past_the_deadline_while_text_keeps_coming(hostile):
    """The deadline covers the wait for the first token, not a long answer."""
    hostile.reply_text = "word " * 40  # 25 deltas, 0.1 s apart: 2.5 s > DEADLINE
    hostile.always(PRIMARY, Fault(chunk_delay=0.1))
    result = _stream()
    assert result.outcome == "ok" and result.text == hostile.reply_text


def test_the_sync_client_uses_the_bounded_transport(hostile):
    client = sdk.get_client()
    transport = client._client._transport  # the SDK's httpx client
    assert isinstance(transport, deadline.BoundedTransport)
    # httpx builds its pool with a network backend we wrap; if httpx stops
    # doing so, this says it here instead of every hostile case timing out.
    assert isinstance(transport._pool._network_backend, deadline._BoundedBackend)


def test_bounded_ends_socket_work_when_its_time_is_up():
    import httpcore2

    with deadline.bounded(time.monotonic() - 1), pytest.raises(httpcore2.ReadTimeout):
        deadline._cut(5.0, httpcore2.ReadTimeout)
    with deadline.bounded(time.monotonic() + 10):
        assert deadline._cut(None, httpcore2.ReadTimeout) <= 10
        assert deadline._cut(2.0, httpcore2.ReadTimeout) == 2.0
    assert deadline._cut(3.0, httpcore2.ReadTimeout) == 3.0  # outside an attempt: untouched
