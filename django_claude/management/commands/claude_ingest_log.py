"""Load ``django_claude.calls`` log lines into CallRecords (idempotent by request id)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from django_claude.recording import logfiles
from django_claude.recording.redaction import escape_controls

SHOWN_BAD_LINES = 10


class Command(BaseCommand):
    help = (
        "Load CallRecords from django_claude.calls JSON log lines (plain or .gz), "
        "e.g. the lines of calls made while the database was down. Records that "
        "already exist are skipped, so running it twice is safe. Corrupt lines are "
        "counted and listed (file:line) on stderr, files that cannot be read are "
        "skipped; it fails only when no file could be read."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="log files (.gz accepted)")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help=f"records per insert, 1 to {logfiles.MAX_BATCH_SIZE} (default 1000)",
        )

    def handle(self, *args: Any, files: list[str], batch_size: int, **options: Any) -> None:
        if not 1 <= batch_size <= logfiles.MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {logfiles.MAX_BATCH_SIZE}")
        try:
            summary = logfiles.ingest(files, batch_size=batch_size)
        except DatabaseError as exc:
            # Not a line's fault (the database is down): the batches before it are saved.
            first_line = escape_controls((str(exc).strip().splitlines() or [""])[0], 200)
            raise CommandError(
                f"the database failed ({type(exc).__name__}: {first_line}); "
                "records saved before it are kept, run the command again"
            ) from None
        for problem in summary.unreadable:
            self.stderr.write(self.style.WARNING(str(problem)))
        if not summary.files_read:
            raise CommandError(
                "no file could be read ("
                + "; ".join(f"{p.path}: {p.reason}" for p in summary.unreadable)
                + ")"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.created} records created, {summary.existing} already present, "
                f"{summary.skipped} other lines skipped, {summary.corrupt} corrupt lines"
            )
        )
        if summary.corrupt:
            self.stderr.write(self.style.WARNING(f"{summary.corrupt} corrupt lines (file:line):"))
            shown = summary.corrupt_at[:SHOWN_BAD_LINES]
            for bad in shown:
                self.stderr.write(f"  {bad}")
            if summary.corrupt > len(shown):
                self.stderr.write(f"  ... and {summary.corrupt - len(shown)} more")
