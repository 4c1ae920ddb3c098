"""``stream`` and ``astream``: answers as they are written, with every guarantee.

Until the first token reaches the caller, a stream is an ordinary call: its
attempt (open the stream, read to the first token) is driven by the same
engine as ``call``, so timeouts, the deadline, retries, the breaker and the
fallback all apply, and if nothing answers the stream yields the degraded
message (or raises ``ClaudeUnavailable``). After the first token a failure
cannot be hidden: the stream ends, and its record says
``outcome="interrupted"`` with the usage seen so far priced and the error
kept. A stream the caller abandons, or whose connection drops before
``message_stop`` (the SDK ends quietly then), is recorded the same way. The
record and the log line are written when the ``with`` block ends, whatever
happened inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2

from django_claude.client import outcome
from django_claude.client.deadline import bounded
from django_claude.client.drivers import (
    aroute,
    arun_plan,
    ending_cannot_block,
    prefix_meanwhile,
    provisional_route,
    recording_off_loop,
    run_plan,
)
from django_claude.client.engine import Attempt
from django_claude.client.errors import StreamCutOff, StreamStalled
from django_claude.client.request import prepare_from
from django_claude.client.sdk import get_async_client, get_client, sdk_request
from django_claude.client.stalls import StallWatch
from django_claude.client.state import CallState
from django_claude.conf import conf
from django_claude.recording.pricing import Usage, requested_cache_ttl
from django_claude.routing import serving_route
from django_claude.types import ClaudeResult


@dataclass
class StreamSession:
    """What the sync and async streams share: the call, the text so far, the end."""

    call: CallState
    parts: list[str] = field(default_factory=list)
    handed: int = 0  # parts already given to the caller
    snapshot: Any = None  # the SDK's message snapshot, for usage so far
    model: str = ""
    upstream: Any = None  # the SDK stream that answered (it carries Anthropic's request id)
    saw_stop: bool = False
    last_text_at: float = 0.0
    ended: bool = False  # the events ran out (with or without message_stop)
    error: BaseException | None = None  # after the first token
    degraded: bool = False
    result: ClaudeResult | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def opened(self, step: Attempt, sdk_stream: Any) -> None:
        """A new connection on ``step.model``: forget what an earlier one said."""
        self.model, self.upstream, self.snapshot = step.model, sdk_stream, None
        self.parts.clear()
        self.saw_stop = False

    def take(self, event: Any) -> str | None:
        """Note one SDK event; return its text, if it carries some."""
        self.snapshot = self.upstream.current_message_snapshot
        kind = getattr(event, "type", "")
        if kind == "message_stop":
            self.saw_stop = True
        elif kind == "content_block_delta":
            delta: Any = getattr(event, "delta", None)
            if getattr(delta, "type", "") == "text_delta":
                self.parts.append(str(delta.text))
                self.last_text_at = time.monotonic()
                return self.parts[-1]
        return None

    def live(self, event: Any) -> list[str]:
        """An event read while the caller iterates: its text, handed over at once."""
        text = self.take(event)
        if not text:
            return []
        self.handed += 1
        return [text]

    def stopped(self, exc: Exception) -> None:
        """The events ran out, or failed after the first token (nothing is retried then)."""
        self.ended = True
        if isinstance(exc, (TimeoutError, httpx2.TimeoutException)):
            self.error = StreamStalled(f"no text for {conf.TIMEOUT:g}s")
        elif not isinstance(exc, (StopIteration, StopAsyncIteration)):
            self.error = exc

    def quiet_until(self) -> float:
        """When a stream that has begun counts as stalled: ``TIMEOUT`` after its last text."""
        return self.last_text_at + conf.TIMEOUT

    def connected(self) -> bool:
        """Has the stream reached its first token (or its end)? Else it is cut off."""
        return bool(self.parts) or self.saw_stop

    def unhanded(self) -> list[str]:
        """The text read while connecting, once; then what follows streams live."""
        if self.degraded:  # or limited: the ending's text
            return [self.result.text if self.result is not None else conf.DEGRADED_MESSAGE]
        parts, self.handed = self.parts[self.handed :], len(self.parts)
        return parts

    @property
    def more(self) -> bool:
        return not (self.degraded or self.saw_stop or self.ended)

    @property
    def answered_by(self) -> str:
        """The model that answered, as its ``message_start`` named it (a dated
        snapshot for an alias, as ``call`` records), else the one asked."""
        named = getattr(self.snapshot, "model", None)
        return named if isinstance(named, str) and named else self.model

    def usage(self) -> Usage:
        usage = Usage.from_message(
            self.snapshot,
            late_write_ttl=lambda: requested_cache_ttl(self.call.req.params),
        )
        if not self.saw_stop and self.parts:
            # No final usage: never fewer output tokens than the text we saw.
            estimate = math.ceil(len(self.text) / 4)
            if estimate > usage.output_tokens:
                usage = dataclasses.replace(usage, output_tokens=estimate)
        return usage

    def finish(self, *, exit_error: BaseException | None, background: bool = False) -> None:
        """Record the stream and set ``result``. Blocking (DB) unless
        ``background`` hands the row to the writer thread. Whatever happens,
        its quotas hold nothing after."""
        try:
            self._finish(exit_error=exit_error, background=background)
        finally:
            self.call.release()

    def _finish(self, *, exit_error: BaseException | None, background: bool) -> None:
        if self.degraded or self.result is not None:
            return  # a degraded stream was recorded when its last attempt failed
        if isinstance(exit_error, asyncio.CancelledError) and not self.parts:
            outcome.cancelled(
                self.call, usage=self.usage() if self.snapshot else None, model=self.answered_by
            )
            return
        abandoned = not self.saw_stop and not self.ended
        interrupted: str | BaseException | None = self.error or exit_error
        if interrupted is None and abandoned:
            interrupted = "Abandoned"
        elif interrupted is None and not self.saw_stop:
            interrupted = StreamCutOff.__name__
        self.result = outcome.answered(
            self.call,
            text=self.text,
            message=self.snapshot,
            model=self.answered_by,
            upstream=self.upstream,
            usage=self.usage(),
            interrupted=interrupted,
            background=background,
        )


def _session(prompt: str | None, kwargs: dict[str, Any], *, route: Any = None) -> StreamSession:
    if "cache_ttl" in kwargs or "idempotency_key" in kwargs:
        raise TypeError("a stream does not take cache_ttl or idempotency_key")
    req = prepare_from(prompt, kwargs)
    return StreamSession(call=CallState(req=req, route=route or provisional_route(req.feature)))


class ClaudeStream:
    """``with stream(...) as s: for text in s.text_stream: ...``; then ``s.result``."""

    def __init__(self, prompt: str | None, **kwargs: Any) -> None:
        self._session = _session(prompt, kwargs)
        req = self._session.call.req
        self._session.call.route = serving_route(req.feature, req.canary_key)
        self._manager: Any = None
        self._events: Iterator[Any] = iter(())

    @property
    def result(self) -> ClaudeResult | None:
        """The call's ``ClaudeResult`` once the ``with`` block has ended."""
        return self._session.result

    def __enter__(self) -> ClaudeStream:
        session = self._session
        try:
            with session.call.span.current():
                run_plan(
                    session.call.start(), self._connect, session.call.admit, session.call.confirm
                )
        except BaseException:  # SystemExit, KeyboardInterrupt: no __exit__ will run
            session.call.release()
            raise
        if session.call.plan is None or session.call.plan.answer is None:
            session.degraded = True
            session.result = outcome.failed(session.call)  # raises a caller error
        return self

    def _connect(self, step: Attempt) -> bool:
        """One attempt: open the stream and read up to its first token (or its end)."""
        session = self._session
        params = session.call.req.params
        try:
            self._manager = sdk_request(
                get_client(quiet=session.call.span.quiet).messages.stream,
                model=step.model,
                timeout=step.timeout,
                **params,
            )
            session.opened(step, self._manager.__enter__())
            self._events = iter(session.upstream)
            for event in self._events:
                session.take(event)
                if session.connected():
                    return True
            raise StreamCutOff("the stream ended before its first token")
        except BaseException:
            self._close()
            raise

    @property
    def text_stream(self) -> Iterator[str]:
        """The answer's text as it arrives (the degraded message if none came)."""
        session = self._session
        yield from session.unhanded()
        while session.more:
            try:
                with bounded(session.quiet_until()):
                    texts = session.live(next(self._events))
            except Exception as exc:  # the end (StopIteration), or a failure after the first token
                session.stopped(exc)
            else:
                yield from texts

    def _close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                manager.__exit__(None, None, None)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._close()
        self._session.finish(exit_error=exc)


DRAIN_AFTER_STOP = 0.25  # seconds to read a body's end after message_stop


class AsyncClaudeStream:
    """``async with astream(...) as s: async for text in s.text_stream: ...``."""

    def __init__(self, prompt: str | None, **kwargs: Any) -> None:
        self._session = _session(prompt, kwargs)
        self._manager: Any = None
        self._events: AsyncIterator[Any] | None = None

    @property
    def result(self) -> ClaudeResult | None:
        return self._session.result

    async def __aenter__(self) -> AsyncClaudeStream:
        session = self._session
        try:
            session.call.start(await aroute(session.call.req))
            assert session.call.plan is not None
            with session.call.span.current():
                await arun_plan(
                    session.call.plan,
                    self._connect,
                    session.call.aadmit,
                    prefix_meanwhile(session.call),
                )
            if session.call.plan.answer is None:
                session.degraded = True
                session.result = await recording_off_loop(outcome.failed)(session.call)
            return self
        except asyncio.CancelledError as exc:
            # The client went away while we connected: nothing may be awaited
            # for long now; the line is written here, the row in the background.
            await self._close()
            session.finish(exit_error=exc, background=True)
            raise

    async def _connect(self, step: Attempt) -> bool:
        session = self._session
        params = session.call.req.params
        try:
            self._manager = sdk_request(
                get_async_client(quiet=session.call.span.quiet).messages.stream,
                model=step.model,
                timeout=step.timeout,
                **params,
            )
            session.opened(step, await self._manager.__aenter__())
            self._events = session.upstream.__aiter__()
            async for event in self._events:
                session.take(event)
                if session.connected():
                    return True
            raise StreamCutOff("the stream ended before its first token")
        except BaseException:
            await self._close()
            raise

    @property
    def text_stream(self) -> AsyncIterator[str]:
        return self._text()

    async def _text(self) -> AsyncIterator[str]:
        session = self._session
        for early in session.unhanded():
            yield early
        watch = StallWatch(session.quiet_until)
        try:
            while session.more and self._events is not None:
                try:
                    texts = session.live(await watch.read(anext(self._events)))
                # The end (StopAsyncIteration), or a failure after it began.
                except Exception as exc:
                    session.stopped(exc)
                else:
                    for text in texts:
                        yield text
        finally:
            watch.close()

    async def _close(self) -> None:
        events, self._events = self._events, None
        if events is not None and self._session.saw_stop and not self._session.ended:
            # Read after message_stop to the end of the body (nothing more, at
            # once), so the SDK's and httpx's async generators finish on this
            # loop instead of being left to the garbage collector, which may
            # run them in another thread ("async generator already executing").
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(DRAIN_AFTER_STOP):
                    async for _ in events:
                        pass
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(BaseException):
                await manager.__aexit__(None, None, None)

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled (the client went away): nothing may be awaited now; the
            # line is written here and the row by the background writer.
            await self._close()
            self._session.finish(exit_error=exc, background=True)
            return
        await self._close()
        if exc is None and ending_cannot_block(self._session.call):
            self._session.finish(exit_error=None)  # nothing in it blocks: no thread hop
            return
        await recording_off_loop(self._session.finish)(exit_error=exc)


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
