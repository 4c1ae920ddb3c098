"""Cost per feature, model or user for a day or a range, from the database or logs."""

from __future__ import annotations

import csv
import datetime
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.costs import reports, rollups
from django_claude.costs.days import resolve_tz, yesterday
from django_claude.costs.reports import CostReport
from django_claude.costs.totals import CostRow
from django_claude.recording import logfiles


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = (
        "Daily cost per feature (or model, or user): calls, tokens, cost, unpriced "
        "calls, fallbacks, degraded and failed calls. Yesterday in the site's time zone "
        "by default. --from-log computes it from django_claude.calls log lines instead "
        "of the database; --save stores DailyCost rows."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--date", help="one day, YYYY-MM-DD (default: yesterday)")
        parser.add_argument("--since", help="first day of a range, YYYY-MM-DD")
        parser.add_argument("--until", help="last day of a range (default: --since)")
        parser.add_argument("--by", choices=sorted(reports.GROUPINGS), default="feature")
        parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
        parser.add_argument("--tz", help="time zone of the days (default: TIME_ZONE)")
        parser.add_argument("--save", action="store_true", help="upsert DailyCost rows")
        parser.add_argument(
            "--from-log", nargs="+", metavar="FILE", help="read log files (.gz too) instead"
        )

    def handle(
        self,
        *args: Any,
        date: str | None,
        since: str | None,
        until: str | None,
        by: str,
        format: str,  # noqa: A002
        tz: str | None,
        save: bool,
        from_log: list[str] | None,
        **options: Any,
    ) -> None:
        if date and (since or until):
            raise CommandError("use --date, or --since/--until, not both")
        if until and not since:
            raise CommandError("--until needs --since")
        try:
            given = date or since
            first = _date(given) if given else yesterday(tz)
            last = _date(until) if until else first
            resolve_tz(tz)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if last < first:
            raise CommandError("--until is before --since")
        if from_log:
            stats = logfiles.ReadStats()
            try:
                lines = list(logfiles.read_call_lines(from_log, stats))
            except FileNotFoundError as exc:
                raise CommandError(f"no such file: {exc.filename}") from None
            report = reports.cost_report_from_lines(lines, since=first, until=last, by=by, tz=tz)
            report.corrupt_lines = stats.corrupt
            if save:
                rollups.rollup_from_lines(lines, since=first, until=last, tz=tz)
        else:
            report = reports.cost_report(since=first, until=last, by=by, tz=tz)
            if save:
                rollups.rollup_days(since=first, until=last, tz=tz)
        {"table": self._table, "csv": self._csv, "json": self._json}[format](report)
        if report.corrupt_lines:
            self.stderr.write(
                self.style.WARNING(f"{report.corrupt_lines} corrupt log lines were skipped")
            )
        unpriced = report.total.unpriced_calls
        if unpriced:
            self.stderr.write(
                self.style.WARNING(
                    f"{unpriced} calls have no price and are not in the cost: add their "
                    "ModelPrice, then run manage.py claude_reprice"
                )
            )
        if save:
            self.stderr.write(self.style.SUCCESS(f"saved DailyCost rows for {first}..{last}"))

    def _json(self, report: CostReport) -> None:
        self.stdout.write(json.dumps(report.as_json(), indent=2))

    def _csv(self, report: CostReport) -> None:
        rows = [row.as_json(report.by) for row in report.rows]
        header = list(CostRow(key="").as_json(report.by))
        writer = csv.DictWriter(self.stdout, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    def _table(self, report: CostReport) -> None:
        span = (
            str(report.since) if report.since == report.until else f"{report.since}..{report.until}"
        )
        self.stdout.write(
            f"Claude cost by {report.by}, {span} ({report.timezone}), from the {report.source}"
        )
        if report.latency == "percentiles":
            latency_headers = ["p50 ms", "p95 ms"]
        else:
            latency_headers = ["avg ms", ""]
        headers = [
            report.by,
            "calls",
            "input",
            "output",
            "cache read",
            "cache write",
            "cost USD",
            "unpriced",
            "fallback",
            "degraded",
            "errors",
            *latency_headers,
        ]

        def cells(row: CostRow, latency: bool = True) -> list[str]:
            if not latency:
                lat = ["", ""]
            elif report.latency == "percentiles":
                lat = [_ms(row.latency_p50_ms), _ms(row.latency_p95_ms)]
            else:
                lat = [_ms(row.latency_avg_ms), ""]
            return [
                row.key or "(none)",
                str(row.calls),
                str(row.input_tokens),
                str(row.output_tokens),
                str(row.cache_read_input_tokens),
                str(row.cache_creation_input_tokens),
                f"{row.cost_usd:.6f}",
                str(row.unpriced_calls),
                str(row.fallback_calls),
                str(row.degraded_calls),
                str(row.error_calls),
                *lat,
            ]

        table = [cells(row) for row in report.rows]
        total = cells(report.total, latency=False)
        widths = [max(len(h), *(len(r[i]) for r in [*table, total])) for i, h in enumerate(headers)]

        def line(values: list[str]) -> str:
            first, *rest = values
            return "  ".join(
                [
                    first.ljust(widths[0]),
                    *(v.rjust(w) for v, w in zip(rest, widths[1:], strict=True)),
                ]
            ).rstrip()

        self.stdout.write(line(headers))
        self.stdout.write("-" * len(line(headers)))
        for row in table:
            self.stdout.write(line(row))
        self.stdout.write("-" * len(line(headers)))
        self.stdout.write(self.style.SUCCESS(line(total)))
        if not report.rows:
            self.stdout.write("No calls in this period.")


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"
