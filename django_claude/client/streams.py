"""``stream`` and ``astream``: answers as they are written, with every guarantee.

Until the first token reaches the caller, a stream is an ordinary call:
timeouts, the deadline, retries, the breaker and the fallback all apply, and
if nothing answers the stream yields the degraded message (or raises
``ClaudeUnavailable``). After the first token a failure cannot be hidden: the
stream ends, and its record says ``outcome="interrupted"`` with the usage seen
so far priced and the error kept. A stream the caller abandons, or whose
connection drops before ``message_stop`` (the SDK ends quietly then), is
recorded the same way. The record and the log line are written when the
``with`` block ends, whatever happened inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from django_claude.client.calls import (
    ModelRun,
    _Call,
    _off_loop,
    _sdk_call,
    attempt_failed,
    attempt_succeeded,
    gate,
    prepare_from,
)
from django_claude.client.errors import (
    CircuitBreaker,
    StreamCutOff,
    error_status,
    error_type,
)
from django_claude.client.sdk import get_async_client, get_client
from django_claude.conf import conf
from django_claude.recording import facts as records
from django_claude.recording import sampling
from django_claude.recording.pricing import Usage
from django_claude.routing import active_route, route_table_is_fresh
from django_claude.types import ClaudeResult


@dataclass
class _StreamState:
    """What the sync and async streams share: the call, the text, the end."""

    call: _Call
    parts: list[str] = field(default_factory=list)
    first_token: str | None = None
    snapshot: Any = None  # the SDK's message snapshot, for usage so far
    model: str = ""
    upstream_id: str = ""  # Anthropic's request-id of the stream that answered
    saw_stop: bool = False
    error: BaseException | None = None  # after the first token
    degraded: bool = False
    caller_error: BaseException | None = None
    result: ClaudeResult | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def take(self, event: Any) -> str | None:
        """Note one SDK event; return its text, if it carries some."""
        kind = getattr(event, "type", "")
        if kind == "message_stop":
            self.saw_stop = True
        elif kind == "content_block_delta":
            delta: Any = getattr(event, "delta", None)
            if getattr(delta, "type", "") == "text_delta":
                return str(delta.text)
        return None

    def usage(self) -> Usage:
        usage = Usage.from_api(getattr(self.snapshot, "usage", None))
        if not self.saw_stop and self.parts:
            # No final usage: never fewer output tokens than the text we saw.
            estimate = math.ceil(len(self.text) / 4)
            if estimate > usage.output_tokens:
                usage = Usage(**{**usage.as_dict(), "output_tokens": estimate})
        return usage

    def finish(
        self, *, exit_error: BaseException | None, abandoned: bool, background: bool = False
    ) -> ClaudeResult:
        """Write the record and the line; build ``result``. Blocking (DB) unless
        ``background`` hands the row to the writer thread."""
        call = self.call
        if self.degraded:
            assert self.result is not None  # recorded when the last attempt failed
            return self.result
        facts = call.facts()
        usage = self.usage()
        facts.model = self.model
        facts.upstream_request_id = self.upstream_id or facts.upstream_request_id
        facts.usage = usage
        facts.stop_reason = str(getattr(self.snapshot, "stop_reason", None) or "")
        complete = self.saw_stop and self.error is None and exit_error is None and not abandoned
        after_write = None
        if complete:
            facts.outcome = "fallback" if len(call.runs) > 1 else "ok"
            if sampling.should_sample(call.req.feature, call.smell_test) and sampling.stash(
                facts.request_id, prompt=call.req.prompt_text, answer=self.text
            ):
                facts.smell_verdict = "pending"
                after_write = sampling.judge_after_write(facts.request_id)
        else:
            facts.outcome = "interrupted"
            problem = self.error or exit_error
            if problem is not None:
                facts.error_type = error_type(problem)
                facts.error_status = error_status(problem)
            elif abandoned:
                facts.error_type = "Abandoned"
            else:
                facts.error_type = "StreamCutOff"
        _, cost = records.finish(facts, after_write=after_write, background=background)
        self.result = ClaudeResult(
            text=self.text,
            outcome=facts.outcome,
            model=facts.model,
            attempts=facts.attempts,
            request_id=facts.request_id,
            cost_usd=cost,
            usage=usage.as_dict(),
            message=self.snapshot if complete else None,
            stop_reason=facts.stop_reason,
        )
        return self.result


def _stream_request(prompt: str | None, kwargs: dict[str, Any]) -> tuple[Any, bool | None]:
    smell_test = kwargs.pop("smell_test", None)
    return prepare_from(prompt, kwargs), smell_test


class ClaudeStream:
    """``with stream(...) as s: for text in s.text_stream: ...``; then ``s.result``."""

    def __init__(self, prompt: str | None, **kwargs: Any) -> None:
        if "cache_ttl" in kwargs or "idempotency_key" in kwargs:
            raise TypeError("stream() does not take cache_ttl or idempotency_key")
        req, smell_test = _stream_request(prompt, kwargs)
        self._state = _StreamState(
            call=_Call(req=req, route=active_route(req.feature), smell_test=smell_test)
        )
        self._manager: Any = None
        self._stream: Any = None
        self._events: Iterator[Any] | None = None
        self._consumed = False
        self._exhausted = False  # the events ran out (with or without message_stop)

    @property
    def result(self) -> ClaudeResult | None:
        """The call's ``ClaudeResult`` once the ``with`` block has ended."""
        return self._state.result

    def __enter__(self) -> ClaudeStream:
        state = self._state
        client = get_client()
        for model, max_attempts in state.call.models_to_try():
            run = ModelRun(model=model)
            state.call.runs.append(run)
            breaker = CircuitBreaker(model)
            while (timeout := gate(run, breaker, state.call.deadline)) is not None:
                started = time.monotonic()
                state.model = model
                try:
                    self._connect(client, model, timeout)
                except Exception as exc:
                    self._close()
                    decision = attempt_failed(
                        run,
                        exc,
                        started=started,
                        breaker=breaker,
                        deadline=state.call.deadline,
                        max_attempts=max_attempts,
                    )
                    if not decision.retry:
                        break
                    time.sleep(decision.delay)
                    continue
                attempt_succeeded(run, started=started, breaker=breaker)
                return self
        state.degraded = True
        state.result = state.call.conclude_failure()  # raises a caller error
        return self

    def _connect(self, client: Any, model: str, timeout: float) -> None:
        """Open the stream and read up to its first token (or its end)."""
        state = self._state
        params = self._state.call.req.params
        self._manager = _sdk_call(client.messages.stream, model=model, timeout=timeout, **params)
        stream = self._stream = self._manager.__enter__()
        state.upstream_id = stream.request_id or ""
        self._events = iter(stream)
        state.snapshot = None
        for event in self._events:
            state.snapshot = stream.current_message_snapshot
            text = state.take(event)
            if text:
                state.first_token = text
                return
            if state.saw_stop:
                return  # an answer with no text (a tool call, an empty reply)
        raise StreamCutOff("the stream ended before its first token")

    @property
    def text_stream(self) -> Iterator[str]:
        """The answer's text as it arrives (the degraded message if none came)."""
        state = self._state
        if self._consumed:
            return
        self._consumed = True
        if state.degraded:
            yield conf.DEGRADED_MESSAGE
            return
        if state.first_token:
            state.parts.append(state.first_token)
            yield state.first_token
        if self._events is None or state.saw_stop:
            self._exhausted = True
            return
        try:
            for event in self._events:
                state.snapshot = self._stream.current_message_snapshot
                text = state.take(event)
                if text:
                    state.parts.append(text)
                    yield text
        except Exception as exc:  # after the first token nothing can be retried
            state.error = exc
        self._exhausted = True

    def _close(self) -> None:
        if self._manager is not None:
            with contextlib.suppress(Exception):
                self._manager.__exit__(None, None, None)
            self._manager = None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        state = self._state
        # Left before the events ran out: the caller stopped reading.
        abandoned = not state.degraded and not state.saw_stop and not self._exhausted
        self._close()
        state.finish(exit_error=exc, abandoned=abandoned and exc is None)


class AsyncClaudeStream:
    """``async with astream(...) as s: async for text in s.text_stream: ...``."""

    def __init__(self, prompt: str | None, **kwargs: Any) -> None:
        if "cache_ttl" in kwargs or "idempotency_key" in kwargs:
            raise TypeError("astream() does not take cache_ttl or idempotency_key")
        self._req, self._smell_test = _stream_request(prompt, kwargs)
        self._state: _StreamState | None = None
        self._manager: Any = None
        self._stream: Any = None
        self._events: AsyncIterator[Any] | None = None
        self._consumed = False
        self._exhausted = False

    @property
    def result(self) -> ClaudeResult | None:
        return self._state.result if self._state else None

    async def __aenter__(self) -> AsyncClaudeStream:
        from django_claude.client.calls import _cancelled_route

        state = self._state = _StreamState(
            call=_Call(
                req=self._req,
                route=_cancelled_route(self._req.feature),
                smell_test=self._smell_test,
            )
        )
        try:
            return await self._open(state)
        except asyncio.CancelledError as exc:
            # The client went away while we connected: nothing may be awaited
            # for long now; the line is written here, the row in the background.
            with contextlib.suppress(BaseException):
                await self._close()
            state.call.runs = state.call.runs or [ModelRun(model=state.call.route.model)]
            state.finish(exit_error=exc, abandoned=False, background=True)
            raise

    async def _open(self, state: _StreamState) -> AsyncClaudeStream:
        if route_table_is_fresh():
            state.call.use_route(active_route(self._req.feature))  # from memory
        else:
            state.call.use_route(await sync_to_async(active_route)(self._req.feature))
        client = get_async_client()
        for model, max_attempts in state.call.models_to_try():
            run = ModelRun(model=model)
            state.call.runs.append(run)
            breaker = CircuitBreaker(model)
            while (timeout := await _off_loop(gate)(run, breaker, state.call.deadline)) is not None:
                started = time.monotonic()
                state.model = model  # tokens may be spent before the first one arrives
                try:
                    await self._connect(client, model, timeout)
                except Exception as exc:
                    await self._close()
                    decision = await _off_loop(attempt_failed)(
                        run,
                        exc,
                        started=started,
                        breaker=breaker,
                        deadline=state.call.deadline,
                        max_attempts=max_attempts,
                    )
                    if not decision.retry:
                        break
                    await asyncio.sleep(decision.delay)
                    continue
                if breaker.has_state_to_clear:
                    await _off_loop(attempt_succeeded)(run, started=started, breaker=breaker)
                else:
                    attempt_succeeded(run, started=started, breaker=breaker)
                return self
        state.degraded = True
        state.result = await sync_to_async(state.call.conclude_failure)()
        return self

    async def _connect(self, client: Any, model: str, timeout: float) -> None:
        state = self._state
        assert state is not None
        self._manager = _sdk_call(
            client.messages.stream, model=model, timeout=timeout, **state.call.req.params
        )
        self._stream = await self._manager.__aenter__()
        state.upstream_id = self._stream.request_id or ""
        self._events = self._stream.__aiter__()
        async for event in self._events:
            state.snapshot = self._stream.current_message_snapshot
            text = state.take(event)
            if text:
                state.first_token = text
                return
            if state.saw_stop:
                return
        raise StreamCutOff("the stream ended before its first token")

    @property
    def text_stream(self) -> AsyncIterator[str]:
        return self._text()

    async def _text(self) -> AsyncIterator[str]:
        state = self._state
        if state is None or self._consumed:
            return
        self._consumed = True
        if state.degraded:
            yield conf.DEGRADED_MESSAGE
            return
        if state.first_token:
            state.parts.append(state.first_token)
            yield state.first_token
        if self._events is None or state.saw_stop:
            self._exhausted = True
            return
        try:
            async for event in self._events:
                state.snapshot = self._stream.current_message_snapshot
                text = state.take(event)
                if text:
                    state.parts.append(text)
                    yield text
        except Exception as exc:
            state.error = exc
        self._exhausted = True

    async def _close(self) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            with contextlib.suppress(Exception):
                await manager.__aexit__(None, None, None)

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        state = self._state
        if state is None:
            return
        abandoned = not state.degraded and not state.saw_stop and not self._exhausted
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled (the client went away): nothing may be awaited now; the
            # line is written here and the row by the background writer.
            with contextlib.suppress(BaseException):
                await self._close()
            state.finish(exit_error=exc, abandoned=False, background=True)
            return
        await self._close()
        await sync_to_async(state.finish)(exit_error=exc, abandoned=abandoned and exc is None)


def stream(prompt: str | None = None, **kwargs: Any) -> ClaudeStream:
    """Stream an answer: ``with stream(prompt, feature="chat") as s:``.

    Takes ``call``'s arguments (not ``cache_ttl`` or ``idempotency_key``).
    ``s.text_stream`` yields text as it arrives; ``s.result`` is the
    ``ClaudeResult`` once the block ends (``outcome`` ``"interrupted"`` when the
    stream was cut off, failed after its first token, or was abandoned).
    """
    return ClaudeStream(prompt, **kwargs)


def astream(prompt: str | None = None, **kwargs: Any) -> AsyncClaudeStream:
    """The async twin of ``stream``: ``async with astream(...) as s:``."""
    return AsyncClaudeStream(prompt, **kwargs)
