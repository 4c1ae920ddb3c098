"""Connections are reused: a call opens no new Redis or database connection
once the process is warm, in sync and async code, across requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_finished, request_started
from django.db import connections
from django.db.backends.signals import connection_created

import django_claude

CALLS = 40
WARM = 8


def _request(n: int) -> None:
    request_started.send(sender=None)
    try:
        assert django_claude.call(f"question {n}", feature="reuse").outcome == "ok"
    finally:
        request_finished.send(sender=None)


async def _arequest(n: int) -> None:
    await sync_to_async(request_started.send)(sender=None)
    try:
        result = await django_claude.acall(f"question {n}", feature="reuse")
        assert result.outcome == "ok"
    finally:
        await sync_to_async(request_finished.send)(sender=None)


def _serve(warm: int, measured: int, between: Callable[[], object]) -> None:
    """``warm`` then ``measured`` requests, each in its own task on one event
    loop, as an ASGI server runs them; ``between`` runs in between."""

    async def serve() -> None:
        for n in range(warm):
            await asyncio.create_task(_arequest(n))
        await sync_to_async(between)()
        for n in range(warm, warm + measured):
            await asyncio.create_task(_arequest(n))
        await sync_to_async(connections.close_all)()  # as the server's shutdown would

    asyncio.run(serve())


def _serve_sync(warm: int, measured: int, between: Callable[[], object]) -> None:
    for n in range(warm):
        _request(n)
    between()
    for n in range(warm, warm + measured):
        _request(n)


@pytest.fixture
def opened_db_connections() -> Iterator[list[str]]:
    opened: list[str] = []

    def note(sender: object, connection: object, **kwargs: object) -> None:
        opened.append(getattr(connection, "alias", "?"))

    connection_created.connect(note)
    yield opened
    connection_created.disconnect(note)


@pytest.fixture
def redis_connects(monkeypatch) -> list[int]:
    """Every Redis connection this process opens (other processes may share
    the server: its own counters would count theirs)."""
    from redis.connection import AbstractConnection

    made: list[int] = []
    real = AbstractConnection.connect

    def connect(self: AbstractConnection) -> None:
        if self._sock is None:  # connect() is a no-op on an open connection
            made.append(1)
        real(self)

    monkeypatch.setattr(AbstractConnection, "connect", connect)
    return made


@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("serve", [_serve_sync, _serve], ids=["sync", "async"])
def test_warm_calls_open_no_redis_connection(fake_anthropic, serve, redis_connects):
    serve(WARM, CALLS, redis_connects.clear)
    assert redis_connects == [], f"{len(redis_connects)} Redis connections for {CALLS} requests"
    assert fake_anthropic.count() == WARM + CALLS


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("serve", [_serve_sync, _serve], ids=["sync", "async"])
def test_warm_calls_open_no_database_connection(
    fake_anthropic, opened_db_connections, serve, settings
):
    from django_claude.models import CallRecord
    from django_claude.testing import flush_pending

    # Connections kept across requests (CONN_MAX_AGE), as a site that cares sets.
    kept = {alias: connections[alias].settings_dict["CONN_MAX_AGE"] for alias in connections}
    for alias in connections:
        connections[alias].settings_dict["CONN_MAX_AGE"] = 600
    try:

        def between() -> None:
            flush_pending()
            opened_db_connections.clear()

        serve(WARM, CALLS, between)
        flush_pending()
    finally:
        for alias, age in kept.items():
            connections[alias].settings_dict["CONN_MAX_AGE"] = age
    assert opened_db_connections == [], f"{len(opened_db_connections)} new connections"
    assert CallRecord.objects.filter(feature="reuse").count() == WARM + CALLS
