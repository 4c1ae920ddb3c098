"""A reservation on Redis is made in the caller's thread, on sockets that give
up after the reservation's budget. One its caller gave up on may still reach
Redis: its marker is cancelled, which undoes it if it landed first and keeps
it from ever being made if it lands after."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid

import pytest

import django_claude
from django_claude import shared_cache
from django_claude.quotas.scripts import CANCEL, RESERVE, run_script

pytestmark = pytest.mark.redis

TTL_MS = 30_000


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(os.environ["CACHE_URL"])
    yield client
    client.close()


# A Lua loop that keeps Redis from answering anyone for 1.5 s.
BUSY = (
    "local t = redis.call('TIME') local s = t[1] + t[2] / 1e6 "
    "while true do local n = redis.call('TIME') "
    "if n[1] + n[2] / 1e6 - s > 1.5 then break end end return 0"
)


@contextlib.contextmanager
def redis_busy(client):
    blocker = threading.Thread(target=lambda: client.eval(BUSY, 0))
    blocker.start()
    time.sleep(0.1)
    try:
        yield
    finally:
        blocker.join()


def keys(prefix: str) -> tuple[str, str, str]:
    return f"{prefix}:user", f"{prefix}:site", f"{prefix}:marker"


def reserve(client, prefix: str, amounts=(5, 7), settle: dict[str, int] | None = None):
    user, site, marker = keys(prefix)
    settle = settle or {}
    args = [len(settle), *settle.values()]
    for amount in amounts:
        args += [amount, 100, 60]
    return run_script(client, RESERVE, [*settle, user, site, marker], [*args, TTL_MS])


def cancel(client, prefix: str, amounts=(5, 7), settle: dict[str, int] | None = None):
    user, site, marker = keys(prefix)
    settle = settle or {}
    args = [2, *(-amount for amount in amounts), *settle.values(), TTL_MS]
    return run_script(client, CANCEL, [user, site, *settle, marker], args)


def values(client, prefix: str) -> tuple[int, int]:
    user, site, _ = keys(prefix)
    return int(client.get(user) or 0), int(client.get(site) or 0)


def test_a_cancel_after_the_reservation_landed_undoes_it(redis_client):
    prefix = f"test:{uuid.uuid4().hex}"
    assert reserve(redis_client, prefix) == []
    assert values(redis_client, prefix) == (5, 7)
    cancel(redis_client, prefix)
    assert values(redis_client, prefix) == (0, 0)
    cancel(redis_client, prefix)  # twice: nothing more
    assert values(redis_client, prefix) == (0, 0)


def test_a_reservation_landing_after_its_cancel_is_never_made(redis_client):
    prefix = f"test:{uuid.uuid4().hex}"
    other = f"{prefix}:settled"
    redis_client.set(other, 40)
    # The settlements it carries are applied once, by the cancel that came first.
    cancel(redis_client, prefix, settle={other: -15})
    assert int(redis_client.get(other)) == 25
    assert reserve(redis_client, prefix, settle={other: -15}) == [-1]
    assert values(redis_client, prefix) == (0, 0)
    assert int(redis_client.get(other)) == 25


def test_the_settlements_a_landed_reservation_carried_are_not_applied_again(redis_client):
    prefix = f"test:{uuid.uuid4().hex}"
    other = f"{prefix}:settled"
    redis_client.set(other, 40)
    assert reserve(redis_client, prefix, settle={other: -15}) == []
    cancel(redis_client, prefix, settle={other: -15})
    cancel(redis_client, prefix, settle={other: -15})
    assert values(redis_client, prefix) == (0, 0)
    assert int(redis_client.get(other)) == 25


def test_a_refused_reservation_leaves_nothing_to_undo(redis_client):
    prefix = f"test:{uuid.uuid4().hex}"
    user, _, _ = keys(prefix)
    other = f"{prefix}:settled"
    redis_client.set(user, 99)
    redis_client.set(other, 40)
    assert reserve(redis_client, prefix, settle={other: -15}) == [1]
    cancel(redis_client, prefix, settle={other: -15})
    assert values(redis_client, prefix) == (99, 0)
    assert int(redis_client.get(other)) == 25


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reservation_redis_is_too_busy_for_refuses_the_call_and_keeps_nothing(
    fake_anthropic, settings, redis_client
):
    settings.DJANGO_CLAUDE_QUOTAS = {"site-calls": {"window": "day", "calls": 100}}
    assert django_claude.call("warm", feature="busy").outcome == "ok"
    used = django_claude.quota_status(feature="busy")[0].used
    # The reservation (1 s budget) waits behind a busy Redis, gives up, and
    # its command is still in Redis's queue.
    with redis_busy(redis_client):
        result = django_claude.call("while redis is busy", feature="busy")
    assert result.outcome == "limited"
    assert fake_anthropic.count() == 1  # the call was not sent
    time.sleep(0.5)  # the cancel, in the background, lands
    shared_cache.reset()
    assert django_claude.quota_status(feature="busy")[0].used == used
    assert django_claude.call("after", feature="busy").outcome == "ok"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_client_that_retries_on_timeout_never_sends_a_reservation_twice(
    fake_anthropic, settings, redis_client
):
    """A site's ``retry_on_timeout``: the reservation's own pool never retries
    (a second send would find its own marker), so the call is refused as the
    cache being down, within its budget, and keeps nothing."""
    settings.CACHES = {
        **settings.CACHES,
        "retrying": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CACHE_URL"],
            "OPTIONS": {"retry_on_timeout": True},
        },
    }
    settings.DJANGO_CLAUDE_CACHE = "retrying"
    settings.DJANGO_CLAUDE_QUOTAS = {
        "a": {"window": "day", "calls": 100},
        "b": {"per": "user", "window": "day", "calls": 100},
    }
    assert django_claude.call("warm", feature="retry", user="u").outcome == "ok"
    used = [q.used for q in django_claude.quota_status(user="u", feature="retry")]
    with redis_busy(redis_client):
        result = django_claude.call("while redis is busy", feature="retry", user="u")
    assert result.outcome == "limited"
    time.sleep(0.5)
    shared_cache.reset()
    assert [q.used for q in django_claude.quota_status(user="u", feature="retry")] == used
