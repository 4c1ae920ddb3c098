"""Writing a ``CallRecord`` outside the caller's transaction.

When the caller is inside ``atomic()`` (``ATOMIC_REQUESTS`` included), a
background writer with its own connection inserts the row, so a rollback in
the caller never loses it and a failed insert never breaks the caller's
transaction.

The writer never blocks the caller and never holds more than it can: its
queue is bounded (a row that does not fit is kept in its log line only), a
database outage is one window shared by every queued row (after
``RETRY_FOR`` seconds of failed inserts the rows are given up at once until
an insert succeeds again), and a ``fork()``-ed child starts with a writer of
its own. Every row it cannot save has a log line with every field, which
``manage.py claude_ingest_log`` loads.

Inside a test's transaction the record is written in it instead, so it rolls
back with the test: ``records_in_test_transaction()`` says which transaction
that is (the pytest plugin does it for pytest-django's database tests).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar

from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import TransactionManagementError

from django_claude.models import CallRecord
from django_claude.recording.backlog import Outage, Overflow, WriterStats
from django_claude.recording.watchdog import backend_pid, watchdog

logger = logging.getLogger(__name__)

INGEST_HINT = "their log lines have every field: load them with manage.py claude_ingest_log"

After = Callable[[], None] | None

# -- a test's transaction ---------------------------------------------------------

# The connections (of the thread that registered them) whose open transaction
# is a test's. Django has no public way to tell a TestCase's atomic block from
# the caller's own, so the test says so.
_test_transactions: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()


@contextlib.contextmanager
def records_in_test_transaction(*, using: Iterable[str] | None = None) -> Iterator[None]:
    """Treat the transactions open now on this thread's connections (``using``:
    those aliases; default: every connection in an atomic block) as a test's.

    Until the block exits, a record written on such a connection goes into
    that transaction, in a savepoint, so it rolls back with the test, also from
    the test's own nested ``atomic()``. Elsewhere, a record written inside an
    ``atomic()`` goes to the background writer and outlives its rollback.

    The pytest plugin enters it for every pytest-django database test;
    Django's ``TestCase`` transactions are recognised without it.
    """
    if using is None:
        candidates = list(connections.all(initialized_only=True))
    else:
        candidates = [connections[alias] for alias in using]
    marked = [c for c in candidates if c.in_atomic_block and c not in _test_transactions]
    _test_transactions.update(marked)
    try:
        yield
    finally:
        for connection in marked:
            _test_transactions.discard(connection)


def _in_callers_transaction(alias: str) -> bool:
    """True inside an ``atomic()`` the caller opened; False outside any, and
    inside a test's transaction (``records_in_test_transaction``)."""
    connection = connections[alias]
    if not connection.in_atomic_block or connection in _test_transactions:
        return False
    # Django's own TestCase opens its atomic blocks with a private marker and
    # offers no public one; read defensively, it keeps `manage.py test` suites
    # rolling records back with the test without any setup.
    blocks = connection.atomic_blocks
    return not (blocks and getattr(blocks[0], "_from_testcase", False))


def _run_after(after: After, record: CallRecord) -> None:
    if after is None:
        return
    try:
        after()
    except Exception:
        logger.exception("claude record %s: follow-up failed", record.id)


# An insert the watchdog cancelled (or a server-side timeout): the writer takes the row.
WAITED_TOO_LONG = frozenset({"55P03", "57014"})  # lock_not_available, query_canceled


def write_record(record: CallRecord, *, after: After = None, background: bool = False) -> None:
    """Save ``record`` now, or hand it to the background writer when the caller
    is inside its own transaction (or asks for ``background``); then run
    ``after`` (once the row exists, or could not be saved). Never raises."""
    alias = router.db_for_write(CallRecord)
    if background or _in_callers_transaction(alias):
        _writer.submit(record, alias, after)
        return
    connection = connections[alias]
    try:
        if connection.in_atomic_block:
            # Only a test's transaction gets here: a savepoint keeps a failed
            # insert from poisoning it.
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
            _run_after(after, record)
            return
        logger.warning("claude record %s: the table is busy, handing it to the writer", record.id)
        _writer.submit(record, alias, after)
        return
    except (DatabaseError, TransactionManagementError) as exc:
        logger.error(
            "claude record %s not saved (%s); %s", record.id, type(exc).__name__, INGEST_HINT
        )
    _run_after(after, record)


# -- the background writer ---------------------------------------------------------------


def _outage_declared(alias: str, retry_for: float, exc: Exception, record: CallRecord) -> None:
    logger.error(
        "claude records: inserts into database %r have failed for %.0f s (%s): record %s "
        "and every record queued until an insert works again are not saved; %s",
        alias,
        retry_for,
        type(exc).__name__,
        record.id,
        INGEST_HINT,
    )


def _outage_over(alias: str, given_up: int) -> None:
    logger.warning(
        "claude records: inserts into database %r work again; %d records were given up "
        "during the outage, %s",
        alias,
        given_up,
        INGEST_HINT,
    )


class RecordWriter:
    """A daemon thread with its own connection that inserts queued records.

    SQLite lets one writer in at a time: while the caller's transaction holds
    the lock the insert is retried, and it lands as soon as the caller commits
    or rolls back.
    """

    RETRY_FOR = 60.0  # seconds of failed inserts before an outage is declared
    PROBE_EVERY = 5.0  # seconds between single attempts during an outage
    MAX_QUEUED = 10_000  # rows waiting at most; more are kept in their log lines only

    _instances: ClassVar[weakref.WeakSet[RecordWriter]] = weakref.WeakSet()

    def __init__(self, *, max_queued: int | None = None) -> None:
        self.max_queued = self.MAX_QUEUED if max_queued is None else max_queued
        self._start_fresh()
        RecordWriter._instances.add(self)

    def _start_fresh(self) -> None:
        """Empty state; also a fork()-ed child's: the parent's thread is not
        in the child, its lock may be held there, its queued rows are the
        parent's to write."""
        self._queue: queue.Queue[tuple[CallRecord, str, After]] = queue.Queue(self.max_queued)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._outages: dict[str, Outage] = {}
        self._overflow = Overflow()
        self.given_up = 0

    def submit(self, record: CallRecord, alias: str, after: After = None) -> None:
        """Queue the row for the writer thread. A full queue keeps it in its log
        line only (``after`` then runs at once). Never blocks."""
        try:
            self._queue.put_nowait((record, alias, after))
        except queue.Full:
            with self._lock:
                first = self._overflow.turned_away()
            if first:
                logger.error(
                    "claude records: the writer's queue is full (%d rows): record %s and the "
                    "ones after it are not saved until it drains; %s",
                    self.max_queued,
                    record.id,
                    INGEST_HINT,
                )
            _run_after(after, record)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="django-claude-records", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                record, alias, after = self._queue.get(timeout=1.0)
            except queue.Empty:
                connections.close_all()
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._write(record, alias)
                _run_after(after, record)
            finally:
                if self._queue.empty():
                    # Idle: hold no connection (a test run could not drop its database).
                    connections.close_all()
                with self._lock:
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
                self._queue.task_done()

    def _write(self, record: CallRecord, alias: str) -> None:
        outage = self._outages.setdefault(alias, Outage())
        delay = 0.005
        while outage.may_attempt(time.monotonic(), probe_every=self.PROBE_EVERY):
            try:
                connections[alias].close_if_unusable_or_obsolete()
                record.save(force_insert=True, using=alias)
            except IntegrityError:
                logger.warning("claude record %s already saved", record.id)
            except DatabaseError as exc:
                was_declared = outage.declared
                if outage.failed(time.monotonic(), retry_for=self.RETRY_FOR):
                    if not was_declared:
                        _outage_declared(alias, self.RETRY_FOR, exc, record)
                    break
                with contextlib.suppress(DatabaseError):
                    connections[alias].close()
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            except Exception:
                # Not the database failing (a bug, a blocked test): never kill the thread.
                logger.exception("claude record %s not saved; %s", record.id, INGEST_HINT)
                self.given_up += 1
                return
            if given_up := outage.succeeded():
                _outage_over(alias, given_up)
            return
        outage.given_up += 1
        self.given_up += 1
        logger.debug("claude record %s not saved: database %r is down", record.id, alias)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written; False on timeout."""
        ends = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
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


def flush_pending(timeout: float = 10.0) -> bool:
    """Block until records written from inside a caller's transaction are saved."""
    return _writer.flush(timeout)


def writer_stats() -> WriterStats:
    """The background writer's counts: rows queued, overflowed and given up."""
    return _writer.stats()


atexit.register(flush_pending, 5.0)
