"""Slow infrastructure is bounded: bookkeeping never holds the caller's answer."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

import django_claude
from django_claude.models import CallRecord
from django_claude.recording import writer

DEADLINE = 1.5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_locked_record_table_does_not_hold_the_answer(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_DEADLINE = DEADLINE
    CallRecord.objects.count()  # the table exists; open our connection first
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(f"LOCK TABLE {CallRecord._meta.db_table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(10)
                cursor.execute("COMMIT")
        finally:
            other.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert locked.wait(5)
    try:
        started = time.monotonic()
        result = django_claude.call("Hello", feature="locked")
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert result.outcome == "ok"
    assert elapsed < DEADLINE + 1.0, f"held {elapsed:.1f}s by a locked table"
    assert writer.flush_pending()
    assert CallRecord.objects.filter(id=result.request_id).exists()  # written once it could be
    assert connection.vendor == "postgresql"


@pytest.mark.django_db
@pytest.mark.parametrize("cache_ttl", [None, 60])
def test_a_hung_cache_costs_a_call_one_budget_then_nothing(
    fake_anthropic, settings, caplog, cache_ttl
):
    from django_claude import shared_cache

    settings.CACHES = {
        **settings.CACHES,
        "hung": {"BACKEND": "tests.broken_cache.HungCache"},
    }
    settings.DJANGO_CLAUDE_CACHE = "hung"
    settings.DJANGO_CLAUDE_CACHE_BUDGET = 0.2
    shared_cache.reset()
    try:
        timings = []
        for _ in range(3):
            started = time.monotonic()
            result = django_claude.call("Hello", feature="hung-cache", cache_ttl=cache_ttl)
            timings.append(time.monotonic() - started)
            assert result.outcome == "ok"
        # The first call waits out one budget, then the cache counts as down.
        assert timings[0] < 1.0 and max(timings[1:]) < 0.5, timings
        warnings = [r for r in caplog.records if "carrying on without it" in r.getMessage()]
        assert len(warnings) == 1
        assert CallRecord.objects.filter(feature="hung-cache").count() == 3
    finally:
        settings.DJANGO_CLAUDE_CACHE = "default"  # the fixture's cleanup must not wait on it
        shared_cache.reset()
