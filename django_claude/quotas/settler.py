"""Settlements waiting to be written, and the thread that writes them.

A call's settlement (what it used minus what it reserved, per counter) must
not hold up the call, so it waits here, merged with the others per counter.
The next call of the process to reserve on Redis takes what is waiting and
carries it in the same round trip as its own reservation (``take``); what no
reservation takes within ``CARRY_WAIT`` seconds is written by the settler's
thread, and ``drain`` (a read of the counters, the process's exit) has it
written at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

# How long a settlement waits for a reservation to carry it (only where one
# can: on Redis). Other processes see it this much later at most.
CARRY_WAIT = 0.01
# While settlements keep coming (one at least this often, in seconds), the
# thread looks for them every ``CARRY_WAIT`` instead of being woken for each:
# waking a thread costs the calling one ~30 us of system time, and the woken
# thread then takes the GIL from it, once a call.
STAY_AWAKE = 1.0


class Settler:
    """One thread that writes settlements, merged per counter, off the
    call's path. ``completed`` counts the batches written (or given up on)."""

    def __init__(self, write: Callable[[Sequence[tuple[str, int]]], None]) -> None:
        self.write = write
        lock = threading.Lock()
        self.idle = threading.Condition(lock)  # drain() waits on it
        self.wake = threading.Condition(lock)  # the settler's thread waits on it
        self.parked = False  # the thread waits for work with no timeout
        self.waiting: dict[str, int] = {}  # counter key -> change, not taken yet
        self.since = 0.0  # when the oldest waiting change came
        self.last = 0.0  # when the latest change came
        self.woken = 0  # times a submit had to wake the thread
        self.busy = 0  # batches taken and not written yet
        self.completed = 0
        self.draining = 0  # callers of drain(): write what waits at once
        self.carried = False  # a reservation can carry settlements (Redis)
        self.thread: threading.Thread | None = None

    def submit(self, changes: Sequence[tuple[str, int]]) -> None:
        with self.idle:
            self.last = time.monotonic()
            if not self.waiting:
                self.since = self.last
            for key, delta in changes:
                self.waiting[key] = self.waiting.get(key, 0) + delta
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._work, name="django-claude-quota-settler", daemon=True
                )
                self.thread.start()
            elif self.parked:  # else it is awake, or wakes within CARRY_WAIT
                self.woken += 1
                self.wake.notify()

    def take(self) -> dict[str, int]:
        """What waits, for a reservation to carry (which then calls ``done``
        if this is not empty): it can, from now on."""
        with self.idle:
            self.carried = True
            batch = {key: delta for key, delta in self.waiting.items() if delta}
            self.waiting = {}
            if batch:
                self.busy += 1
            return batch

    def done(self) -> None:
        """A batch ``take`` gave out is written (or given up on)."""
        with self.idle:
            self.busy -= 1
            self.completed += 1
            self.idle.notify_all()

    def _next_batch(self) -> dict[str, int]:
        with self.wake:
            while True:
                now = time.monotonic()
                left = self.since + CARRY_WAIT - now
                if self.waiting and (not self.carried or self.draining or left <= 0):
                    batch, self.waiting = self.waiting, {}
                    self.busy += 1
                    return batch
                # Woken by submit() when parked, by drain(), or when its wait ends
                # (a reservation may take what waits meanwhile). Nothing waits:
                # look again within CARRY_WAIT while settlements keep coming
                # (so that none needs to wake it), else park.
                timeout: float | None = left
                if not self.waiting:
                    timeout = CARRY_WAIT if now - self.last < STAY_AWAKE else None
                self.parked = timeout is None
                self.wake.wait(timeout)
                self.parked = False

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                changes = [(key, delta) for key, delta in batch.items() if delta]
                if changes:
                    self.write(changes)
            finally:
                self.done()

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until every settlement submitted so far is written."""
        with self.idle:
            self.draining += 1
            self.wake.notify()
            try:
                return self.idle.wait_for(
                    lambda: not self.waiting and self.busy == 0, timeout=timeout
                )
            finally:
                self.draining -= 1

    def after_fork(self) -> None:
        self.__init__(self.write)  # type: ignore[misc]  # the parent's thread is not here
