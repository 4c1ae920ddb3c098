"""Load ``django_claude.calls`` log lines into CallRecords (idempotent by request id)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.recording import logfiles


class Command(BaseCommand):
    help = (
        "Load CallRecords from django_claude.calls JSON log lines (plain or .gz), "
        "e.g. the lines of calls made while the database was down. Records that "
        "already exist are skipped, so running it twice is safe."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="log files (.gz accepted)")
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, files: list[str], batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            summary = logfiles.ingest(files, batch_size=batch_size)
        except FileNotFoundError as exc:
            raise CommandError(f"no such file: {exc.filename}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.created} records created, {summary.existing} already present, "
                f"{summary.skipped} other lines skipped, {summary.corrupt} corrupt lines"
            )
        )
        if summary.corrupt:
            self.stderr.write(
                self.style.WARNING(
                    "corrupt lines (file:line): "
                    + ", ".join(f"{name}:{n}" for name, n in summary.corrupt_at[:20])
                )
            )
