"""How the background writer inserts rows: a batch in one transaction, or
one row at a time through an outage window shared by every row queued for
the same database."""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
    connections,
    models,
    transaction,
)

from django_claude.models import CallRecord
from django_claude.recording.backlog import Outage
from django_claude.recording.clock import as_stored
from django_claude.recording.encoding import json_column_text

logger = logging.getLogger("django_claude.recording.writer")

INGEST_HINT = "their log lines have every field: load them with manage.py claude_ingest_log"

After = Callable[[], None] | None


@dataclass(frozen=True)
class FromLine:
    """A row still in the form of the call's log line: the writer's thread
    makes it (off the request path), and on PostgreSQL copies its values
    without making a ``CallRecord`` at all. ``values_of`` reads and checks a
    line (``rows.line_values``); calling it makes the record."""

    line: Mapping[str, Any]
    values_of: Callable[[Mapping[str, Any]], dict[str, Any]]

    def __call__(self) -> CallRecord:
        return CallRecord(**self.values_of(self.line))


# A row, or what builds it (from the call's log line).
Row = CallRecord | FromLine | Callable[[], CallRecord]
# What a batch inserts: a record, or a line's values by field name.
Ready = CallRecord | dict[str, Any]


def built(row: Row) -> CallRecord | None:
    """The record, built now if it was handed over unbuilt; None (logged:
    its log line keeps every field) if it cannot be. Never raises."""
    if isinstance(row, CallRecord):
        return row
    try:
        return row()
    except Exception as exc:
        _not_built(row, exc)
        return None


def ready(row: Row, *, copy: bool) -> Ready | None:
    """What to insert for ``row``: when ``copy`` (PostgreSQL's COPY), a log
    line's values as they are, else the record; None as for ``built``."""
    if copy and isinstance(row, FromLine):
        try:
            return row.values_of(row.line)
        except Exception as exc:
            _not_built(row, exc)
            return None
    return built(row)


def record_of(item: Ready) -> CallRecord:
    """The record ``item`` is, or makes (a line's values)."""
    return item if isinstance(item, CallRecord) else CallRecord(**item)


def _not_built(row: Row, exc: Exception) -> None:
    line = row.line if isinstance(row, FromLine) else {}
    request_id = line.get("request_id", "?") if isinstance(line, Mapping) else "?"
    logger.error("claude record %s not built (%s); its log line has every field", request_id, exc)


def run_after(after: After, record: Ready | None) -> None:
    """Run a record's follow-up (the smell test's announcement); never raises."""
    if after is None:
        return
    try:
        after()
    except Exception:
        ident = record.get("id", "?") if isinstance(record, dict) else getattr(record, "id", "?")
        logger.exception("claude record %s: follow-up failed", ident)


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
        by_alias: dict[str, list[tuple[Row, After]]] = {}
        for row, alias, after in batch:
            by_alias.setdefault(alias, []).append((row, after))
        for alias, rows in by_alias.items():
            copy = len(rows) > 1 and copies(alias)
            kept: list[tuple[Ready, After]] = []
            for row, after in rows:
                item = ready(row, copy=copy)
                if item is None:
                    self.given_up += 1
                else:
                    kept.append((item, after))
            if len(kept) > 1 and self._insert_together(alias, [item for item, _ in kept]):
                for item, after in kept:
                    run_after(after, item)
                continue
            for item, after in kept:
                record = record_of(item)
                self._write(record, alias)
                run_after(after, record)

    def _insert_together(self, alias: str, records: list[Ready]) -> bool:
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


def insert_rows(alias: str, records: list[Ready]) -> None:
    """Insert ``records`` in the current transaction: on PostgreSQL with
    psycopg 3 by ``COPY`` (a third of the CPU of a multi-row ``INSERT``,
    whose parameters psycopg adapts one by one), elsewhere ``bulk_create``.
    Either way all or none: a refused row fails the whole batch."""
    connection = connections[alias]
    if not copies(alias):
        CallRecord.objects.using(alias).bulk_create([record_of(r) for r in records])
        return
    columns = Columns.of(alias)
    quote = connection.ops.quote_name
    names = ", ".join(quote(str(f.column)) for f in columns.fields)
    sql = f"COPY {quote(CallRecord._meta.db_table)} ({names}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for record in records:
            copy.write_row(
                columns.of_record(record, connection)
                if isinstance(record, CallRecord)
                else columns.of_values(record, connection)
            )


def copies(alias: str) -> bool:
    """Does ``alias`` take rows by COPY (PostgreSQL with psycopg 3)?"""
    return connections[alias].vendor == "postgresql" and _psycopg3()


_PER_ROW = object()  # a default made again for each row


class Columns:
    """Each column's value as ``bulk_create`` sends it, for one database.
    Most of a row is text, whole numbers and flags, which Django's
    ``get_db_prep_save`` returns unchanged: those are copied as they are,
    the rest (JSON, amounts, times, ids) go through it."""

    def __init__(self, alias: str) -> None:
        connection = connections[alias]
        self.fields = CallRecord._meta.concrete_fields
        self.plain = [_unchanged(f) + _kept_here(f, connection) for f in self.fields]
        self.json = [isinstance(f, models.JSONField) for f in self.fields]
        self.defaults = [_default(f, connection) for f in self.fields]

    @classmethod
    @functools.cache
    def of(cls, alias: str) -> Columns:
        return cls(alias)

    def of_record(self, record: CallRecord, connection: Any) -> list[Any]:
        return [f.get_db_prep_save(f.pre_save(record, True), connection) for f in self.fields]

    def of_values(self, values: Mapping[str, Any], connection: Any) -> list[Any]:
        """A row from field values by name (``user_id`` for the user), as
        ``of_record`` makes it from the record they make (no field of a
        ``CallRecord`` sets itself on save, as ``auto_now`` would)."""
        row = []
        columns = zip(self.fields, self.plain, self.json, self.defaults, strict=True)
        for field, plain, json_column, default in columns:
            if field.attname in values:
                value = values[field.attname]
            elif field.name in values:
                value = values[field.name]
            elif default is not _PER_ROW:
                row.append(default)
                continue
            else:
                value = field.get_default()
            if type(value) in plain:
                row.append(value)
            elif (
                json_column
                and type(value) in (dict, list)
                and (text := json_column_text(value)) is not None
            ):
                row.append(text)  # COPY sends text: the server reads it as JSON
            else:
                row.append(field.get_db_prep_save(value, connection))
        return row


def _default(field: models.Field[Any, Any], connection: Any) -> Any:
    if callable(field.default) and field.default not in (dict, list):
        return _PER_ROW
    return field.get_db_prep_save(field.get_default(), connection)


def _unchanged(field: models.Field[Any, Any]) -> tuple[type, ...]:
    """The types of value ``get_db_prep_save`` of ``field`` returns as they
    are (exactly these types: a bool is not a number for this)."""
    if isinstance(field, (models.CharField, models.TextField)):
        return (str,)
    if isinstance(field, models.BooleanField):
        return (bool,)
    if isinstance(field, models.IntegerField):
        return (int,)
    return ()


def _kept_here(field: models.Field[Any, Any], connection: Any) -> tuple[type, ...]:
    """The types of value ``get_db_prep_save`` of ``field`` returns as they are
    on ``connection``, found by trying one of each: on PostgreSQL an amount,
    a UUID, a time and a NULL (psycopg adapts them itself)."""
    samples = (Decimal("1.5"), uuid.UUID(int=1), as_stored(datetime.datetime.now(datetime.UTC)))
    kept: list[type] = []
    for sample in (*samples, None):
        try:
            if field.get_db_prep_save(sample, connection) is sample:
                kept.append(type(sample))
        except Exception:  # not a value this field takes: its own conversion decides
            continue
    return tuple(kept)


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
