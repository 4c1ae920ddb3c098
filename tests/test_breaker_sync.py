"""Each process keeps the breaker state it read for a quarter second: a
healthy model costs one cache read per model every ``SYNC_EVERY``, not one
per call, and a trip anywhere is still seen everywhere within a second."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.db import connections

import django_claude
from django_claude.client import breaker
from django_claude.client.breaker import SYNC_EVERY, CircuitBreaker

PRIMARY = "claude-sonnet-4-6"


@pytest.fixture
def breaker_reads(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = breaker.cache_op

    def counting(operation, fn, *, default):
        seen.append(operation)
        return real(operation, fn, default=default)

    monkeypatch.setattr(breaker, "cache_op", counting)
    return seen


def test_warm_calls_read_the_breaker_once_per_sync_period(claude, breaker_reads):
    started = time.monotonic()
    for n in range(20):
        assert django_claude.call(f"q{n}", feature="sync").outcome == "ok"
    periods = int((time.monotonic() - started) / SYNC_EVERY) + 1
    reads = breaker_reads.count("breaker read")
    assert 1 <= reads <= periods, (reads, periods)
    assert reads < 20


# acall records its calls from another thread than the test's transaction.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_warm_acalls_read_the_breaker_once_per_sync_period(fake_anthropic, breaker_reads):
    async def many() -> float:
        started = time.monotonic()
        for n in range(20):
            assert (await django_claude.acall(f"q{n}", feature="sync")).outcome == "ok"
        elapsed = time.monotonic() - started
        await sync_to_async(connections.close_all)()  # as a server's shutdown would
        return elapsed

    elapsed = asyncio.run(many())
    reads = breaker_reads.count("breaker read")
    assert 1 <= reads <= int(elapsed / SYNC_EVERY) + 1, reads


def test_a_trip_elsewhere_is_seen_within_a_second(claude, settings):
    assert django_claude.call("warm", feature="sync").outcome == "ok"  # read: closed
    # Another process trips the breaker: only the shared cache changes.
    cache = caches["default"]
    cache.set(f"{CircuitBreaker.PREFIX}{PRIMARY}:open_until", time.time() + 60, timeout=None)
    time.sleep(SYNC_EVERY + 0.05)
    before = claude.count(PRIMARY)
    result = django_claude.call("after the trip", feature="sync")
    assert result.outcome == "fallback"
    assert claude.count(PRIMARY) == before  # skipped without a request


def test_a_trip_here_is_seen_here_at_once(claude, settings):
    settings.DJANGO_CLAUDE_BREAKER_THRESHOLD = 2
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 2
    claude.script(PRIMARY, [529, 529])
    assert django_claude.call("trips it", feature="sync").outcome == "fallback"
    assert claude.count(PRIMARY) == 2
    assert django_claude.call("skipped", feature="sync").outcome == "fallback"
    assert claude.count(PRIMARY) == 2  # no wait for the next sync
