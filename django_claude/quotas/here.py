"""Reservations on Redis made from the caller's thread, sent now, read later.

The hop to a cache worker thread costs more than the round trip, so a
reservation goes out on a client of its own whose sockets give up after the
reservation's budget and never retry (a retry would send it twice). It is
split in two: ``send`` writes the script on a connection it keeps, and
``Sent.read`` takes the answer, by which time the caller has done other work
(the SDK builds its request meanwhile) and the answer is usually there.

A reservation that failed, timed out, or was never read may still reach
Redis: its marker is cancelled in the background, which undoes its charges
if it landed, or else applies the settlements it carried and keeps it from
ever being made.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache

from django_claude.quotas.scripts import CANCEL, RESERVE, new_marker, run_script, script_of
from django_claude.shared_cache import cache_op_later

if TYPE_CHECKING:
    from django_claude.quotas.counters import Charge

logger = logging.getLogger(__name__)

# How long a reservation's marker lives: longer than any reservation can be
# on its way to Redis after its caller gave up on it.
MARKER_TTL_MS = 30_000
STALE_AFTER = 0.5  # seconds idle after which a kept connection is checked first
CANCEL_TRIES = (0.0, 1.0, 4.0)  # seconds before each try: within the marker's life

# Counter keys as the cache makes them (prefix, version, validation), per
# make_key: a counter's key is the same for every call of its window.
_made_keys: dict[tuple[Any, str], str] = {}


def made_key(make_key: Any, key: str) -> str:
    made = _made_keys.get((make_key, key))
    if made is None:
        if len(_made_keys) > 4096:
            _made_keys.clear()
        made = _made_keys[(make_key, key)] = make_key(key)
    return made


def reserve_command(
    make_key: Any, charges: Sequence[Charge], marker: str, batch: dict[str, int]
) -> tuple[list[str], list[int]]:
    """RESERVE's keys and arguments, carrying ``batch`` (settlements)."""
    keys = [made_key(make_key, key) for key in batch]
    keys += [made_key(make_key, charge.key) for charge in charges]
    args: list[int] = [len(batch), *batch.values()]
    for charge in charges:
        args += [charge.amount, charge.limit, charge.ttl]
    return [*keys, marker], [*args, MARKER_TTL_MS]


def parse_answer(raw: Any, charges: int) -> list[int]:
    """RESERVE's answer: the refused charges' indexes. Raises ``ValueError``
    for an answer that is not one (``-1``: its marker was taken: cancel)."""
    answer = [int(i) for i in raw]
    if any(not 1 <= index <= charges for index in answer):
        raise ValueError(f"RESERVE answered {answer[:3]}")
    return answer


def cancel_later(
    client: Any, make_key: Any, charges: Sequence[Charge], marker: str, batch: dict[str, int]
) -> None:
    """CANCEL the reservation ``marker`` in the background (see the module)."""
    keys = [
        *(made_key(make_key, charge.key) for charge in charges),
        *(made_key(make_key, key) for key in batch),
        marker,
    ]
    args = [len(charges), *(-charge.amount for charge in charges), *batch.values(), MARKER_TTL_MS]
    cache_op_later("quota cancel", lambda _cache: _cancel(client, keys, args), force=True)


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


class Sent:
    """A RESERVE written on a connection of its own, its answer not read yet.
    ``read`` or ``abandon`` ends it, once; ``done`` is called then (the
    settler's batch it carried is written, or given up on)."""

    def __init__(
        self,
        client: Any,
        make_key: Any,
        charges: Sequence[Charge],
        marker: str,
        batch: dict[str, int],
        done: Callable[[], None],
        budget: float,
    ) -> None:
        self.client, self.make_key, self.charges = client, make_key, charges
        self.marker, self.batch, self._done = marker, batch, done
        self.keys, self.args = reserve_command(make_key, charges, marker, batch)
        self.budget, self.until = budget, time.monotonic() + budget
        self.conn: Any = None
        self.reused = False
        self.carried = bool(batch)  # (it answers for the settler's batch)
        self._lock = threading.Lock()
        self._over = False

    def send(self) -> Sent:
        """Write the script (EVALSHA; ``read`` loads it if Redis lacks it)."""
        from redis.exceptions import ConnectionError

        try:
            line = line_of(self.client)
            self.conn, self.reused = line.take()
            try:
                self._write()
            except ConnectionError:
                if not self.reused:
                    raise
                # Redis closed it while it was kept (its idle ``timeout``, a
                # restart): nothing arrived; once more on a new connection.
                line.reset()
                self.reused = False
                self._write()
        except BaseException:
            self.abandon()
            raise
        return self

    def _write(self) -> None:
        sha = script_of(self.client, RESERVE).sha
        packed = _packed("EVALSHA", sha, len(self.keys), *self.keys, *self.args)
        self.conn.send_packed_command([packed])

    def read(self) -> list[int]:
        """The refused charges' indexes ([]: every charge made). Raises when
        Redis does not answer within the budget (counted from the send), or
        not with a RESERVE answer; the reservation is then cancelled."""
        from redis.exceptions import ConnectionError

        with self._lock:
            if self._over:
                raise RuntimeError("this reservation was read or abandoned already")
            self._over = True
        try:
            try:
                raw = self._answer()
            except ConnectionError:
                if not self.reused:
                    raise
                raw = self._again()
            return parse_answer(raw, len(self.charges))
        except BaseException:
            self._drop_connection()
            cancel_later(self.client, self.make_key, self.charges, self.marker, self.batch)
            raise
        finally:
            self._release()

    def _again(self) -> Any:
        """A kept connection Redis had closed (it may or may not have run the
        script): cancel that reservation, which also settles what it carried,
        and make a new one, carrying nothing, on a new connection."""
        cancel_later(self.client, self.make_key, self.charges, self.marker, self.batch)
        line_of(self.client).reset()
        self.conn.disconnect()
        self.reused, self.batch = False, {}
        self.marker = self.make_key(new_marker())
        self.keys, self.args = reserve_command(self.make_key, self.charges, self.marker, {})
        self._write()
        return self._answer()

    def _answer(self) -> Any:
        from redis.exceptions import NoScriptError

        left = self.until - time.monotonic()
        # Read at once (one system call) when the budget is nearly whole: the
        # socket's own timeout (the budget) bounds the wait; else poll first.
        if left < self.budget - 0.01 and not self.conn.can_read(timeout=max(0.0, left)):
            raise TimeoutError("django-claude: the quota reservation's time is up")
        try:
            return self.conn.read_response()
        except NoScriptError:  # nothing ran: load it and run it now
            return run_script(self.client, RESERVE, self.keys, self.args)

    def abandon(self) -> None:
        """Give up on it unread (the call went another way): cancelled in the
        background, in case it landed."""
        with self._lock:
            if self._over:
                return
            self._over = True
        self._drop_connection()
        cancel_later(self.client, self.make_key, self.charges, self.marker, self.batch)
        self._release()

    def _drop_connection(self) -> None:
        if self.conn is not None:  # an answer may still come: not for the next user
            self.conn.disconnect()

    def _release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            line_of(self.client).give(conn)
        if self.carried:
            self._done()


def _packed(*parts: object) -> bytes:
    """A command in Redis's protocol (what redis-py's packer makes, for the
    strings and ints a reservation has, in a third of its time)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else b"%d" % part  # type: ignore[str-format]
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Line:
    """Connections that carry reservations, kept ready between calls:
    taking one from redis-py's pool costs more than the round trip (a poll
    for stale data and its bookkeeping), and these never hold stale data (an
    answer is read, or the connection dropped). At most the pool's
    ``max_connections`` are kept; beyond that the pool lends one."""

    def __init__(self, client: Any) -> None:
        self.pool = client.connection_pool
        self.idle: deque[tuple[Any, float]] = deque()
        self.made = 0
        self.lock = threading.Lock()
        self.borrowed: set[int] = set()
        self.pid = os.getpid()

    def take(self) -> tuple[Any, bool]:
        """A connection, and whether it was kept from an earlier reservation."""
        if self.pid != os.getpid():  # a fork's child: the parent's sockets are not its own
            with self.lock:
                self.idle, self.made, self.pid = deque(), 0, os.getpid()
        try:
            conn, since = self.idle.pop()
        except IndexError:
            pass
        else:
            # Idle a while: Redis may have closed it (its ``timeout``, a restart).
            if time.monotonic() - since > STALE_AFTER and _stale(conn):
                conn.disconnect()  # connects again on the way out
            return conn, True
        with self.lock:
            mine = self.made < (self.pool.max_connections or 2**31)
            if mine:
                self.made += 1
        if mine:
            return self.pool.connection_class(**self.pool.connection_kwargs), False
        try:
            conn = self.pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = self.pool.get_connection("EVALSHA")
        self.borrowed.add(id(conn))
        return conn, False

    def reset(self) -> None:
        """Redis closed a kept connection: it may have closed them all. Each
        idle one is closed here (and connects again when next used)."""
        dropped = []
        while True:
            try:
                dropped.append(self.idle.pop())
            except IndexError:
                break
        for conn, _ in dropped:
            conn.disconnect()
            self.idle.appendleft((conn, time.monotonic()))

    def give(self, conn: Any) -> None:
        if id(conn) in self.borrowed:
            self.borrowed.discard(id(conn))
            self.pool.release(conn)
        else:
            self.idle.append((conn, time.monotonic()))


def _stale(conn: Any) -> bool:
    """Has Redis sent something unasked on ``conn``, or closed it? (One not
    connected is not asked: ``can_read`` would connect it, outside the budget.)"""
    connected = getattr(conn, "is_connected", None)
    if connected is None:  # older redis-py
        connected = getattr(conn, "_sock", None) is not None
    if not connected:
        return False
    try:
        return bool(conn.can_read())
    except Exception:  # closed by the server
        return True


def line_of(client: Any) -> Line:
    line = getattr(client, "_django_claude_line", None)
    if line is None:
        with _timed_lock:
            line = getattr(client, "_django_claude_line", None)
            if line is None:
                line = client._django_claude_line = Line(client)
    return line


def timed_redis(
    cache: BaseCache, budget: float, redis_of: Callable[[BaseCache], tuple[Any, Any] | None]
) -> tuple[Any, Any] | None:
    """``redis_of(cache)`` on a pool of its own whose sockets time out after
    ``budget`` seconds and never retry (a retry would send the reservation
    twice); None when the cache is not Redis (or its pool cannot be copied:
    Sentinel, Cluster)."""
    kept = getattr(cache, "_django_claude_timed", None)
    if kept is not None and kept[0] == budget:
        return kept[1]
    found = redis_of(cache)
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


_timed_lock = threading.Lock()
