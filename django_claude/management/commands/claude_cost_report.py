"""Cost per feature, model or user for a day or a range, from the database or logs."""

from __future__ import annotations

import csv
import datetime
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from django_claude.costs import reports, rollups
from django_claude.costs.days import parse_day, yesterday
from django_claude.costs.reports import CostReport
from django_claude.costs.totals import CostRow
from django_claude.management.options import check_tz
from django_claude.recording import logfiles
from django_claude.recording.redaction import escape_controls

# --save writes every day of the range: a typo such as 0026 for 2026 must not
# start a job of seven hundred thousand days.
MAX_SAVE_DAYS = 3660
SHOWN_BAD_LINES = 10
# The table's --breakdown columns (tool fees, code execution's included, have
# their own column already; this one says how much of them is container hours).
BREAKDOWN_HEADERS = {
    "input": "input USD",
    "output": "output USD",
    "cache_read": "read USD",
    "cache_write_5m": "5m write USD",
    "cache_write_1h": "1h write USD",
    "code_execution": "code exec USD",
    "other": "other USD",
}


def _day(option: str, value: str) -> datetime.date:
    try:
        return parse_day(value)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


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
            "--breakdown",
            action="store_true",
            help="split each cost into input, output, cache reads, 5-minute and 1-hour "
            "cache writes, tool fees and other",
        )
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
        breakdown: bool,
        from_log: list[str] | None,
        **options: Any,
    ) -> None:
        if date is not None and (since is not None or until is not None):
            raise CommandError("use --date, or --since/--until, not both")
        if until is not None and since is None:
            raise CommandError("--until needs --since")
        check_tz(tz)
        if date is not None:
            first = last = _day("--date", date)
        elif since is not None:
            first = _day("--since", since)
            last = _day("--until", until) if until is not None else first
        else:
            first = last = yesterday(tz)
        if last < first:
            raise CommandError("--until is before --since")
        if save and (last - first).days >= MAX_SAVE_DAYS:
            raise CommandError(
                f"--save: {(last - first).days + 1} days; save at most {MAX_SAVE_DAYS} at a time"
            )
        stats = logfiles.ReadStats()
        if from_log:
            lines = [
                logfiles.record_values(record)
                for record in logfiles.read_call_records(from_log, stats)
            ]
            for problem in stats.unreadable:
                self.stderr.write(self.style.WARNING(f"--from-log: {problem}"))
            if not stats.files_read:
                raise CommandError(
                    "--from-log: no file could be read ("
                    + "; ".join(f"{p.path}: {p.reason}" for p in stats.unreadable)
                    + ")"
                )
            report = reports.cost_report_from_lines(
                lines, since=first, until=last, by=by, tz=tz, breakdown=breakdown
            )
            report.corrupt_lines += stats.corrupt
            if save:
                rollups.rollup_from_lines(lines, since=first, until=last, tz=tz)
        else:
            report = reports.cost_report(since=first, until=last, by=by, tz=tz, breakdown=breakdown)
            if save:
                rollups.rollup_days(since=first, until=last, tz=tz)
        {"table": self._table, "csv": self._csv, "json": self._json}[format](report)
        if report.corrupt_lines:
            self.stderr.write(
                self.style.WARNING(f"{report.corrupt_lines} corrupt log lines were skipped")
            )
            if from_log:
                _write_bad_lines(self.stderr, stats)
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
        header = report.csv_header()
        # CRLF (RFC 4180): the csv module quotes a cell holding CR or LF only
        # when both are line terminators, so a name with a CR stays one cell.
        writer = csv.DictWriter(self.stdout, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(report.as_csv())  # names made inert; numbers left as numbers

    def _table(self, report: CostReport) -> None:
        above, total, below = _table_lines(report)
        for text in above:
            self.stdout.write(text)
        self.stdout.write(self.style.SUCCESS(total))
        for text in below:
            self.stdout.write(text)


def _table_lines(report: CostReport) -> tuple[list[str], str, list[str]]:
    """The table: the lines above its total, the total, the lines below."""
    span = str(report.since) if report.since == report.until else f"{report.since}..{report.until}"
    title = f"Claude cost by {report.by}, {span} ({report.timezone}), from the {report.source}"
    percentiles = report.latency == "percentiles"
    latency_headers = ["p50 ms", "p95 ms"] if percentiles else ["avg ms", ""]
    headers = [
        report.by,
        "calls",
        "input",
        "output",
        "cache read",
        "cache write",
        "cost USD",
        "searches",
        "tools USD",
        "unpriced",
        "fallback",
        "degraded",
        "errors",
        "limited",
        *latency_headers,
        *(BREAKDOWN_HEADERS.values() if report.breakdown else []),
    ]

    def cells(row: CostRow, latency: bool = True) -> list[str]:
        if not latency:
            lat = ["", ""]
        elif report.latency == "percentiles":
            lat = [_ms(row.latency_p50_ms), _ms(row.latency_p95_ms)]
        else:
            lat = [_ms(row.latency_avg_ms), ""]
        return [
            escape_controls(row.key) or "(none)",  # a name must not drive the terminal
            str(row.calls),
            str(row.input_tokens),
            str(row.output_tokens),
            str(row.cache_read_input_tokens),
            str(row.cache_creation_input_tokens),
            f"{row.cost_usd:.6f}",
            str(row.web_search_requests),
            f"{row.tool_cost_usd:.6f}",
            str(row.unpriced_calls),
            str(row.fallback_calls),
            str(row.degraded_calls),
            str(row.error_calls),
            str(row.limited_calls),
            *lat,
            *(f"{value:.6f}" for value in parts(row)),
        ]

    def parts(row: CostRow) -> list[Any]:
        if not report.breakdown:
            return []
        values = row.breakdown_with_other()
        return [values[part] for part in BREAKDOWN_HEADERS]

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

    rule = "-" * len(line(headers))
    above = [title, line(headers), rule, *(line(row) for row in table), rule]
    return above, line(total), [] if report.rows else ["No calls in this period."]


def _write_bad_lines(stream: OutputWrapper, stats: logfiles.ReadStats) -> None:
    """The first few corrupt lines, one per line, with file and line number."""
    shown = stats.corrupt_at[:SHOWN_BAD_LINES]
    for bad in shown:
        stream.write(f"  {bad}")
    if stats.corrupt > len(shown):
        stream.write(f"  ... and {stats.corrupt - len(shown)} more")


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"
