"""How the background writer inserts rows: a batch in one transaction, or
one row at a time through an outage window shared by every row queued for
the same database."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
    connections,
    transaction,
)

from django_claude.models import CallRecord
from django_claude.recording.backlog import Outage

logger = logging.getLogger("django_claude.recording.writer")

INGEST_HINT = "their log lines have every field: load them with manage.py claude_ingest_log"

After = Callable[[], None] | None
# A row, or what builds it (from the call's log line): built by the writer
# thread when the row is written behind, off the request path.
Row = CallRecord | Callable[[], CallRecord]


def built(row: Row) -> CallRecord | None:
    """The record, built now if it was handed over unbuilt; None (logged:
    its log line keeps every field) if it cannot be. Never raises."""
    if isinstance(row, CallRecord):
        return row
    try:
        return row()
    except Exception as exc:
        line = row.args[0] if isinstance(row, functools.partial) and row.args else {}
        request_id = line.get("request_id", "?") if isinstance(line, dict) else "?"
        logger.error(
            "claude record %s not built (%s); its log line has every field", request_id, exc
        )
        return None


def run_after(after: After, record: CallRecord | None) -> None:
    """Run a record's follow-up (the smell test's announcement); never raises."""
    if after is None:
        return
    try:
        after()
    except Exception:
        logger.exception("claude record %s: follow-up failed", getattr(record, "id", "?"))


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


class Inserts:
    """The writer thread's inserts (a base of ``RecordWriter``)."""

    RETRY_FOR = 60.0  # seconds of failed inserts before an outage is declared
    PROBE_EVERY = 5.0  # seconds between single attempts during an outage

    _outages: dict[str, Outage]
    given_up: int

    def _write_batch(self, batch: list[tuple[Row, str, After]]) -> None:
        """Insert the batch in one transaction per database (one commit); any
        failure, and then each row is written alone (a duplicate skipped, an
        outage waited out)."""
        by_alias: dict[str, list[tuple[CallRecord, After]]] = {}
        for row, alias, after in batch:
            record = built(row)
            if record is None:
                self.given_up += 1
                continue
            by_alias.setdefault(alias, []).append((record, after))
        for alias, rows in by_alias.items():
            if len(rows) > 1 and self._insert_together(alias, [r for r, _ in rows]):
                for record, after in rows:
                    run_after(after, record)
                continue
            for record, after in rows:
                self._write(record, alias)
                run_after(after, record)

    def _insert_together(self, alias: str, records: list[CallRecord]) -> bool:
        outage = self._outages.setdefault(alias, Outage())
        if outage.declared:
            return False
        try:
            keep_usable(alias)
            with transaction.atomic(using=alias):
                insert_rows(alias, records)
        except Exception:  # a duplicate, a refused row, a failing database: row by row decides
            return False
        return True

    def _write(self, record: CallRecord, alias: str) -> None:
        outage = self._outages.setdefault(alias, Outage())
        delay = 0.005
        while outage.may_attempt(time.monotonic(), probe_every=self.PROBE_EVERY):
            try:
                keep_usable(alias)
                record.save(force_insert=True, using=alias)
            except (IntegrityError, DataError, ProgrammingError, NotSupportedError) as exc:
                # The database answered and refused this row (a duplicate, a value
                # it cannot store): no retry makes it take it, and the rows behind
                # it must not wait.
                self._refused(record, alias, exc)
                outage.succeeded()
                return
            except DatabaseError as exc:  # the connection or the server failing
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

    def _refused(self, record: CallRecord, alias: str, exc: Exception) -> None:
        if isinstance(exc, IntegrityError):
            with contextlib.suppress(DatabaseError):
                if CallRecord.objects.using(alias).filter(pk=record.pk).exists():
                    logger.warning("claude record %s already saved", record.id)
                    return
        self.given_up += 1
        # The type only: a database's message may quote the value it refused.
        logger.error(
            "claude record %s refused by database %r (%s); %s",
            record.id,
            alias,
            type(exc).__name__,
            INGEST_HINT,
        )


def insert_rows(alias: str, records: list[CallRecord]) -> None:
    """Insert ``records`` in the current transaction: on PostgreSQL with
    psycopg 3 by ``COPY`` (a third of the CPU of a multi-row ``INSERT``,
    whose parameters psycopg adapts one by one), elsewhere ``bulk_create``.
    Either way all or none: a refused row fails the whole batch."""
    connection = connections[alias]
    if connection.vendor != "postgresql" or not _psycopg3():
        CallRecord.objects.using(alias).bulk_create(records)
        return
    fields = CallRecord._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    sql = f"COPY {quote(CallRecord._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for record in records:
            # What bulk_create sends for each field, without its SQL compiler.
            copy.write_row(
                [f.get_db_prep_save(f.pre_save(record, True), connection) for f in fields]
            )


def _psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3  # psycopg or psycopg2

    return bool(is_psycopg3)


def keep_usable(alias: str) -> None:
    """Close the writer's connection only if it is broken. Its lifetime is the
    writer's (``IDLE_CLOSE``), not ``CONN_MAX_AGE``, which is about requests:
    at Django's default of 0 the writer would reconnect for every batch."""
    connection = connections[alias]
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
