"""The settler's thread: settlements reach the counters without costing each
call a thread wake-up, and an idle process's thread sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from django_claude.quotas import settler as settler_module
from django_claude.quotas.settler import Settler


class Counters:
    """Where a settler writes: what each counter was moved by."""

    def __init__(self) -> None:
        self.moved: dict[str, int] = {}
        self.writes = 0
        self.lock = threading.Lock()

    def write(self, changes: Sequence[tuple[str, int]]) -> None:
        with self.lock:
            self.writes += 1
            for key, delta in changes:
                self.moved[key] = self.moved.get(key, 0) + delta


def carry(settler: Settler, counters: Counters) -> None:
    """What a reservation does: take what waits, write it, say so."""
    batch = settler.take()
    if batch:
        counters.write(list(batch.items()))
        settler.done()


def test_a_steady_stream_of_calls_does_not_wake_the_thread_for_each():
    counters = Counters()
    settler = Settler(counters.write)
    for _ in range(150):
        carry(settler, counters)  # the call's reservation carries the last one's settlement
        time.sleep(0.001)  # the request
        settler.submit([("user", -3), ("site", -1)])  # its own settlement
    assert settler.drain()
    # Every settlement counted once, whoever wrote it.
    assert counters.moved == {"user": -450, "site": -150}
    # Waking a parked thread costs the calling thread a system call and then
    # the GIL: with a call every millisecond or two it is never parked.
    assert settler.woken <= 2, settler.woken


def test_settlements_no_reservation_carries_are_written_by_the_thread():
    counters = Counters()
    settler = Settler(counters.write)
    settler.take()  # reservations can carry (Redis), but none comes
    for _ in range(30):
        settler.submit([("user", 2)])
        time.sleep(0.002)
    deadline = time.monotonic() + 5
    while counters.moved.get("user") != 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert counters.moved == {"user": 60}  # without drain(): the thread wrote them
    assert settler.woken <= 2, settler.woken


def test_an_idle_process_thread_parks_and_is_woken_by_the_next_settlement(monkeypatch):
    monkeypatch.setattr(settler_module, "STAY_AWAKE", 0.05)
    counters = Counters()
    settler = Settler(counters.write)
    settler.take()
    settler.submit([("user", 1)])
    deadline = time.monotonic() + 5
    while not settler.parked and time.monotonic() < deadline:
        time.sleep(0.01)
    # Nothing came for a while: it waits without a timeout (no CPU while idle).
    assert settler.parked
    assert counters.moved == {"user": 1}
    settler.submit([("user", 1)])
    assert settler.woken == 1
    deadline = time.monotonic() + 5
    while counters.moved.get("user") != 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert counters.moved == {"user": 2}


@pytest.mark.parametrize("calls", [1, 40])
def test_drain_writes_what_waits_at_once(calls):
    counters = Counters()
    settler = Settler(counters.write)
    settler.take()
    for _ in range(calls):
        settler.submit([("tenant", 5)])
    assert settler.drain(timeout=2.0)
    assert counters.moved == {"tenant": 5 * calls}
