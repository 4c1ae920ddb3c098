"""Read ``django_claude.calls`` JSON lines back from log files.

A log line may be bare JSON, or JSON after a formatter's prefix; lines of other
loggers are skipped. A call line that is not usable (garbled JSON, no request
id or time, a value no column can hold) is counted as corrupt with its file and
line number, and never costs the lines around it. A file that cannot be read
(missing, a directory, no permission, a damaged .gz) is noted and skipped,
keeping whatever was read before the damage.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import json
import math
import re
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, models, transaction
from django.db.backends.base.operations import BaseDatabaseOperations

from django_claude.models import CallRecord
from django_claude.recording.clock import as_stored, aware
from django_claude.recording.redaction import escape_controls
from django_claude.recording.rows import record_from_line

CALL_EVENTS = frozenset({"claude.call", "claude.error"})

# A call line is a few kilobytes: a longer one is not a call, and is read past
# in pieces, never held whole. Only the first KEPT_PROBLEMS bad lines are kept.
MAX_LINE_CHARS = 1_000_000
KEPT_PROBLEMS = 100
REASON_CHARS = 160

# What building or checking one record may raise: the line is corrupt.
LINE_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, ValidationError)
# What the database (or its driver) raises for a row it will not take; anything
# else (the database is down) is no line's fault and propagates.
ROW_ERRORS = (DataError, IntegrityError, ValidationError, ValueError, TypeError, ArithmeticError)
FILE_ERRORS = (OSError, EOFError, zlib.error)  # EOFError: a truncated .gz
FILE_PROBLEMS = (
    (FileNotFoundError, "no such file"),
    (IsADirectoryError, "is a directory"),
    (PermissionError, "permission denied"),
    (EOFError, "truncated compressed data"),
    (gzip.BadGzipFile | zlib.error, "corrupt compressed data"),
)

GZIP_MAGIC = b"\x1f\x8b"


class BadLine(NamedTuple):
    path: str
    number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.number}: {self.reason}"


class UnreadableFile(NamedTuple):
    path: str
    reason: str
    lines_read: int  # lines read before the damage (0: none)

    def __str__(self) -> str:
        if not self.lines_read:
            return f"{self.path}: {self.reason}; skipped"
        return f"{self.path}: {self.reason} after line {self.lines_read}, the lines before kept"


@dataclass
class ReadStats:
    lines: int = 0
    skipped: int = 0
    corrupt: int = 0
    corrupt_at: list[BadLine] = field(default_factory=list)  # the first KEPT_PROBLEMS
    files_read: int = 0  # files read to the end, or partly with at least one line
    unreadable: list[UnreadableFile] = field(default_factory=list)

    def bad_line(self, path: str, number: int, reason: str) -> None:
        self.corrupt += 1
        if len(self.corrupt_at) < KEPT_PROBLEMS:
            self.corrupt_at.append(BadLine(path, number, _printable(reason)))


def _printable(text: str) -> str:
    """Messages echo hostile values: escape control characters, bound the length."""
    return escape_controls(text, REASON_CHARS)


def _open(path: str, stack: contextlib.ExitStack) -> IO[str]:
    """``path`` as text; gzip by its content (a rotated ``.1`` may be compressed too)."""
    raw = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (closed by the stack)
    if raw.peek(2)[:2] == GZIP_MAGIC:
        unzipped = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        return stack.enter_context(io.TextIOWrapper(unzipped, encoding="utf-8", errors="replace"))
    return stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))


def _raw_lines(handle: IO[str]) -> Iterator[str | None]:
    """Each line of ``handle``; None for one longer than MAX_LINE_CHARS."""
    while raw := handle.readline(MAX_LINE_CHARS + 1):
        if len(raw) > MAX_LINE_CHARS and not raw.endswith("\n"):
            while raw and not raw.endswith("\n"):
                raw = handle.readline(MAX_LINE_CHARS)
            yield None
        else:
            yield raw


def _why(exc: BaseException) -> str:
    for kind, problem in FILE_PROBLEMS:
        if isinstance(exc, kind):
            return problem
    return _printable(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


def _call_line(raw: str) -> dict[str, Any] | None:
    """The call line in ``raw``, or None for another logger's line; raises
    ``ValueError`` for a line that mentions a call but is not one."""
    if '"claude.' not in raw:
        return None
    text = raw.strip()
    try:
        line = json.loads(text)
    except (ValueError, RecursionError):
        start = text.find("{")
        if start < 0:
            return None  # no JSON object: prose of another logger
        if start == 0:
            raise ValueError("not valid JSON") from None
        try:
            line = json.loads(text[start:])  # JSON after a formatter's prefix
        except (ValueError, RecursionError):
            raise ValueError("not valid JSON") from None
    if not isinstance(line, dict):
        raise ValueError(f"a JSON {type(line).__name__}, not an object")
    event = line.get("event")
    if not isinstance(event, str) or event not in CALL_EVENTS:
        return None
    for name in ("request_id", "created_at"):
        if line.get(name) in (None, ""):
            raise ValueError(f"no {name}")
    return line


def _numbered_lines(
    paths: Iterable[str], stats: ReadStats
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(path, line number, call line) for each call line of each readable file."""
    for path in paths:
        number = 0
        try:
            with contextlib.ExitStack() as stack:
                handle = _open(path, stack)
                for number, raw in enumerate(_raw_lines(handle), start=1):  # noqa: B007
                    stats.lines += 1
                    if raw is None:
                        stats.bad_line(path, number, f"longer than {MAX_LINE_CHARS} characters")
                        continue
                    try:
                        line = _call_line(raw)
                    except ValueError as exc:
                        stats.bad_line(path, number, str(exc))
                        continue
                    if line is None:
                        stats.skipped += 1
                        continue
                    yield path, number, line
        except FILE_ERRORS as exc:
            stats.unreadable.append(UnreadableFile(path, _why(exc), number))
            if number:
                stats.files_read += 1
        else:
            stats.files_read += 1


def read_call_lines(
    paths: Iterable[str], stats: ReadStats | None = None
) -> Iterator[dict[str, Any]]:
    """Yield each call log line as a dict, as written (values unchecked).

    Other loggers' lines are counted in ``stats.skipped``, garbled ones in
    ``stats.corrupt``, unreadable files in ``stats.unreadable``: nothing raises.
    """
    stats = stats if stats is not None else ReadStats()
    for _, _, line in _numbered_lines(paths, stats):
        yield line


# -- checking a record ------------------------------------------------------------------------

# The narrowest range of each integer column on any supported database (SQLite
# takes 64 bits everywhere, PostgreSQL does not).
_INTEGER_RANGES = BaseDatabaseOperations.integer_field_ranges
_SURROGATE = re.compile("[\ud800-\udfff]")  # unpaired: no database encodes them


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii() and _SURROGATE.search(value):
        return "is not valid Unicode"
    return None


def _json_problem(value: Any) -> str | None:
    """Why PostgreSQL's jsonb or SQLite's JSON_VALID would refuse ``value``, if they would."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds {item}, which JSON cannot"
        if isinstance(item, str) and (problem := _text_problem(item)):
            return f"a string {problem}"
        if isinstance(item, dict):
            pending.extend([*item.keys(), *item.values()])
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif not (item is None or isinstance(item, str | bool | int | float)):
            return f"holds a {type(item).__name__}"
    return None


def _fit(model_field: models.Field[Any, Any], value: Any) -> Any:
    """``value`` as the column stores it; raises ``ValueError`` saying what is wrong."""
    target = model_field.target_field if isinstance(model_field, models.ForeignKey) else model_field
    kind = target.get_internal_type()
    if isinstance(target, models.CharField):
        if not isinstance(value, str):
            raise ValueError(f"{type(value).__name__}, not text")
        if problem := _text_problem(value):
            raise ValueError(problem)
        if target.max_length is not None and len(value) > target.max_length:
            raise ValueError(f"longer than {target.max_length} characters")
        return value
    if isinstance(target, models.JSONField):
        expected = type(model_field.get_default())
        if not isinstance(value, expected):
            raise ValueError(f"{type(value).__name__}, not {expected.__name__}")
        if problem := _json_problem(value):
            raise ValueError(problem)
        return value
    if isinstance(value, bool) and kind in _INTEGER_RANGES:
        raise ValueError("true/false, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a number")
    value = target.to_python(value)
    if kind in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[kind]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low}..{high})")
    elif isinstance(target, models.DecimalField):
        if not value.is_finite():
            raise ValueError(f"{value} is not a number")
        places = target.decimal_places or 0
        bound = Decimal(10) ** ((target.max_digits or 28) - places)
        if abs(value) < bound:  # checked first too: quantize() cannot hold a huge value
            value = value.quantize(Decimal(1).scaleb(-places))
        if abs(value) >= bound:
            raise ValueError(f"out of range (under {bound})")
    elif isinstance(target, models.DateTimeField):
        value = as_stored(value)  # (without time zones: naive local time)
        aware(value).astimezone(datetime.UTC)  # OverflowError at the ends of the calendar
    return value


def check_record(record: CallRecord) -> CallRecord:
    """``record`` with each value as its column stores it (naive times as UTC),
    or ``ValueError`` naming the first field some supported database would not
    store as it is (text too long or with a NUL, a number out of range, NaN in
    JSON): so a line is as good on SQLite, which takes nearly anything, as on
    PostgreSQL."""
    for model_field in CallRecord._meta.concrete_fields:
        value = getattr(record, model_field.attname)
        if value is None and not model_field.null:
            raise ValueError(f"{model_field.name}: missing")
        if value is None:
            continue
        try:
            setattr(record, model_field.attname, _fit(model_field, value))
        except LINE_ERRORS as exc:
            raise ValueError(f"{model_field.name}: {_reason(exc)}") from None
    return record


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no {exc}"
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc) or type(exc).__name__


def _checked_records(
    paths: Iterable[str], stats: ReadStats
) -> Iterator[tuple[str, int, CallRecord]]:
    for path, number, line in _numbered_lines(paths, stats):
        try:
            record = check_record(record_from_line(line))
        except LINE_ERRORS as exc:
            stats.bad_line(path, number, _reason(exc))
            continue
        yield path, number, record


def read_call_records(paths: Iterable[str], stats: ReadStats | None = None) -> Iterator[CallRecord]:
    """Yield an unsaved, checked ``CallRecord`` for each good call line; a line
    ``record_from_line`` or ``check_record`` refuses is counted in ``stats.corrupt``
    (files as by ``read_call_lines``). Nothing raises for a bad line or file."""
    stats = stats if stats is not None else ReadStats()
    for _, _, record in _checked_records(paths, stats):
        yield record


def record_values(record: CallRecord) -> dict[str, Any]:
    """A checked record's values keyed as in a log line: what reports add up."""
    return {f.attname: getattr(record, f.attname) for f in CallRecord._meta.concrete_fields}


# -- ingest ---------------------------------------------------------------------------------

MAX_BATCH_SIZE = 100_000


@dataclass
class IngestSummary(ReadStats):
    created: int = 0
    existing: int = 0


def _present_ids(ids: list[uuid.UUID]) -> set[uuid.UUID]:
    step = connection.features.max_query_params or len(ids) or 1
    chunks = (ids[start : start + step] for start in range(0, len(ids), step))
    return {
        i for c in chunks for i in CallRecord.objects.filter(id__in=c).values_list("id", flat=True)
    }


def _insert(batch: list[tuple[str, int, CallRecord]], summary: IngestSummary) -> None:
    present = _present_ids([record.id for _, _, record in batch])
    new: dict[uuid.UUID, tuple[str, int, CallRecord]] = {}
    for path, number, record in batch:
        if record.id in present or record.id in new:
            summary.existing += 1
        else:
            new[record.id] = (path, number, record)
    if not new:
        return
    with contextlib.suppress(*ROW_ERRORS), transaction.atomic():
        CallRecord.objects.bulk_create([record for _, _, record in new.values()])
        summary.created += len(new)
        return
    # A row the database refused (or one written meanwhile) failed the batch:
    # each row behind its own savepoint now, so only the refused rows are lost.
    with transaction.atomic():
        for path, number, record in new.values():
            try:
                with transaction.atomic():
                    CallRecord.objects.bulk_create([record])
            except ROW_ERRORS as exc:
                if isinstance(exc, IntegrityError) and _present_ids([record.id]):
                    summary.existing += 1  # written by someone else since we looked
                else:
                    summary.bad_line(path, number, f"the database refused it: {_reason(exc)}")
            else:
                summary.created += 1


def ingest(paths: Iterable[str], *, batch_size: int = 1000) -> IngestSummary:
    """Create the CallRecords the log lines describe and the database lacks;
    returns what was created, already present, skipped, corrupt (a row the
    database refuses included: it costs no other row) and unreadable.

    Raises ``ValueError`` for a batch size out of 1..MAX_BATCH_SIZE; a
    ``DatabaseError`` that is no row's fault propagates, earlier batches saved.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"the batch size must be between 1 and {MAX_BATCH_SIZE}")
    summary = IngestSummary()
    batch: list[tuple[str, int, CallRecord]] = []
    for item in _checked_records(paths, summary):
        batch.append(item)
        if len(batch) >= batch_size:
            _insert(batch, summary)
            batch.clear()
    if batch:
        _insert(batch, summary)
    return summary
