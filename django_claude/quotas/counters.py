"""Quota counters in the shared cache, changed atomically across processes.

``reserve`` adds a call's worst case to every counter it is charged to, all
or none: when one would pass its limit, none is changed and the caller learns
which. ``adjust`` later moves each counter by what the call really used minus
what it reserved (never below zero).

On Redis (Django's ``RedisCache`` or django-redis) each is one Lua script,
one round trip, whatever the number of quotas. On any other cache it is
``add`` then ``incr`` per counter, and a counter that passes its limit is
decremented back: never an overspend where ``incr`` is atomic (Memcached,
the local-memory cache within its process), at the price of refusing a call
that raced one being rolled back. The database and file caches have no
atomic ``incr``: ``check`` warns (W007) when quotas sit on one.

A call's settlement does not wait for the cache: on Redis the process's next
reservation carries it in its own round trip (so a steady stream of calls
makes one round trip each), else the settler's thread writes it within
``settler.CARRY_WAIT`` seconds. A reservation the cache made after the
caller stopped waiting is given back (``late``), and settling is tried even
while the cache is marked down: a reservation is never kept by a slow or
flapping cache. (A settlement whose write fails is lost, as a failed write
is: the counter then keeps what the calls did not use of their reservations
until the window ends, which can refuse a call but not let one overspend.)
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from django_claude.conf import conf
from django_claude.quotas.scripts import ADJUST, CANCEL, RESERVE, new_marker, run_script
from django_claude.quotas.settler import Settler
from django_claude.shared_cache import cache_is_local, cache_op, cache_op_here, cache_op_later

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Charge:
    """One counter a call is charged to."""

    key: str  # the cache key, before the cache's own prefix and version
    amount: int
    limit: int
    ttl: int  # seconds until the counter's window ends, and a little more


class QuotaStoreUnavailable(Exception):
    """The cache did not answer: nothing could be reserved."""


_UNAVAILABLE = object()
# A refused reservation refuses the call: give the cache longer to answer than
# the breaker's lookups get (a process's first calls wait on its connections).
RESERVE_BUDGET = 1.0
# How long a reservation's marker lives: longer than any reservation can be
# on its way to Redis after its caller gave up on it.
MARKER_TTL_MS = 30_000
_NOT_HERE = object()


def _redis(cache: BaseCache) -> tuple[Any, Any] | None:
    """``(client, make_key)`` when ``cache`` is Redis, else None. The client
    is kept on the cache instance: Django's backend builds a new one (on the
    same connection pool) per call, which costs more than the round trip."""
    kept = getattr(cache, "_django_claude_redis", None)
    if kept is not None:
        return kept
    found = _find_redis(cache)
    if found is not None:
        cache._django_claude_redis = found  # type: ignore[attr-defined]
    return found


def _find_redis(cache: BaseCache) -> tuple[Any, Any] | None:
    inner = getattr(cache, "_cache", None)
    if (
        inner is not None
        and hasattr(inner, "get_client")
        and hasattr(cache, "make_and_validate_key")
    ):
        return inner.get_client(None, write=True), cache.make_and_validate_key
    client_wrapper = getattr(cache, "client", None)
    if client_wrapper is not None and hasattr(client_wrapper, "get_client"):
        return client_wrapper.get_client(write=True), cache.make_and_validate_key
    return None


def _reserve_in(cache: BaseCache, charges: Sequence[Charge]) -> tuple[list[int], bool]:
    """([] when every charge was made, else the 1-based indexes of those
    refused; whether it carried this process's waiting settlements too)."""
    redis = _redis(cache)
    if redis is not None:
        client, make_key = redis
        batch = _settler.take()
        try:
            return _reserve_on_redis(client, make_key, charges, make_key(new_marker()), batch)
        finally:
            if batch:  # written, or given up on as a failed settlement is
                _settler.done()
    made: list[Charge] = []
    for index, charge in enumerate(charges, start=1):
        cache.add(charge.key, 0, timeout=charge.ttl)
        try:
            total = cache.incr(charge.key, charge.amount)
        except ValueError:  # expired between add and incr: a new window
            cache.add(charge.key, 0, timeout=charge.ttl)
            total = cache.incr(charge.key, charge.amount)
        made.append(charge)
        if total > charge.limit:
            for undo in made:
                _decrement(cache, undo.key, undo.amount)
            return [index, *_also_refused(cache, charges[index:], start=index + 1)], False
    return [], False


# Counter keys as the cache makes them (prefix, version, validation), per
# make_key: a counter's key is the same for every call of its window.
_made_keys: dict[tuple[Any, str], str] = {}


def _made(make_key: Any, key: str) -> str:
    made = _made_keys.get((make_key, key))
    if made is None:
        if len(_made_keys) > 4096:
            _made_keys.clear()
        made = _made_keys[(make_key, key)] = make_key(key)
    return made


def _reserve_on_redis(
    client: Any, make_key: Any, charges: Sequence[Charge], marker: str, batch: dict[str, int]
) -> tuple[list[int], bool]:
    """RESERVE on ``client``, carrying ``batch`` (this process's waiting
    settlements). Raises ``ValueError`` for an answer that is not one."""
    keys = [_made(make_key, key) for key in batch]
    keys += [_made(make_key, charge.key) for charge in charges]
    args: list[int] = [len(batch), *batch.values()]
    for charge in charges:
        args += [charge.amount, charge.limit, charge.ttl]
    answer = [int(i) for i in run_script(client, RESERVE, [*keys, marker], [*args, MARKER_TTL_MS])]
    if any(not 1 <= index <= len(charges) for index in answer):
        raise ValueError(f"RESERVE answered {answer[:3]}")  # its marker was taken: cancel
    return answer, bool(batch)


def _reserve_here(cache: BaseCache, charges: Sequence[Charge], budget: float) -> Any:
    """The reservation in the caller's thread, on a client whose sockets give
    up after ``budget`` seconds (the hop to a cache worker costs more than
    the round trip); ``_NOT_HERE`` when the cache is not Redis. A reservation
    that failed or timed out may still reach Redis: its marker is cancelled
    in the background, which undoes its charges if it landed, or else applies
    the settlements it carried and keeps it from ever being made."""
    found = _timed_redis(cache, budget)
    if found is None:
        return _NOT_HERE
    client, make_key = found
    marker = make_key(new_marker())
    batch = _settler.take()  # written by this round trip (or its cancel)
    try:
        return _reserve_on_redis(client, make_key, charges, marker, batch)
    except BaseException:
        keys = [
            *(_made(make_key, charge.key) for charge in charges),
            *(_made(make_key, key) for key in batch),
            marker,
        ]
        args = [
            len(charges),
            *(-charge.amount for charge in charges),
            *batch.values(),
            MARKER_TTL_MS,
        ]
        cache_op_later("quota cancel", lambda _cache: _cancel(client, keys, args), force=True)
        raise
    finally:
        if batch:
            _settler.done()


_timed_lock = threading.Lock()
CANCEL_TRIES = (0.0, 1.0, 4.0)  # seconds before each try: within the marker's life


def _cancel(client: Any, keys: list[str], args: list[int]) -> None:
    """CANCEL, tried again while Redis does not answer (it is safe to repeat)."""
    for pause in CANCEL_TRIES:
        time.sleep(pause)
        try:
            run_script(client, CANCEL, keys, args)
            return
        except Exception as exc:
            failure = exc
    logger.warning(
        "claude quota: a reservation given up on could not be cancelled (%s); if it "
        "reached Redis, it is held until its window ends",
        type(failure).__name__,
    )


def _timed_redis(cache: BaseCache, budget: float) -> tuple[Any, Any] | None:
    """``_redis(cache)`` on a pool of its own whose sockets time out after
    ``budget`` seconds and never retry (a retry would send the reservation
    twice); None when the cache is not Redis (or its pool cannot be copied:
    Sentinel, Cluster)."""
    kept = getattr(cache, "_django_claude_timed", None)
    if kept is not None and kept[0] == budget:
        return kept[1]
    found = _redis(cache)
    if found is None:
        return None
    client, make_key = found
    pool = client.connection_pool
    try:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs = dict(pool.connection_kwargs)
        for name in ("socket_timeout", "socket_connect_timeout"):
            kwargs[name] = budget
            if f"orig_{name}" in kwargs:  # what maintenance notices restore
                kwargs[f"orig_{name}"] = budget
        kwargs.update(retry=Retry(NoBackoff(), 0), retry_on_timeout=False, retry_on_error=[])
        if hasattr(pool, "timeout"):  # BlockingConnectionPool: wait for a connection
            kwargs["timeout"] = min(float(pool.timeout or budget), budget)
        timed_pool = type(pool)(
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            **kwargs,
        )
        timed = (type(client)(connection_pool=timed_pool), make_key)
    except Exception:
        timed = None
    with _timed_lock:  # one pool per cache, even when threads race to build it
        kept = getattr(cache, "_django_claude_timed", None)
        if kept is None or kept[0] != budget:  # (a pool for another budget is dropped)
            kept = (budget, timed)
            cache._django_claude_timed = kept  # type: ignore[attr-defined]
    return kept[1]


def _also_refused(cache: BaseCache, rest: Sequence[Charge], *, start: int) -> list[int]:
    """Which of the charges after a refused one would be refused too (read, not charged)."""
    values = cache.get_many([charge.key for charge in rest])
    return [
        index
        for index, charge in enumerate(rest, start=start)
        if int(values.get(charge.key) or 0) + charge.amount > charge.limit
    ]


def _decrement(cache: BaseCache, key: str, amount: int) -> None:
    try:
        left = cache.decr(key, amount)
        if left < 0:  # never a credit for the next calls
            cache.incr(key, -left)
    except ValueError:
        pass  # its window ended meanwhile


def reserve(charges: Sequence[Charge]) -> list[int]:
    """Charge every counter its amount, or none. Returns [] when charged, else
    the 1-based indexes of the charges that would pass their limits. Raises
    ``QuotaStoreUnavailable`` when the cache fails or does not answer in time
    (a reservation it made after that is given back)."""
    if not charges:
        return []

    def give_back(answer: Any) -> None:
        if answer[0] == []:  # charged after all, for a call that was not sent
            adjust([(charge.key, -charge.amount) for charge in charges])

    budget = max(conf.CACHE_BUDGET, RESERVE_BUDGET)

    def attempt() -> Any:
        here = cache_op_here(
            "quota reserve",
            lambda cache: _reserve_here(cache, charges, budget),
            default=_UNAVAILABLE,
        )
        if here is not _NOT_HERE:
            return here
        return cache_op(
            "quota reserve",
            lambda cache: _reserve_in(cache, charges),
            default=_UNAVAILABLE,
            budget=budget,
            late=give_back,
        )

    landed = _settler.completed
    answer = attempt()
    if answer is not _UNAVAILABLE and answer[0]:
        # This process's own settlements may be what filled the quota: let
        # those in flight land, then ask again (never refuse for a refund in
        # flight). Those the refused attempt carried were counted already.
        _settler.drain(RESERVE_BUDGET)
        if _settler.completed - landed > answer[1]:
            answer = attempt()
    if answer is _UNAVAILABLE:
        raise QuotaStoreUnavailable
    refused: list[int] = answer[0]
    return refused


def _adjust_in(cache: BaseCache, changes: Sequence[tuple[str, int]]) -> None:
    redis = _redis(cache)
    if redis is not None:
        client, make_key = redis
        keys = [make_key(key) for key, _ in changes]
        run_script(client, ADJUST, keys, [delta for _, delta in changes])
        return
    for key, delta in changes:
        try:
            if delta >= 0:
                cache.incr(key, delta)
            else:
                _decrement(cache, key, -delta)
        except ValueError:
            pass  # the window ended: its counter is gone, and stays gone


def _settle_now(changes: Sequence[tuple[str, int]]) -> None:
    # Even while the cache is marked down: a reservation must not be kept.
    cache_op(
        "quota settle",
        lambda cache: _adjust_in(cache, changes),
        default=None,
        budget=max(conf.CACHE_BUDGET, RESERVE_BUDGET),
        force=True,
    )


_settler = Settler(_settle_now)
os.register_at_fork(after_in_child=_settler.after_fork)
atexit.register(_settler.drain)


def adjust(changes: Sequence[tuple[str, int]]) -> None:
    """Move each counter by its change (what was used minus what was
    reserved); a counter whose window ended is left alone. The local-memory
    cache at once; any other without waiting: carried by the process's next
    reservation on Redis, or written by the settler's thread (``settler``)."""
    changes = [(key, delta) for key, delta in changes if delta]
    if not changes:
        return
    if cache_is_local():
        _settle_now(changes)
    else:
        _settler.submit(changes)


def settled(timeout: float = 2.0) -> bool:
    """Wait until this process's queued settlements are written."""
    return _settler.drain(timeout)


def read(keys: Sequence[str]) -> dict[str, int]:
    """The counters' values (a missing one is 0), after this process's queued
    settlements. Raises ``QuotaStoreUnavailable``."""
    _settler.drain()
    values = cache_op("quota read", lambda cache: cache.get_many(list(keys)), default=_UNAVAILABLE)
    if values is _UNAVAILABLE:
        raise QuotaStoreUnavailable
    assert isinstance(values, dict)
    return {key: max(0, int(values.get(key) or 0)) for key in keys}
