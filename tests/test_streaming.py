"""stream(), astream() and acall(): the same guarantees as call()."""

from __future__ import annotations

import asyncio
import gc
import types
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import django_claude
from django_claude import ClaudeUnavailable
from django_claude.models import CallRecord
from django_claude.recording import writer
from django_claude.testing import Fault

PRIMARY, FALLBACK = "claude-sonnet-4-6", "claude-haiku-4-5-20251001"
FULL = "Hello from the fake Claude."
async_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def run_async(coro):
    """Run a coroutine as an ASGI server would, then close its connections."""

    async def wrapper():
        try:
            return await coro
        finally:
            await sync_to_async(connections.close_all)()

    result = asyncio.run(wrapper())
    assert writer.flush_pending()
    return result


def read_all(**kwargs):
    with django_claude.stream("Tell me a story", feature="chat", **kwargs) as s:
        text = "".join(s.text_stream)
    return text, s.result


# -- sync streams ---------------------------------------------------------------------------


def test_stream_yields_text_and_records_once(claude, call_lines):
    text, result = read_all()
    assert text == FULL and result.text == FULL
    assert result.outcome == "ok" and result.model == PRIMARY and result.attempts == 1
    record = CallRecord.objects.get()
    assert record.id == result.request_id and record.outcome == "ok"
    assert record.output_tokens > 0 and record.cost_usd == result.cost_usd > 0
    assert record.upstream_request_id.startswith("req_fake_")
    assert len(call_lines.lines) == 1


def test_streamed_price_equals_unstreamed(claude):
    claude.usage = {
        "input_tokens": 1234,
        "output_tokens": 321,
        "cache_read_input_tokens": 500,
        "ephemeral_5m_input_tokens": 40,
        "ephemeral_1h_input_tokens": 10,
    }
    _, streamed = read_all()
    plain = django_claude.call("Tell me a story", feature="chat")
    assert streamed.cost_usd == plain.cost_usd
    assert streamed.usage == plain.usage


@pytest.mark.parametrize(
    ("script", "n_primary", "n_fallback", "outcome"),
    [
        ([429, Fault()], 2, 0, "ok"),
        ([Fault(error_event="overloaded_error", cut_after=0), Fault()], 2, 0, "ok"),
        ([Fault(cut_after=0), Fault()], 2, 0, "ok"),  # dropped before the first token
        ([Fault(drop=True)] * 4, 4, 1, "fallback"),
        ([404], 1, 1, "fallback"),
    ],
)
def test_faults_before_the_first_token_are_retried(claude, script, n_primary, n_fallback, outcome):
    claude.script(PRIMARY, script)
    text, result = read_all()
    assert text == FULL
    assert result.outcome == outcome
    assert (claude.count(PRIMARY), claude.count(FALLBACK)) == (n_primary, n_fallback)
    assert CallRecord.objects.get().attempts == n_primary + n_fallback


@pytest.mark.parametrize(
    ("fault", "error_type", "status"),
    [
        (Fault(cut_after=2), "StreamCutOff", None),
        (Fault(error_event="overloaded_error", cut_after=2), "APIStatusError", 529),
        (Fault(error_event="api_error", cut_after=1), "APIStatusError", 500),
    ],
)
def test_faults_after_the_first_token_end_interrupted(claude, fault, error_type, status):
    claude.usage = {"input_tokens": 1000}
    claude.script(PRIMARY, [fault])
    text, result = read_all()
    assert FULL.startswith(text) and 0 < len(text) < len(FULL)
    assert result.outcome == "interrupted" and result.text == text
    assert claude.count() == 1  # no retry once the caller has text
    record = CallRecord.objects.get()
    assert (record.outcome, record.error_type, record.error_status) == (
        "interrupted",
        error_type,
        status,
    )
    assert record.input_tokens == 1000 and record.cost_usd > Decimal("0.003")  # priced, not $0


def test_abandoned_stream_is_recorded_and_priced(claude):
    claude.usage = {"input_tokens": 2000}
    claude.script(PRIMARY, [Fault(chunk_delay=0.01)])
    with django_claude.stream("hi", feature="chat") as s:
        for _ in s.text_stream:
            break  # the client went away
    record = CallRecord.objects.get()
    assert record.outcome == "interrupted" and record.error_type == "Abandoned"
    assert record.cost_usd >= Decimal("0.006")  # 2000 input tokens at $3/MTok, at least
    assert s.result.outcome == "interrupted"


def test_exception_in_the_block_is_recorded_and_propagates(claude):
    with pytest.raises(RuntimeError), django_claude.stream("hi", feature="chat") as s:
        next(iter(s.text_stream))
        raise RuntimeError("template blew up")
    record = CallRecord.objects.get()
    assert record.outcome == "interrupted" and record.error_type == "RuntimeError"


def test_stream_degrades_to_the_message(claude):
    claude.always(PRIMARY, 529)
    claude.always(FALLBACK, 529)
    text, result = read_all()
    assert text == "Sorry, that didn't work. Please try again."
    assert result.outcome == "degraded"
    assert CallRecord.objects.get().outcome == "degraded"


def test_stream_raise_on_failure_and_caller_errors(claude, settings):
    import anthropic

    claude.script(PRIMARY, [400])
    with pytest.raises(anthropic.BadRequestError), django_claude.stream("hi", feature="chat"):
        pass
    assert CallRecord.objects.get().outcome == "error"
    settings.DJANGO_CLAUDE_RAISE_ON_FAILURE = True
    claude.always(PRIMARY, 529)
    claude.always(FALLBACK, 529)
    with pytest.raises(ClaudeUnavailable), django_claude.stream("hi", feature="chat"):
        pass
    assert CallRecord.objects.filter(outcome="degraded").count() == 1


def test_stream_refuses_cache_arguments(claude):
    with pytest.raises(TypeError):
        django_claude.stream("hi", feature="chat", cache_ttl=10)


# -- async -------------------------------------------------------------------------------------


@async_db
def test_acall_matches_call(fake_anthropic):
    fake_anthropic.script(PRIMARY, [529, Fault()])
    result = run_async(django_claude.acall("hi", feature="async"))
    assert result.outcome == "ok" and result.attempts == 2 and result.text == FULL
    record = CallRecord.objects.get()
    assert record.id == result.request_id and record.cost_usd == result.cost_usd


@async_db
def test_acall_fallback_degraded_and_caller_error(fake_anthropic):
    import anthropic

    fake_anthropic.script(PRIMARY, [404])
    assert run_async(django_claude.acall("hi", feature="a")).outcome == "fallback"
    fake_anthropic.always(PRIMARY, 500)
    fake_anthropic.always(FALLBACK, 500)
    assert run_async(django_claude.acall("hi", feature="a")).outcome == "degraded"
    fake_anthropic.script(PRIMARY, [])
    fake_anthropic.always(PRIMARY, 422)
    with pytest.raises(anthropic.UnprocessableEntityError):
        run_async(django_claude.acall("hi", feature="a"))
    assert sorted(CallRecord.objects.values_list("outcome", flat=True)) == [
        "degraded",
        "error",
        "fallback",
    ]


@async_db
def test_cancelled_acall_still_leaves_its_record(fake_anthropic):
    fake_anthropic.script(PRIMARY, [Fault(delay=2)])

    async def cancel_soon():
        task = asyncio.create_task(django_claude.acall("hi", feature="cancelled"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(cancel_soon())
    record = CallRecord.objects.get()
    assert record.outcome == "interrupted" and record.error_type == "CancelledError"
    assert record.attempts == 1


@async_db
def test_many_acalls_on_one_loop_each_recorded_once(fake_anthropic):
    fake_anthropic.script(PRIMARY, [Fault(delay=0.2)] * 20)

    async def burst():
        return await asyncio.gather(
            *(django_claude.acall(f"q{i}", feature="burst") for i in range(20))
        )

    results = run_async(burst())
    assert len({r.request_id for r in results}) == 20
    assert CallRecord.objects.filter(feature="burst").count() == 20
    assert fake_anthropic.count() == 20


@async_db
def test_acall_never_blocks_the_event_loop(fake_anthropic):
    """A ticker keeps running while calls wait on a slow upstream."""
    fake_anthropic.script(PRIMARY, [Fault(delay=0.5), Fault(delay=0.5)])

    async def scenario():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        await asyncio.gather(
            django_claude.acall("a", feature="loop"), django_claude.acall("b", feature="loop")
        )
        done.set()
        await tick_task
        return ticks

    assert run_async(scenario()) >= 20  # the loop was free for most of the wait


@async_db
def test_astream_and_faults(fake_anthropic):
    fake_anthropic.script(PRIMARY, [529, Fault(), Fault(cut_after=1)])

    async def scenario():
        out = []
        for _ in range(2):
            async with django_claude.astream("hi", feature="astream") as s:
                text = "".join([t async for t in s.text_stream])
            out.append((text, s.result))
        return out

    (full, first), (partial, second) = run_async(scenario())
    assert full == FULL and first.outcome == "ok" and first.attempts == 2
    assert CallRecord.objects.get(id=first.request_id).upstream_request_id.startswith("req_fake_")
    assert partial == "Hello fr" and second.outcome == "interrupted"
    outcomes = sorted(CallRecord.objects.values_list("outcome", "error_type"))
    assert outcomes == [("interrupted", "StreamCutOff"), ("ok", "")]


@async_db
def test_cancelled_astream_is_recorded(fake_anthropic):
    fake_anthropic.usage = {"input_tokens": 500}
    fake_anthropic.script(PRIMARY, [Fault(chunk_delay=0.2)])

    async def reader():
        async with django_claude.astream("hi", feature="gone") as s:
            async for _ in s.text_stream:
                pass

    async def scenario():
        task = asyncio.create_task(reader())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(scenario())
    record = CallRecord.objects.get()
    assert record.outcome == "interrupted" and record.error_type == "CancelledError"
    assert record.input_tokens == 500 and record.cost_usd > 0


def test_stream_failures_are_recorded_like_calls(claude, caplog, settings):
    import logging

    claude.script(PRIMARY, [401])
    with caplog.at_level(logging.INFO):
        text, result = read_all()
    assert result.outcome == "degraded" and claude.count() == 1  # no retry, no fallback
    record = CallRecord.objects.get()
    assert (record.error_type, record.error_status) == ("AuthenticationError", 401)
    line = [r for r in caplog.records if r.name == "django_claude.calls"][0]
    assert line.levelno == logging.ERROR  # as call() logs a refused key
    settings.DJANGO_CLAUDE_TIMEOUT = 2.0
    settings.DJANGO_CLAUDE_DEADLINE = 0.01  # no attempt can start
    _, result = read_all()
    assert CallRecord.objects.get(id=result.request_id).error_type == "DeadlineExceeded"


def _suspended_sdk_generators() -> list[str]:
    """Async generators of the SDK or httpx started and left unfinished: the
    garbage collector would close them, perhaps in another thread."""
    return [
        o.__qualname__
        for o in gc.get_objects()
        if isinstance(o, types.AsyncGeneratorType)
        and o.ag_frame is not None
        and o.ag_frame.f_lasti > 0
        and not o.ag_running
        and ("anthropic" in o.ag_code.co_filename or "httpx" in o.ag_code.co_filename)
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_finished_astream_leaves_no_generator_to_the_garbage_collector(fake_anthropic):
    async def one() -> list[str]:
        gc.collect()
        gc.disable()
        try:
            async with django_claude.astream("Tell me", feature="gen") as s:
                async for _ in s.text_stream:
                    pass
            assert s.result is not None and s.result.outcome == "ok"
            return _suspended_sdk_generators()
        finally:
            gc.enable()
            await sync_to_async(connections.close_all)()

    assert asyncio.run(one()) == []
