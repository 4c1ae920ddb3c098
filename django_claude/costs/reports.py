"""Daily cost per feature, model or user: from the database (one GROUP BY) or
from the ``django_claude.calls`` log lines, with the same numbers either way."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django_claude.costs.days import day_bounds, line_day, resolve_tz
from django_claude.costs.totals import (
    LINE_ERRORS,
    CostRow,
    LineTotals,
    aggregates,
    database_has_percentiles,
    format_cost,
    row_from_aggregates,
)
from django_claude.models import CallRecord

GROUPINGS = {"feature": "feature", "model": "model", "user": "user_ref"}


@dataclass
class CostReport:
    since: datetime.date
    until: datetime.date
    timezone: str
    by: str
    source: str  # "database" or "log"
    rows: list[CostRow] = field(default_factory=list)
    corrupt_lines: int = 0
    latency: str = "percentiles"  # or "average" where the database has no percentile
    breakdown: bool = False  # rows carry their cost breakdown

    @property
    def total(self) -> CostRow:
        total = CostRow(key="TOTAL", breakdown={} if self.breakdown else None)
        for row in self.rows:
            total.add(row)
        return total

    def as_csv(self) -> list[dict[str, Any]]:
        """One dict per row for ``csv.DictWriter``, keys in column order.

        Only the group's name (a feature, model or user someone chose) is text
        from outside, so only it is made inert (``inert_csv_text``); the other
        cells are counts and costs the app formatted itself, left as numbers a
        spreadsheet can add up, even a negative one.
        """
        rows = []
        for row in self.rows:
            data = row.as_json(self.by)
            data[self.by] = inert_csv_text(row.key)
            for part, value in data.pop("cost_breakdown", {}).items():
                data[f"{part}_cost_usd"] = value
            rows.append(data)
        return rows

    def csv_header(self) -> list[str]:
        """The CSV's columns: ``as_csv``'s keys, also when there are no rows."""
        sample = CostRow(key="", breakdown={} if self.breakdown else None)
        header = list(sample.as_json(self.by))
        if header[-1] == "cost_breakdown":
            header[-1:] = [f"{part}_cost_usd" for part in sample.breakdown_with_other()]
        return header

    def as_json(self) -> dict[str, Any]:
        total = self.total
        data: dict[str, Any] = {"date": self.since.isoformat()}
        if self.until != self.since:
            data["until"] = self.until.isoformat()
        data.update(
            timezone=self.timezone,
            by=self.by,
            rows=[row.as_json(self.by) for row in self.rows],
            total_cost_usd=format_cost(total.cost_usd),
            total_tool_cost_usd=format_cost(total.tool_cost_usd),
        )
        if self.breakdown:
            data["total_cost_breakdown"] = {
                part: format_cost(value) for part, value in total.breakdown_with_other().items()
            }
        return data


# A spreadsheet reads a cell that starts with one of these as a formula
# (OWASP's CSV injection list, plus the full-width forms some locales accept).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def inert_csv_text(text: str) -> str:
    """``text`` for a CSV cell that a spreadsheet shows as text: one that
    starts like a formula (``=HYPERLINK(...)``) gets a leading ``'``."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _by_cost(rows: Iterable[CostRow]) -> list[CostRow]:
    return sorted(rows, key=lambda r: (-r.cost_usd, r.key))


def _grouping(by: str) -> str:
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    return GROUPINGS[by]


def cost_report(
    *,
    since: datetime.date,
    until: datetime.date | None = None,
    by: str = "feature",
    tz: str | None = None,
    breakdown: bool = False,
) -> CostReport:
    """The report for ``since``..``until`` (inclusive), grouped in the database,
    most expensive first; with ``breakdown``, each row's cost split into input,
    output, cache reads, 5-minute and 1-hour writes, tools and other. Raises
    ``ValueError`` for an unknown ``by`` or ``tz``."""
    column = _grouping(by)
    until = until or since
    zone = resolve_tz(tz)
    start, end = day_bounds(since, until, zone)
    percentiles = database_has_percentiles()
    grouped = (
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values(column)
        .annotate(**aggregates(percentiles=percentiles, breakdown=breakdown))
        .order_by(column)
    )
    return CostReport(
        since=since,
        until=until,
        timezone=str(zone),
        by=by,
        source="database",
        rows=_by_cost(row_from_aggregates(str(values[column]), values) for values in grouped),
        latency="percentiles" if percentiles else "average",
        breakdown=breakdown,
    )


def cost_report_from_lines(
    lines: Iterable[Mapping[str, Any]],
    *,
    since: datetime.date,
    until: datetime.date | None = None,
    by: str = "feature",
    tz: str | None = None,
    breakdown: bool = False,
) -> CostReport:
    """The same report computed from ``django_claude.calls`` log lines.

    A line whose time, counts or cost cannot be read is left out and counted
    in ``corrupt_lines``. Raises ``ValueError`` for an unknown ``by`` or ``tz``.
    """
    column = _grouping(by)
    until = until or since
    zone = resolve_tz(tz)
    groups: dict[str, LineTotals] = {}
    corrupt = 0
    for line in lines:
        try:
            if not since <= line_day(line, zone) <= until:
                continue
            key = str(line.get(column) or "")
            totals = groups.get(key) or LineTotals(CostRow(key=key), breakdown=breakdown)
            totals.add(line)  # first, so a line it cannot add leaves no empty group
            groups[key] = totals
        except LINE_ERRORS:
            corrupt += 1
    return CostReport(
        since=since,
        until=until,
        timezone=str(zone),
        by=by,
        source="log",
        rows=_by_cost(totals.finish() for totals in groups.values()),
        corrupt_lines=corrupt,
        breakdown=breakdown,
    )
