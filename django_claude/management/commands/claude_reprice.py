"""Price calls that were recorded unpriced, once their model has a price."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.costs.days import parse_day
from django_claude.costs.repricing import reprice
from django_claude.management.options import check_tz


class Command(BaseCommand):
    help = (
        "Price calls recorded with no cost since --since whose model now has a price "
        "(a ModelPrice, or a list price in an upgraded genai-prices), and re-save the "
        "DailyCost rows of the days they fall on."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--since", required=True, help="YYYY-MM-DD")
        parser.add_argument("--tz", help="time zone of the days (default: TIME_ZONE)")

    def handle(self, *args: Any, since: str, tz: str | None, **options: Any) -> None:
        try:
            first = parse_day(since)
        except ValueError as exc:
            raise CommandError(f"--since: {exc}") from None
        check_tz(tz)
        summary = reprice(since=first, tz=tz)
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.repriced} calls priced, {summary.still_unpriced} still without a "
                f"price; DailyCost re-saved for {len(summary.days)} days"
            )
        )
