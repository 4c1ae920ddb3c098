"""Read ``django_claude.calls`` JSON lines back from log files.

A log line may be bare JSON, or JSON after a formatter's prefix (a timestamp,
a level); lines of other loggers are skipped and corrupt lines counted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.db import transaction

from django_claude.models import CallRecord
from django_claude.recording.facts import record_from_line

CALL_EVENTS = frozenset({"claude.call", "claude.error"})


@dataclass
class ReadStats:
    lines: int = 0
    skipped: int = 0
    corrupt: int = 0
    corrupt_at: list[tuple[str, int]] = field(default_factory=list)


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_call_lines(
    paths: Iterable[str], stats: ReadStats | None = None
) -> Iterator[dict[str, Any]]:
    """Yield each call log line as a dict."""
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        with _open(path) as handle:
            for number, raw in enumerate(handle, start=1):
                stats.lines += 1
                start = raw.find("{")
                if start < 0 or '"claude.' not in raw:
                    stats.skipped += 1
                    continue
                try:
                    line = json.loads(raw[start:])
                except ValueError:
                    stats.corrupt += 1
                    stats.corrupt_at.append((path, number))
                    continue
                if not isinstance(line, dict) or line.get("event") not in CALL_EVENTS:
                    stats.skipped += 1
                    continue
                if "request_id" not in line or "created_at" not in line:
                    stats.corrupt += 1
                    stats.corrupt_at.append((path, number))
                    continue
                yield line


@dataclass
class IngestSummary(ReadStats):
    created: int = 0
    existing: int = 0


def ingest(paths: Iterable[str], *, batch_size: int = 1000) -> IngestSummary:
    """Create the CallRecords the log lines describe and the database lacks."""

    summary = IngestSummary()
    batch: list[CallRecord] = []

    def flush() -> None:
        ids = [record.id for record in batch]
        present = set(CallRecord.objects.filter(id__in=ids).values_list("id", flat=True))
        new = {record.id: record for record in batch if record.id not in present}
        with transaction.atomic():
            CallRecord.objects.bulk_create(new.values(), ignore_conflicts=True)
        summary.created += len(new)
        summary.existing += len(batch) - len(new)
        batch.clear()

    for line in read_call_lines(paths, summary):
        try:
            batch.append(record_from_line(line))
        except (KeyError, TypeError, ValueError):
            summary.corrupt += 1
            continue
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary
