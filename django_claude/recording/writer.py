"""Writing a ``CallRecord`` outside the caller's transaction, off the request path.

The call's log line is written first and carries every field; then the row
(still unbuilt: the writer's thread makes the ``CallRecord`` from the line)
is queued for a background writer with its own connection, which inserts
whatever has queued meanwhile in one transaction (a group commit: one
commit for many calls, none of them waited for). So a rollback in the
caller never loses the record, a failed insert never breaks the caller's
transaction, and neither the INSERT nor its commit is on the call's path.
``DJANGO_CLAUDE_WRITE_BEHIND = False`` inserts each row before ``call()``
returns instead (outside a transaction; inside one the writer still takes it).

The writer never blocks the caller and never holds more than it can: its
queue is bounded (a row that does not fit is kept in its log line only), a
database outage is one window shared by every queued row (after
``RETRY_FOR`` seconds of failed inserts the rows are given up at once until
an insert succeeds again), a ``fork()``-ed child starts with a writer of its
own, and at exit the queue is drained (for up to 5 s). Every row it cannot
save has a log line with every field, which ``manage.py claude_ingest_log``
loads.

Inside a test's transaction the record is written in it instead, so it rolls
back with the test (``transactions.py``).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from typing import ClassVar

from django.db import (
    OperationalError,
    connections,
    router,
    transaction,
)

from django_claude.conf import conf
from django_claude.models import CallRecord
from django_claude.recording.backlog import Hurry, Outage, Overflow, WriterStats
from django_claude.recording.inserts import INGEST_HINT, After, Inserts, Row, built, run_after
from django_claude.recording.transactions import (
    in_test_transaction,
    under_test_runner,
)
from django_claude.recording.watchdog import backend_pid, watchdog

logger = logging.getLogger(__name__)


def writes_behind(alias: str) -> bool:
    """``DJANGO_CLAUDE_WRITE_BEHIND``, or when unset: yes, but under a test
    runner (a test reads its records right after the call) and on SQLite
    whose transactions are ``DEFERRED`` (Django's default there). There a
    site's own transaction that reads, then writes while the writer commits,
    would fail at once with "database is locked" instead of waiting; with
    ``"OPTIONS": {"transaction_mode": "IMMEDIATE"}`` it waits, and records are
    written behind."""
    setting = conf.WRITE_BEHIND
    if setting is not None:
        return setting
    if under_test_runner():
        return False
    connection = connections[alias]
    if connection.vendor == "sqlite":
        mode = connection.settings_dict.get("OPTIONS", {}).get("transaction_mode")
        return str(mode).upper() in ("IMMEDIATE", "EXCLUSIVE")
    return True


# An insert the watchdog cancelled (or a server-side timeout): the writer takes the row.
WAITED_TOO_LONG = frozenset({"55P03", "57014"})  # lock_not_available, query_canceled


def write_record(row: Row, *, after: After = None, background: bool = False) -> None:
    """Hand ``record`` to the background writer (``DJANGO_CLAUDE_WRITE_BEHIND``
    and no ``after``, ``background``, or the caller is inside its own
    transaction), or save it now; then run ``after`` (once the row exists, or
    could not be saved). Inside a test's transaction it is saved in it.
    Never raises."""
    alias = router.db_for_write(CallRecord)
    connection = connections[alias]
    in_atomic = connection.in_atomic_block
    in_test = in_atomic and in_test_transaction(alias)
    # A follow-up (a sampled call's judge) needs the row now: such calls, 1%
    # by default, are inserted at once, so the judge never waits on the queue
    # and never runs on the writer's thread (an eager Celery judge, a slow
    # receiver of ``call_sampled``, would hold every row behind it).
    behind = background or (after is None and writes_behind(alias))
    if not in_test and (behind or in_atomic):  # (in_atomic: in the caller's transaction)
        _writer.submit(row, alias, after)  # (built by the writer's thread)
        return
    record = built(row)
    if record is None:
        return
    try:
        if in_test:
            # A savepoint keeps a failed insert from poisoning the test's transaction.
            with transaction.atomic(using=alias):
                record.save(force_insert=True, using=alias)
        elif connection.vendor == "postgresql":
            # A locked or stalled table must not hold the caller's answer.
            connection.ensure_connection()
            pid = backend_pid(connection)
            token = (
                watchdog.watch(alias=alias, pid=pid, table=CallRecord._meta.db_table) if pid else 0
            )
            try:
                record.save(force_insert=True, using=alias)
            finally:
                watchdog.done(token)
        else:
            record.save(force_insert=True, using=alias)
    except OperationalError as exc:
        cause = exc.__cause__
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if code not in WAITED_TOO_LONG:
            logger.error(
                "claude record %s not saved (%s); %s", record.id, type(exc).__name__, INGEST_HINT
            )
            run_after(after, record)
            return
        logger.warning("claude record %s: the table is busy, handing it to the writer", record.id)
        _writer.submit(record, alias, after)
        return
    except Exception as exc:  # the database, or a value its backend refused to adapt
        # The type only: the message may quote the value refused.
        logger.error(
            "claude record %s not saved (%s); %s", record.id, type(exc).__name__, INGEST_HINT
        )
    run_after(after, record)


# -- the background writer ---------------------------------------------------------------


class RecordWriter(Inserts):
    """A daemon thread with its own connection that inserts queued records,
    all that have queued since its last insert in one transaction.

    SQLite lets one writer in at a time: while the caller's transaction holds
    the lock the insert is retried, and it lands as soon as the caller commits
    or rolls back.
    """

    MAX_QUEUED = 10_000  # rows waiting at most; more are kept in their log lines only
    BATCH = 500  # rows inserted in one transaction at most
    # After a row arrives the writer waits this long for others to join it:
    # one INSERT and one commit for every call of that window, instead of one
    # each (most of the writer's CPU is per statement, not per row: on
    # PostgreSQL ~87 us a row in batches of 10, ~51 in batches of 60). A
    # flush (or a process stopping) cuts the wait short.
    LINGER = 0.25
    IDLE_CLOSE = 2.0  # seconds without a row before the thread closes its connection and ends

    _instances: ClassVar[weakref.WeakSet[RecordWriter]] = weakref.WeakSet()

    def __init__(self, *, max_queued: int | None = None) -> None:
        self.max_queued = self.MAX_QUEUED if max_queued is None else max_queued
        self._start_fresh()
        RecordWriter._instances.add(self)

    def _start_fresh(self) -> None:
        """Empty state; also a fork()-ed child's: the parent's thread is not
        in the child, its lock may be held there, its queued rows are the
        parent's to write."""
        self._queue: queue.Queue[tuple[Row, str, After]] = queue.Queue(self.max_queued)
        self._lock = threading.Lock()
        self._hurry = Hurry()
        self._thread: threading.Thread | None = None
        self._outages: dict[str, Outage] = {}
        self._overflow = Overflow()
        self.given_up = 0
        self._submitted = 0  # rows queued, ever
        self._written = 0  # of those, written or given up

    def submit(self, row: Row, alias: str, after: After = None) -> None:
        """Queue the row for the writer thread. A full queue keeps it in its log
        line only (``after`` then runs at once). Never blocks, never raises."""
        try:
            self._queue.put_nowait((row, alias, after))
        except queue.Full:
            record = built(row)
            with self._lock:
                first = self._overflow.turned_away()
            if first:
                logger.error(
                    "claude records: the writer's queue is full (%d rows): record %s and the "
                    "ones after it are not saved until it drains; %s",
                    self.max_queued,
                    getattr(record, "id", "?"),
                    INGEST_HINT,
                )
            run_after(after, record)
            return
        with self._lock:
            self._submitted += 1
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, name="django-claude-records", daemon=True
            )
            try:
                self._thread.start()
            except RuntimeError:  # Python 3.12+ at interpreter shutdown: no new threads
                self._thread = None
            else:
                drain_at_exit()
                return
        self._drain_here()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.IDLE_CLOSE)
            except queue.Empty:
                connections.close_all()
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if self._queue.qsize() < self.BATCH - 1:
                self._hurry.linger(self.LINGER)
            self._write_taken([first, *self._take(self.BATCH - 1)])

    def _take(self, most: int) -> list[tuple[Row, str, After]]:
        taken: list[tuple[Row, str, After]] = []
        while len(taken) < most:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return taken

    def _write_taken(self, batch: list[tuple[Row, str, After]]) -> None:
        try:
            self._write_batch(batch)
        finally:
            if self._queue.empty() and under_test_runner():
                # Under a test runner: hold no connection while idle, or
                # the run could not drop its test database.
                connections.close_all()
            with self._lock:
                self._written += len(batch)
                lost = self._overflow.room_again(
                    queued=self._queue.qsize(), capacity=self.max_queued
                )
            if lost:
                logger.warning(
                    "claude records: the writer's queue has room again; %d records were "
                    "not saved, %s",
                    lost,
                    INGEST_HINT,
                )
            for _ in batch:
                self._queue.task_done()

    def _drain_here(self) -> None:
        """Write what is queued in this thread: no writer thread can start
        (interpreter shutdown), or none is left to do it."""
        while batch := self._take(self.BATCH):
            self._write_taken(batch)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued before this call is written (or given
        up), whatever is queued meanwhile; False on timeout."""
        ends = time.monotonic() + timeout
        with self._lock:
            target = self._submitted
        with self._hurry.waiting():
            while self._written < target:
                with self._lock:
                    orphaned = self._thread is None or not self._thread.is_alive()
                if orphaned:
                    self._drain_here()
                if self._written >= target:
                    break
                if time.monotonic() > ends:
                    return False
                time.sleep(0.005)
        return True

    def stats(self) -> WriterStats:
        outages = frozenset(alias for alias, o in list(self._outages.items()) if o.declared)
        return WriterStats(self._queue.qsize(), self._overflow.total, self.given_up, outages)


def _start_fresh_in_child() -> None:
    # Celery prefork and gunicorn --preload fork a parent that may have a
    # writer thread, a held lock and queued rows: none of it is the child's.
    for writer in list(RecordWriter._instances):
        writer._start_fresh()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_start_fresh_in_child)

_writer = RecordWriter()


def flush_records(timeout: float = 10.0) -> bool:
    """Wait until the records of calls made so far are saved (or given up),
    for code that reads a ``CallRecord`` right after its call (a management
    command, a script, a test); False if ``timeout`` seconds were not enough.
    Not inside your own ``atomic()`` on SQLite: the writer waits for its lock."""
    return _writer.flush(timeout)


flush_pending = flush_records  # the name django_claude.testing has always had


def writer_stats() -> WriterStats:
    """The background writer's counts: rows queued, overflowed and given up."""
    return _writer.stats()


EXIT_DRAIN = 5.0  # seconds a stopping process gives its queued rows, in all
_exit_ends: float | None = None


def flush_at_exit() -> None:
    """Drain the queue as the process ends. The exit hooks (atexit, the
    multiprocessing and billiard finalizers) share one ``EXIT_DRAIN``."""
    global _exit_ends
    if _exit_ends is None:
        _exit_ends = time.monotonic() + EXIT_DRAIN
    _writer.flush(max(0.0, _exit_ends - time.monotonic()))


atexit.register(flush_at_exit)
_drains_in: set[int] = set()  # the processes whose exit drains the queue


def drain_at_exit() -> None:
    """Also drain when a worker process of ``multiprocessing`` (uvicorn's
    ``--workers``) or ``billiard`` (Celery's prefork pool) ends: they leave
    with ``os._exit()``, which skips ``atexit`` but runs their finalizers.
    Registered in the process that writes (a forked child's registry starts
    empty)."""
    if os.getpid() in _drains_in:
        return
    _drains_in.add(os.getpid())
    from multiprocessing import util

    util.Finalize(None, flush_at_exit, exitpriority=100)
    try:
        from billiard import util as billiard_util  # Celery's multiprocessing
    except ImportError:
        return
    billiard_util.Finalize(None, flush_at_exit, exitpriority=100)
