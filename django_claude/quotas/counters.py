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
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from django_claude.conf import conf
from django_claude.quotas.settler import Settler
from django_claude.shared_cache import cache_is_local, cache_op

# KEYS: the counters a waiting settlement moves, then the counters to charge;
# ARGV: how many counters are settled, the change of each, then amount, limit
# and ttl of each charge. The settlement is applied first, whatever follows.
# Returns {} when every charge was made, else the 1-based indexes (among the
# charges) of every one that would pass its limit; then none is made.
RESERVE = """
local settled = tonumber(ARGV[1])
for i = 1, settled do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[1 + i]) < 0 then
      local ttl = redis.call('PTTL', KEYS[i])
      redis.call('SET', KEYS[i], 0)
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[i], ttl)
      end
    end
  end
end
local refused = {}
local charges = #KEYS - settled
local base = 1 + settled
for i = 1, charges do
  local used = tonumber(redis.call('GET', KEYS[settled + i]) or '0')
  if used + tonumber(ARGV[base + 3 * i - 2]) > tonumber(ARGV[base + 3 * i - 1]) then
    refused[#refused + 1] = i
  end
end
if #refused > 0 then
  return refused
end
for i = 1, charges do
  local amount = tonumber(ARGV[base + 3 * i - 2])
  -- A counter that was absent (or at zero) starts its window's expiry now.
  if redis.call('INCRBY', KEYS[settled + i], amount) == amount then
    redis.call('EXPIRE', KEYS[settled + i], ARGV[base + 3 * i])
  end
end
return refused
"""

# KEYS: the counters; ARGV: the change for each. A counter whose window is
# over (gone) is left gone; none goes below zero.
ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      local ttl = redis.call('PTTL', KEYS[i])
      redis.call('SET', KEYS[i], 0)
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[i], ttl)
      end
    end
  end
end
return 0
"""


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
_scripts: dict[str, Any] = {}
_scripts_lock = threading.Lock()


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


def _run_script(client: Any, source: str, keys: list[str], args: list[int]) -> Any:
    """EVALSHA ``source`` (loading it when Redis does not know it) on ``client``.
    One ``Script`` per source: Django's backend hands out a new client per call."""
    script = _scripts.get(source)
    if script is None:
        with _scripts_lock:
            script = _scripts.setdefault(source, client.register_script(source))
    return script(keys=keys, args=args, client=client)


def _reserve_in(cache: BaseCache, charges: Sequence[Charge]) -> tuple[list[int], bool]:
    """([] when every charge was made, else the 1-based indexes of those
    refused; whether it carried this process's waiting settlements too)."""
    redis = _redis(cache)
    if redis is not None:
        client, make_key = redis
        batch = _settler.take()  # written by this round trip, before the charges
        try:
            keys = [make_key(key) for key in batch]
            keys += [make_key(charge.key) for charge in charges]
            args: list[int] = [len(batch), *batch.values()]
            for charge in charges:
                args += [charge.amount, charge.limit, charge.ttl]
            return [int(i) for i in _run_script(client, RESERVE, keys, args)], bool(batch)
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

    def attempt() -> Any:
        return cache_op(
            "quota reserve",
            lambda cache: _reserve_in(cache, charges),
            default=_UNAVAILABLE,
            budget=max(conf.CACHE_BUDGET, RESERVE_BUDGET),
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
        _run_script(client, ADJUST, keys, [delta for _, delta in changes])
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
