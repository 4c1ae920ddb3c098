"""Writing a ``CallRecord`` outside the caller's transaction.

When the caller is inside ``atomic()`` (``ATOMIC_REQUESTS`` included), a
background writer with its own connection inserts the row, so a rollback in
the caller never loses it and a failed insert never breaks the caller's
transaction.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.transaction import TransactionManagementError

from django_claude.models import CallRecord

logger = logging.getLogger(__name__)


def _in_callers_transaction(alias: str) -> bool:
    """True inside an ``atomic()`` the caller opened.

    Inside a test case's own transaction the record is written in it, so it
    rolls back with the test like every other row (the test's atomic blocks
    carry Django's ``_from_testcase`` flag).
    """
    connection = connections[alias]
    if not connection.in_atomic_block:
        return False
    blocks = connection.atomic_blocks
    return not (blocks and getattr(blocks[0], "_from_testcase", False))


def _run_after(after: Callable[[], None] | None, record: CallRecord) -> None:
    if after is None:
        return
    try:
        after()
    except Exception:
        logger.exception("claude record %s: follow-up failed", record.id)


def write_record(
    record: CallRecord, *, after: Callable[[], None] | None = None, background: bool = False
) -> None:
    alias = router.db_for_write(CallRecord)
    if background or _in_callers_transaction(alias):
        _writer.submit(record, alias, after)
        return
    try:
        if connections[alias].in_atomic_block:
            # Only a test case's transaction gets here: a savepoint keeps a
            # failed insert from poisoning it.
            with transaction.atomic(using=alias):
                record.save(force_insert=True, using=alias)
        else:
            record.save(force_insert=True, using=alias)
    except (DatabaseError, TransactionManagementError) as exc:
        logger.error(
            "claude record %s not saved (%s); its log line has every field, "
            "load it later with manage.py claude_ingest_log",
            record.id,
            type(exc).__name__,
        )
    _run_after(after, record)


class _RecordWriter:
    """A daemon thread with its own connection that inserts queued records.

    SQLite lets one writer in at a time: while the caller's transaction holds
    the lock the insert is retried, and it lands as soon as the caller commits
    or rolls back.
    """

    RETRY_FOR = 60.0

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[CallRecord, str, Callable[[], None] | None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(
        self, record: CallRecord, alias: str, after: Callable[[], None] | None = None
    ) -> None:
        self._queue.put((record, alias, after))
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
                self._insert(record, alias)
                _run_after(after, record)
            finally:
                if self._queue.empty():
                    # Idle: hold no connection (a test run could not drop its database).
                    connections.close_all()
                self._queue.task_done()

    def _insert(self, record: CallRecord, alias: str) -> None:
        give_up = time.monotonic() + self.RETRY_FOR
        delay = 0.005
        while True:
            connections[alias].close_if_unusable_or_obsolete()
            try:
                record.save(force_insert=True, using=alias)
                return
            except IntegrityError:
                logger.warning("claude record %s already saved", record.id)
                return
            except DatabaseError as exc:
                if time.monotonic() > give_up:
                    logger.error(
                        "claude record %s not saved (%s); load its log line with "
                        "manage.py claude_ingest_log",
                        record.id,
                        type(exc).__name__,
                    )
                    return
                connections[alias].close()
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written; False on timeout."""
        ends = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > ends:
                return False
            time.sleep(0.005)
        return True


_writer = _RecordWriter()


def flush_pending(timeout: float = 10.0) -> bool:
    """Block until records written from inside a caller's transaction are saved."""
    return _writer.flush(timeout)


atexit.register(flush_pending, 5.0)
