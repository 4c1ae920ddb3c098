"""The stall watch of an async stream: one timer per stream, not one per event.

A stream that has begun is stalled once no text has come for ``TIMEOUT``
seconds (pings do not count). ``asyncio.timeout`` around every read would
say so, at the price of a timer set and cancelled, and a context entered and
left, for each of the hundreds of events of a long answer. ``StallWatch``
keeps a single timer at the moment the stream would count as stalled; when
it fires early (text came meanwhile) it is set again for the new moment, so
it fires about once per ``TIMEOUT`` whatever the number of events. Only a
read in progress is ended: while the caller handles a piece of text, the
stream is not being waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StallWatch:
    """``await watch.read(awaitable)`` raises ``TimeoutError`` once
    ``quiet_until()`` (``time.monotonic()``) has passed during the read."""

    def __init__(self, quiet_until: Callable[[], float]) -> None:
        self._quiet_until = quiet_until
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[Any] | None = None  # the task of the read in progress
        self._fired = False

    async def read(self, awaitable: Awaitable[T]) -> T:
        # The task of this read: a stream may be read from another task than
        # the one that opened it, or from a new task each time (wait_for).
        task = asyncio.current_task()
        if task is None:  # not in a task (cannot be cancelled): no watch
            return await awaitable
        if self._handle is None:  # (a moment already past fires at the next turn)
            self._arm()
        base = task.cancelling()
        self._reader, self._fired = task, False
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._fired and task.uncancel() <= base:  # ours, and no one else's
                raise TimeoutError("no text within the stream's timeout") from None
            raise
        finally:
            self._reader, self._fired = None, False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        left = self._quiet_until() - time.monotonic()
        self._handle = self._loop.call_at(self._loop.time() + max(0.0, left), self._check)

    def _check(self) -> None:
        self._handle = None
        if self._quiet_until() > time.monotonic():
            self._arm()  # text came since the timer was set: watch the new moment
        elif self._reader is not None and not self._reader.done():
            self._fired = True
            self._reader.cancel()
        # Quiet too long but not reading: the next read raises at once.
