"""Daily cost per feature, model or user: from the database (one GROUP BY) or
from the ``django_claude.calls`` log lines, with the same numbers either way."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django_claude.costs.days import day_bounds, line_day, resolve_tz
from django_claude.costs.totals import (
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

    @property
    def total(self) -> CostRow:
        total = CostRow(key="TOTAL")
        for row in self.rows:
            for name in CostRow.COUNTS:
                setattr(total, name, getattr(total, name) + getattr(row, name))
            total.cost_usd += row.cost_usd
        return total

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"date": self.since.isoformat()}
        if self.until != self.since:
            data["until"] = self.until.isoformat()
        data.update(
            timezone=self.timezone,
            by=self.by,
            rows=[row.as_json(self.by) for row in self.rows],
            total_cost_usd=format_cost(self.total.cost_usd),
        )
        return data


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
) -> CostReport:
    """The report for ``since``..``until`` (inclusive), grouped in the database,
    most expensive first. Raises ``ValueError`` for an unknown ``by`` or ``tz``."""
    column = _grouping(by)
    until = until or since
    zone = resolve_tz(tz)
    start, end = day_bounds(since, until, zone)
    percentiles = database_has_percentiles()
    grouped = (
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values(column)
        .annotate(**aggregates(percentiles=percentiles))
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
    )


def cost_report_from_lines(
    lines: Iterable[Mapping[str, Any]],
    *,
    since: datetime.date,
    until: datetime.date | None = None,
    by: str = "feature",
    tz: str | None = None,
) -> CostReport:
    """The same report computed from ``django_claude.calls`` log lines."""
    column = _grouping(by)
    until = until or since
    zone = resolve_tz(tz)
    groups: dict[str, LineTotals] = {}
    for line in lines:
        if not since <= line_day(line, zone) <= until:
            continue
        key = str(line.get(column) or "")
        groups.setdefault(key, LineTotals(CostRow(key=key))).add(line)
    return CostReport(
        since=since,
        until=until,
        timezone=str(zone),
        by=by,
        source="log",
        rows=_by_cost(totals.finish() for totals in groups.values()),
    )
