"""DailyCost rows: one per day, feature and model, saved from CallRecords or
from log lines. Rerunning a day gives the same rows."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from django_claude.costs.days import day_bounds, line_day, resolve_tz, yesterday
from django_claude.costs.totals import (
    LINE_ERRORS,
    CostRow,
    LineTotals,
    aggregates,
    database_has_percentiles,
    row_from_aggregates,
)
from django_claude.models import CallRecord, DailyCost

# CostRow fields that DailyCost stores.
DAILY_FIELDS = [
    *CostRow.COUNTS,
    *CostRow.EXTRA_COUNTS,
    *CostRow.AMOUNTS,
    "latency_p50_ms",
    "latency_p95_ms",
]


def _save_day(day: datetime.date, rows: dict[tuple[str, str], CostRow]) -> int:
    """Replace the DailyCost rows of ``day`` with ``rows`` (upsert, then prune)."""
    objects = [
        DailyCost(
            day=day, feature=feature, model=model, **{n: getattr(row, n) for n in DAILY_FIELDS}
        )
        for (feature, model), row in rows.items()
    ]
    with transaction.atomic():
        if objects:
            DailyCost.objects.bulk_create(
                objects,
                update_conflicts=True,
                unique_fields=["day", "feature", "model"],
                update_fields=[*DAILY_FIELDS, "computed_at"],
            )
        stale = DailyCost.objects.filter(day=day)
        for feature, model in rows:
            stale = stale.exclude(feature=feature, model=model)
        stale.delete()
    return len(objects)


def rollup_day(day: datetime.date, *, tz: str | None = None) -> int:
    """Save ``day``'s DailyCost rows (per feature and model) from CallRecords.

    Running a day twice gives the same rows. Returns how many rows it has.
    """
    start, end = day_bounds(day, day, resolve_tz(tz))
    grouped = (
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("feature", "model")
        .annotate(**aggregates(percentiles=database_has_percentiles(), for_rollup=True))
        .order_by()
    )
    rows = {
        (values["feature"], values["model"]): row_from_aggregates("", values) for values in grouped
    }
    return _save_day(day, rows)


def rollup_days(*, since: datetime.date, until: datetime.date, tz: str | None = None) -> int:
    """``rollup_day`` for each day from ``since`` to ``until`` (inclusive);
    returns how many rows they have."""
    saved = 0
    day = since
    while day <= until:
        saved += rollup_day(day, tz=tz)
        day += datetime.timedelta(days=1)
    return saved


def rollup_latest(*, day: datetime.date | None = None) -> int:
    """What the nightly task saves: ``day``, or else yesterday and today (site
    time), so the day that just ended is complete and today's rows exist."""
    if day is not None:
        return rollup_day(day)
    last = yesterday()
    return rollup_days(since=last, until=last + datetime.timedelta(days=1))


def rollup_from_lines(
    lines: Iterable[Mapping[str, Any]],
    *,
    since: datetime.date,
    until: datetime.date,
    tz: str | None = None,
) -> int:
    """Save DailyCost rows for each day in the range from log lines; a line
    whose time, counts or cost cannot be read is left out."""
    zone = resolve_tz(tz)
    days: dict[datetime.date, dict[tuple[str, str], LineTotals]] = {}
    for line in lines:
        try:
            day = line_day(line, zone)
            if not since <= day <= until:
                continue
            key = (str(line.get("feature") or ""), str(line.get("model") or ""))
            totals = days.get(day, {}).get(key) or LineTotals(CostRow(key=""))
            totals.add(line)  # first, so a line it cannot add leaves no empty row
            days.setdefault(day, {})[key] = totals
        except LINE_ERRORS:
            continue
    saved = 0
    day = since
    while day <= until:
        saved += _save_day(day, {k: totals.finish() for k, totals in days.get(day, {}).items()})
        day += datetime.timedelta(days=1)
    return saved
