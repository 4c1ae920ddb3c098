"""Bound the caller's wait on a record INSERT that is stuck behind a lock.

On PostgreSQL the row is inserted on the caller's connection (one statement,
no extra round trip). When it has not finished within ``INSERT_BUDGET``
seconds (a locked or stalled table), one daemon thread cancels it with
``pg_cancel_backend`` from its own connection, and only if that backend is
still running an INSERT into the records table; the writer then hands the
row to the background writer. Nothing is paid on the fast path but a dict
entry.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.db import connections

logger = logging.getLogger(__name__)

INSERT_BUDGET = 0.5  # seconds
CANCEL_IF_STILL_OURS = (
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
    "WHERE pid = %s AND state = 'active' AND query LIKE %s"
)


def backend_pid(connection: Any) -> int | None:
    """The server process of a PostgreSQL connection (psycopg 3 or 2), locally known."""
    raw = connection.connection
    info = getattr(raw, "info", None)
    if info is not None:
        return int(info.backend_pid)
    get_pid = getattr(raw, "get_backend_pid", None)
    return int(get_pid()) if get_pid else None


class InsertWatchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: dict[int, tuple[float, str, int, str]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def watch(self, *, alias: str, pid: int, table: str) -> int:
        """Start watching one INSERT; pass the token to ``done`` when it returns."""
        with self._cond:
            self._next += 1
            token = self._next
            self._watched[token] = (time.monotonic() + INSERT_BUDGET, alias, pid, table)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="django-claude-insert-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return token

    def done(self, token: int) -> None:
        with self._cond:
            self._watched.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [t for t, (ends, *_) in self._watched.items() if ends <= now]
                overdue = [self._watched.pop(t) for t in due]
                if not overdue:
                    soonest = min((ends for ends, *_ in self._watched.values()), default=None)
                    self._cond.wait(None if soonest is None else max(0.0, soonest - now))
                    continue
            for _, alias, pid, table in overdue:
                self._cancel(alias, pid, table)

    @staticmethod
    def _cancel(alias: str, pid: int, table: str) -> None:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(CANCEL_IF_STILL_OURS, [pid, f'INSERT INTO "{table}"%'])
        except Exception as exc:
            logger.warning("claude records: could not cancel a stuck insert (%s)", exc)
        finally:
            connections[alias].close()

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's thread does not exist here


watchdog = InsertWatchdog()
os.register_at_fork(after_in_child=watchdog.after_fork)
