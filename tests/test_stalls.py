"""The async stream's stall watch: one timer, ends only a read, leaves no cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from django_claude.client.stalls import StallWatch


class Quiet:
    """A stream's quiet_until: ``after`` seconds past its last text."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.last_text = time.monotonic()

    def text(self) -> None:
        self.last_text = time.monotonic()

    def until(self) -> float:
        return self.last_text + self.after


def test_a_read_past_the_quiet_limit_times_out_and_leaves_the_task_uncancelled():
    async def main() -> tuple[float, int]:
        quiet = Quiet(0.2)
        watch = StallWatch(quiet.until)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await watch.read(asyncio.sleep(5))
        elapsed = time.monotonic() - started
        watch.close()
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0.01)  # no stray cancellation arrives later
        return elapsed, task.cancelling()

    elapsed, cancelling = asyncio.run(main())
    assert 0.15 < elapsed < 2
    assert cancelling == 0


def test_text_keeps_a_long_stream_alive_with_one_timer_not_one_per_read():
    class Counted(StallWatch):
        timers = 0

        def _arm(self) -> None:
            Counted.timers += 1
            super()._arm()

    async def main() -> int:
        quiet = Quiet(0.15)
        watch = Counted(quiet.until)
        ends = time.monotonic() + 0.6  # four times the quiet limit
        reads = 0
        try:
            while time.monotonic() < ends:
                await watch.read(asyncio.sleep(0.005))
                quiet.text()
                reads += 1
        finally:
            watch.close()
        return reads

    reads = asyncio.run(main())
    assert reads > 50
    assert 1 <= Counted.timers <= 8  # about one per quiet period, not one per read


def test_the_callers_time_between_reads_is_not_a_stall():
    async def main() -> str:
        quiet = Quiet(0.1)
        watch = StallWatch(quiet.until)
        await watch.read(asyncio.sleep(0))
        time.sleep(0.2)  # the caller is busy with the last piece of text

        async def ready() -> str:
            return "buffered"

        value = await watch.read(ready())  # already there: no wait, no stall
        watch.close()
        return value

    assert asyncio.run(main()) == "buffered"


def test_a_cancellation_from_outside_is_not_turned_into_a_stall():
    async def reader(watch_started: asyncio.Event) -> None:
        watch = StallWatch(Quiet(10).until)
        watch_started.set()
        try:
            await watch.read(asyncio.sleep(5))
        finally:
            watch.close()

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(reader(started))
        await started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_stall_and_a_cancellation_together_stay_a_cancellation():
    class ClientLeavesAsItStalls(StallWatch):
        def _check(self) -> None:
            super()._check()
            assert self._reader is not None
            self._reader.cancel()  # the client goes away at the same moment

    async def reader() -> None:
        watch = ClientLeavesAsItStalls(Quiet(0.05).until)
        try:
            await watch.read(asyncio.sleep(5))
        finally:
            watch.close()

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(reader())

    asyncio.run(main())


def test_a_stall_ends_the_read_of_the_task_reading_not_the_one_that_opened_it():
    """A stream opened in one task and read in another (or in a new task per
    read, as wait_for does): the stall ends the read, and leaves the opener be."""

    async def main() -> tuple[bool, bool]:
        quiet = Quiet(0.2)
        holder: dict[str, StallWatch] = {}

        async def opener() -> None:
            holder["watch"] = StallWatch(quiet.until)
            await asyncio.sleep(1.0)  # unrelated work, long after the stall

        opening = asyncio.create_task(opener())
        await asyncio.sleep(0.01)
        watch = holder["watch"]
        stalled = False
        try:
            await asyncio.wait_for(watch.read(asyncio.sleep(5)), 3)
        except TimeoutError:
            stalled = True
        watch.close()
        await opening  # not cancelled
        return stalled, opening.cancelled()

    stalled, opener_cancelled = asyncio.run(main())
    assert stalled and not opener_cancelled
