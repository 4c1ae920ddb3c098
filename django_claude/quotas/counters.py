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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from django_claude.conf import conf
from django_claude.quotas.here import Sent, parse_answer, reserve_command, timed_redis
from django_claude.quotas.scripts import ADJUST, RESERVE, new_marker, run_script
from django_claude.quotas.settler import Settler
from django_claude.shared_cache import cache_is_local, cache_op, cache_op_here

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
_NOT_HERE = object()
_PENDING = object()


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


def _reserve_on_redis(
    client: Any, make_key: Any, charges: Sequence[Charge], marker: str, batch: dict[str, int]
) -> tuple[list[int], bool]:
    """RESERVE on ``client``, carrying ``batch`` (this process's waiting
    settlements). Raises ``ValueError`` for an answer that is not one."""
    keys, args = reserve_command(make_key, charges, marker, batch)
    return parse_answer(run_script(client, RESERVE, keys, args), len(charges)), bool(batch)


def _send_here(cache: BaseCache, charges: Sequence[Charge], budget: float) -> Any:
    """The reservation sent from the caller's thread (``here``), its answer
    read later; ``_NOT_HERE`` when the cache is not Redis."""
    found = timed_redis(cache, budget, _redis)
    if found is None:
        return _NOT_HERE
    client, make_key = found
    batch = _settler.take()  # written by this round trip (or its cancel)
    marker = cache.make_key(new_marker())  # (ours: valid for any cache, not validated again)
    return Sent(client, make_key, charges, marker, batch, _settler.done, budget).send()


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


class Reserving:
    """A reservation under way: ``result()`` says how it went. On Redis the
    script is sent when this is made and its answer read by ``result``, so
    the round trip overlaps whatever the caller does in between (``admit``
    reads it just before the request goes out); on any other cache it is
    made at once. ``abandon()`` gives up on one that was never read."""

    def __init__(self, charges: Sequence[Charge]) -> None:
        self.charges = charges
        self._landed = _settler.completed
        self._lock = threading.Lock()
        self._sent: Sent | None = None
        self._result: Any = _PENDING
        self._answer = self._begin()

    def _begin(self) -> Any:
        budget = max(conf.CACHE_BUDGET, RESERVE_BUDGET)
        sent = cache_op_here(
            "quota reserve",
            lambda cache: _send_here(cache, self.charges, budget),
            default=_UNAVAILABLE,
        )
        if isinstance(sent, Sent):
            self._sent = sent
            return _PENDING
        if sent is not _NOT_HERE:
            return _UNAVAILABLE

        def give_back(answer: Any) -> None:
            if answer[0] == []:  # charged after all, for a call that was not sent
                adjust([(charge.key, -charge.amount) for charge in self.charges])

        return cache_op(
            "quota reserve",
            lambda cache: _reserve_in(cache, self.charges),
            default=_UNAVAILABLE,
            budget=budget,
            late=give_back,
        )

    def result(self) -> list[int]:
        """[] when every charge was made, else the 1-based indexes of the
        charges that would pass their limits (then none is made). Raises
        ``QuotaStoreUnavailable`` when the cache failed or did not answer in
        time (a reservation it made after that is given back)."""
        with self._lock:
            if self._result is _PENDING:
                try:
                    self._result = self._finish()
                finally:  # an interrupt while reading: the reservation is cancelled
                    if self._result is _PENDING:
                        self._result = _UNAVAILABLE
        if self._result is _UNAVAILABLE:
            raise QuotaStoreUnavailable
        refused: list[int] = self._result
        return refused

    def abandon(self) -> None:
        """Never to be read: a reservation still on its way is cancelled."""
        with self._lock:
            if self._result is _PENDING and self._sent is not None:
                self._sent.abandon()
                self._result = _UNAVAILABLE

    def _finish(self, *, again: bool = True) -> Any:
        answer = self._answer
        sent = self._sent
        if sent is not None:
            try:
                answer = cache_op_here(
                    "quota reserve",
                    lambda _cache: (sent.read(), sent.carried),
                    default=_UNAVAILABLE,
                )
            finally:  # unread (the cache marked down meanwhile, an interrupt): cancelled
                sent.abandon()
        if answer is not _UNAVAILABLE and answer[0]:
            # This process's own settlements may be what filled the quota: let
            # those in flight land, then ask again (never refuse for a refund in
            # flight). Those the refused attempt carried were counted already.
            _settler.drain(RESERVE_BUDGET)
            if again and _settler.completed - self._landed > answer[1]:
                return Reserving(self.charges)._finish(again=False)
        return answer if answer is _UNAVAILABLE else answer[0]


def reserve(charges: Sequence[Charge]) -> list[int]:
    """Charge every counter its amount, or none (``Reserving``, waited for)."""
    if not charges:
        return []
    return Reserving(charges).result()


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
