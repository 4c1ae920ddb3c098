"""Daily cost per feature, model or user: from the database (one GROUP BY) or
from the ``django_claude.calls`` log lines, with the same numbers either way.

Days are days in the site's ``TIME_ZONE`` (or the one asked for), so a call at
23:59:59.999 and one at 00:00:00 land on the days a person would expect, DST
changes included.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Aggregate, Avg, Count, FloatField, Q, Sum
from django.utils import timezone

from django_claude.models import CallRecord, DailyCost

GROUPINGS = {"feature": "feature", "model": "model", "user": "user_ref"}
COST_PLACES = Decimal("1e-10")


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont(p) WITHIN GROUP (ORDER BY x)``."""

    function = "PERCENTILE_CONT"
    name = "percentile"
    output_field = FloatField()
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, percentile: float, **extra: Any) -> None:
        super().__init__(expression, percentile=float(percentile), **extra)


def percentile_cont(values: list[float], p: float) -> float | None:
    """The same interpolation as PostgreSQL's ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class CostRow:
    """Totals for one group (a feature, a model or a user) over the period."""

    key: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0
    fallback_calls: int = 0
    degraded_calls: int = 0
    error_calls: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_avg_ms: float | None = None
    cached_calls: int = 0
    smell_passed: int = 0
    smell_judged: int = 0

    # Counted for the dashboard's rollups, not printed in the report.
    EXTRA_COUNTS = ("cached_calls", "smell_passed", "smell_judged")
    COUNTS = (
        "calls",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "unpriced_calls",
        "fallback_calls",
        "degraded_calls",
        "error_calls",
    )

    def as_json(self, by: str) -> dict[str, Any]:
        data: dict[str, Any] = {by: self.key}
        for name in self.COUNTS[:5]:
            data[name] = getattr(self, name)
        data["cost_usd"] = format_cost(self.cost_usd)
        for name in self.COUNTS[5:]:
            data[name] = getattr(self, name)
        return data


def format_cost(value: Decimal) -> str:
    return format(Decimal(value).quantize(COST_PLACES), "f")


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


def resolve_tz(name: str | None) -> datetime.tzinfo:
    if not name:
        return timezone.get_default_timezone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def day_bounds(
    since: datetime.date, until: datetime.date, tz: datetime.tzinfo
) -> tuple[datetime.datetime, datetime.datetime]:
    """[since 00:00, the day after until 00:00) in ``tz``, as aware datetimes."""
    start = datetime.datetime.combine(since, datetime.time.min, tzinfo=tz)
    end = datetime.datetime.combine(
        until + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
    )
    return start, end


def _aggregates(with_percentiles: bool, *, for_rollup: bool = False) -> dict[str, Any]:
    """Aggregates named ``agg_<CostRow field>`` (a name may not shadow a column)."""
    aggregates: dict[str, Any] = {
        "calls": Count("*"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cache_read_input_tokens": Sum("cache_read_input_tokens"),
        "cache_creation_input_tokens": Sum("cache_creation_input_tokens"),
        "cost_usd": Sum("cost_usd"),
        "unpriced_calls": Count("created_at", filter=Q(cost_usd__isnull=True) & ~Q(model="")),
        "fallback_calls": Count("created_at", filter=Q(outcome="fallback")),
        "degraded_calls": Count("created_at", filter=Q(outcome="degraded")),
        "error_calls": Count("created_at", filter=Q(outcome="error")),
        "latency_avg_ms": Avg("latency_ms"),
    }
    if for_rollup:
        # The report's own columns all sit in the covering index; these do not.
        aggregates["cached_calls"] = Count("created_at", filter=Q(outcome="cached"))
        aggregates["smell_passed"] = Count("created_at", filter=Q(smell_verdict="pass"))
        aggregates["smell_judged"] = Count(
            "created_at", filter=Q(smell_verdict__in=["pass", "fail"])
        )
    if with_percentiles:
        aggregates["latency_p50_ms"] = Percentile("latency_ms", 0.5)
        aggregates["latency_p95_ms"] = Percentile("latency_ms", 0.95)
    return {f"agg_{name}": aggregate for name, aggregate in aggregates.items()}


def _row(key: str, values: Mapping[str, Any]) -> CostRow:
    row = CostRow(key=key)
    for name in (*CostRow.COUNTS, *CostRow.EXTRA_COUNTS):
        setattr(row, name, int(values.get(f"agg_{name}") or 0))
    row.cost_usd = Decimal(values.get("agg_cost_usd") or 0).quantize(COST_PLACES)
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_avg_ms"):
        value = values.get(f"agg_{name}")
        setattr(row, name, None if value is None else float(value))
    return row


def cost_report(
    *,
    since: datetime.date,
    until: datetime.date | None = None,
    by: str = "feature",
    tz: str | None = None,
) -> CostReport:
    """The report for ``since``..``until`` (inclusive), grouped in the database."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    until = until or since
    zone = resolve_tz(tz)
    start, end = day_bounds(since, until, zone)
    column = GROUPINGS[by]
    percentiles = connection.vendor == "postgresql"
    rows = (
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values(column)
        .annotate(**_aggregates(percentiles))
        .order_by(column)
    )
    report = CostReport(
        since=since,
        until=until,
        timezone=str(zone),
        by=by,
        source="database",
        rows=[_row(str(values[column]), values) for values in rows],
        latency="percentiles" if percentiles else "average",
    )
    report.rows.sort(key=lambda r: (-r.cost_usd, r.key))
    return report


# -- the same numbers from log lines ---------------------------------------------------


@dataclass
class _Accumulator:
    row: CostRow
    latencies: list[float] = field(default_factory=list)

    def add(self, line: Mapping[str, Any]) -> None:
        row = self.row
        row.calls += 1
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            setattr(row, name, getattr(row, name) + int(line.get(name) or 0))
        cost = line.get("cost_usd")
        if cost is not None:
            row.cost_usd += Decimal(str(cost))
        elif line.get("model"):
            row.unpriced_calls += 1
        outcome = line.get("outcome")
        row.fallback_calls += outcome == "fallback"
        row.degraded_calls += outcome == "degraded"
        row.error_calls += outcome == "error"
        row.cached_calls += outcome == "cached"
        verdict = line.get("smell_verdict")
        row.smell_passed += verdict == "pass"
        row.smell_judged += verdict in ("pass", "fail")
        self.latencies.append(float(line.get("latency_ms") or 0))

    def finish(self) -> CostRow:
        self.row.cost_usd = self.row.cost_usd.quantize(COST_PLACES)
        self.row.latency_p50_ms = percentile_cont(self.latencies, 0.5)
        self.row.latency_p95_ms = percentile_cont(self.latencies, 0.95)
        if self.latencies:
            self.row.latency_avg_ms = sum(self.latencies) / len(self.latencies)
        return self.row


def line_day(line: Mapping[str, Any], tz: datetime.tzinfo) -> datetime.date:
    created = datetime.datetime.fromisoformat(str(line["created_at"]))
    if timezone.is_naive(created):
        created = created.replace(tzinfo=datetime.UTC)
    return created.astimezone(tz).date()


def cost_report_from_lines(
    lines: Iterable[Mapping[str, Any]],
    *,
    since: datetime.date,
    until: datetime.date | None = None,
    by: str = "feature",
    tz: str | None = None,
) -> CostReport:
    """The report computed from ``django_claude.calls`` log lines."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    until = until or since
    zone = resolve_tz(tz)
    column = GROUPINGS[by]
    groups: dict[str, _Accumulator] = {}
    for line in lines:
        if not since <= line_day(line, zone) <= until:
            continue
        key = str(line.get(column) or "")
        groups.setdefault(key, _Accumulator(CostRow(key=key))).add(line)
    report = CostReport(
        since=since,
        until=until,
        timezone=str(zone),
        by=by,
        source="log",
        rows=[acc.finish() for acc in groups.values()],
    )
    report.rows.sort(key=lambda r: (-r.cost_usd, r.key))
    return report


# -- rollups -------------------------------------------------------------------------------

# CostRow fields that DailyCost stores.
_DAILY_FIELDS = [
    *CostRow.COUNTS,
    *CostRow.EXTRA_COUNTS,
    "cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
]


def _save_day(day: datetime.date, rows: dict[tuple[str, str], CostRow]) -> int:
    """Replace the DailyCost rows of ``day`` with ``rows`` (upsert, then prune)."""
    objects = [
        DailyCost(
            day=day, feature=feature, model=model, **{n: getattr(row, n) for n in _DAILY_FIELDS}
        )
        for (feature, model), row in rows.items()
    ]
    with transaction.atomic():
        if objects:
            DailyCost.objects.bulk_create(
                objects,
                update_conflicts=True,
                unique_fields=["day", "feature", "model"],
                update_fields=[*_DAILY_FIELDS, "computed_at"],
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
    zone = resolve_tz(tz)
    start, end = day_bounds(day, day, zone)
    grouped = (
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("feature", "model")
        .annotate(**_aggregates(connection.vendor == "postgresql", for_rollup=True))
        .order_by()
    )
    rows = {(values["feature"], values["model"]): _row("", values) for values in grouped}
    return _save_day(day, rows)


def rollup_from_lines(
    lines: Iterable[Mapping[str, Any]],
    *,
    since: datetime.date,
    until: datetime.date,
    tz: str | None = None,
) -> int:
    """Save DailyCost rows for each day in the range from log lines."""
    zone = resolve_tz(tz)
    days: dict[datetime.date, dict[tuple[str, str], _Accumulator]] = {}
    for line in lines:
        day = line_day(line, zone)
        if not since <= day <= until:
            continue
        key = (str(line.get("feature") or ""), str(line.get("model") or ""))
        days.setdefault(day, {}).setdefault(key, _Accumulator(CostRow(key=""))).add(line)
    saved = 0
    day = since
    while day <= until:
        saved += _save_day(day, {k: acc.finish() for k, acc in days.get(day, {}).items()})
        day += datetime.timedelta(days=1)
    return saved


def yesterday(tz: str | None = None) -> datetime.date:
    return timezone.now().astimezone(resolve_tz(tz)).date() - datetime.timedelta(days=1)


@dataclass
class RepriceSummary:
    repriced: int
    still_unpriced: int
    days: list[datetime.date]


def reprice(
    *, since: datetime.date, tz: str | None = None, batch_size: int = 1000
) -> RepriceSummary:
    """Price calls recorded unpriced since ``since`` whose model now has a price,
    then re-save the DailyCost rows of the days they fall on."""
    from django_claude.recording import pricing

    zone = resolve_tz(tz)
    start, _ = day_bounds(since, since, zone)
    pricing.invalidate()
    candidates = CallRecord.objects.unpriced().filter(created_at__gte=start).order_by("created_at")
    changed: list[CallRecord] = []
    days: set[datetime.date] = set()
    repriced = still = 0
    for record in candidates.iterator(chunk_size=batch_size):
        usage = pricing.Usage(
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cache_read_input_tokens=record.cache_read_input_tokens,
            cache_creation_input_tokens=record.cache_creation_input_tokens,
            cache_creation_1h_input_tokens=record.cache_creation_1h_input_tokens,
        )
        cost = pricing.price_call(
            record.model, usage, on=record.created_at.astimezone(datetime.UTC).date()
        )
        if cost is None:
            still += 1
            continue
        record.cost_usd = cost
        changed.append(record)
        days.add(record.created_at.astimezone(zone).date())
        if len(changed) >= batch_size:
            CallRecord.objects.bulk_update(changed, ["cost_usd"])
            repriced += len(changed)
            changed.clear()
    if changed:
        CallRecord.objects.bulk_update(changed, ["cost_usd"])
        repriced += len(changed)
    for day in sorted(days):
        rollup_day(day, tz=tz)
    return RepriceSummary(repriced=repriced, still_unpriced=still, days=sorted(days))
