"""Compare recorded costs with Anthropic's bill, per UTC day and model."""

from __future__ import annotations

import datetime
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.conf import conf
from django_claude.costs.days import parse_day
from django_claude.costs.reconcile import ReconcileError, reconcile

MAX_DAYS = 366


class Command(BaseCommand):
    help = (
        "Read Anthropic's cost report (the Usage & Cost Admin API, with "
        "DJANGO_CLAUDE_ADMIN_API_KEY) for --date and the --days before it, compare it per "
        "UTC day and model with the recorded costs, and store the result. A difference "
        "over DJANGO_CLAUDE_RECONCILE_TOLERANCE logs a WARNING, sends reconciliation_drift "
        "and mails the admins. Nothing is written if the API cannot be read."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--date", help="the last UTC day (YYYY-MM-DD, default: yesterday)")
        parser.add_argument("--days", type=int, default=1, help="how many days, ending --date")

    def handle(self, *args: Any, date: str | None, days: int, **options: Any) -> None:
        try:
            last = parse_day(date) if date else _yesterday()
        except ValueError as exc:
            raise CommandError(f"--date: {exc}") from None
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}, not {days}")
        first = last - datetime.timedelta(days=days - 1)
        try:
            lines = reconcile(first, last)
        except ReconcileError as exc:
            raise CommandError(f"nothing reconciled: {exc}") from None
        tolerance = conf.RECONCILE_TOLERANCE
        self.stdout.write(f"{'day':<10}  {'model':<32} {'ours':>14} {'Anthropic':>14} {'diff':>12}")
        for line in lines:
            verdict = "ok" if line.within(tolerance) else "DRIFT"
            note = f"  ({line.unpriced_calls} unpriced calls)" if line.unpriced_calls else ""
            row = (
                f"{line.day}  {line.model:<32} {line.ours:>14.6f} {line.theirs:>14.6f} "
                f"{line.difference:>+12.6f}  {verdict}{note}"
            )
            self.stdout.write(row if verdict == "ok" else self.style.WARNING(row))
        drifts = sum(1 for line in lines if not line.within(tolerance))
        summary = (
            f"{first}..{last}: {len(lines)} day and model rows, {drifts} over the "
            f"{tolerance:%} tolerance"
        )
        self.stdout.write(self.style.WARNING(summary) if drifts else self.style.SUCCESS(summary))


def _yesterday() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
