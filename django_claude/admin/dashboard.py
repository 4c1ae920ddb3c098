"""The numbers behind the admin dashboard: cost, health and quality per day.

Past days come from the ``DailyCost`` rollups; only today (and any past day
that has no rollup yet) is aggregated live from ``CallRecord``, in one GROUP
BY, so the page stays fast on large tables.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from django_claude.costs.days import day_bounds
from django_claude.costs.totals import Percentile
from django_claude.models import (
    CallRecord,
    DailyCost,
    ModelRouteChange,
    Reconciliation,
    SmellBaseline,
)
from django_claude.querysets import JUDGED
from django_claude.recording.clock import local_today
from django_claude.types import Outcome, SmellVerdict

COUNT_FIELDS = (
    "calls",
    "web_search_requests",
    "fallback_calls",
    "degraded_calls",
    "error_calls",
    "cached_calls",
    "limited_calls",
    "unpriced_calls",
    "smell_passed",
    "smell_judged",
)


@dataclass
class DayStats:
    day: datetime.date
    cost_by_feature: dict[str, Decimal] = field(default_factory=dict)
    tool_cost: Decimal = Decimal(0)  # server-tool fees (web search), part of the cost
    calls: int = 0
    web_search_requests: int = 0
    fallback_calls: int = 0
    degraded_calls: int = 0
    error_calls: int = 0
    cached_calls: int = 0
    limited_calls: int = 0
    unpriced_calls: int = 0
    smell_passed: int = 0
    smell_judged: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    _latency_weights: list[tuple[int, float | None, float | None]] = field(default_factory=list)

    @property
    def cost(self) -> Decimal:
        return sum(self.cost_by_feature.values(), Decimal(0))

    @property
    def ok_calls(self) -> int:
        return max(
            0,
            self.calls
            - self.fallback_calls
            - self.degraded_calls
            - self.error_calls
            - self.cached_calls
            - self.limited_calls,
        )

    @property
    def pass_rate(self) -> float | None:
        return 100.0 * self.smell_passed / self.smell_judged if self.smell_judged else None

    def add(self, feature: str, values: dict[str, Any]) -> None:
        cost = Decimal(values.get("cost_usd") or 0)
        self.cost_by_feature[feature] = self.cost_by_feature.get(feature, Decimal(0)) + cost
        self.tool_cost += Decimal(values.get("tool_cost_usd") or 0)
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + int(values.get(name) or 0))
        self._latency_weights.append(
            (
                int(values.get("calls") or 0),
                values.get("latency_p50_ms"),
                values.get("latency_p95_ms"),
            )
        )

    def settle(self) -> None:
        """Latency of the day: the calls-weighted mean of its groups' percentiles."""
        for attr, index in (("latency_p50_ms", 1), ("latency_p95_ms", 2)):
            pairs: list[tuple[int, float]] = [
                (int(w[0]), float(w[index]))  # type: ignore[arg-type]
                for w in self._latency_weights
                if w[index] is not None and w[0]
            ]
            total = sum(weight for weight, _ in pairs)
            value = sum(weight * v for weight, v in pairs) / total if total else None
            setattr(self, attr, value)


@dataclass
class Dashboard:
    since: datetime.date
    until: datetime.date
    feature: str
    days: list[DayStats]
    features: list[str]  # by cost, highest first
    top_features: list[tuple[str, Decimal, int]]
    baseline: float | None
    route_changes: list[ModelRouteChange]
    latency_kind: str  # "percentiles" (PostgreSQL) or "average" (SQLite)
    # claude_reconcile's rows for the period's UTC days, worst drift first
    # (only for all features: Anthropic's bill is not split by feature).
    reconciliations: list[Reconciliation] = field(default_factory=list)

    @property
    def total_cost(self) -> Decimal:
        return sum((d.cost for d in self.days), Decimal(0))

    @property
    def total_tool_cost(self) -> Decimal:
        return sum((d.tool_cost for d in self.days), Decimal(0))

    @property
    def drifting(self) -> list[Reconciliation]:
        return [row for row in self.reconciliations if not row.within_tolerance]

    @property
    def totals(self) -> dict[str, int]:
        return {name: sum(getattr(d, name) for d in self.days) for name in COUNT_FIELDS}

    @property
    def empty(self) -> bool:
        return not any(d.calls for d in self.days)

    @property
    def pass_rate(self) -> float | None:
        totals = self.totals
        if not totals["smell_judged"]:
            return None
        return 100.0 * totals["smell_passed"] / totals["smell_judged"]


def _live(
    days: list[datetime.date], tz: datetime.tzinfo, feature: str
) -> list[tuple[datetime.date, str, dict[str, Any]]]:
    """Aggregate the given days straight from CallRecord (one GROUP BY)."""
    if not days:
        return []
    start, _ = day_bounds(min(days), min(days), tz)
    _, end = day_bounds(max(days), max(days), tz)
    records = CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
    if feature:
        records = records.filter(feature=feature)
    aggregates: dict[str, Any] = {
        "calls": Count("created_at"),
        "cost_usd": Sum("cost_usd"),
        "tool_cost_usd": Sum("tool_cost_usd"),
        "web_search_requests": Sum("web_search_requests"),
        "fallback_calls": Count("created_at", filter=Q(outcome=Outcome.FALLBACK)),
        "degraded_calls": Count("created_at", filter=Q(outcome=Outcome.DEGRADED)),
        "error_calls": Count("created_at", filter=Q(outcome=Outcome.ERROR)),
        "cached_calls": Count("created_at", filter=Q(outcome=Outcome.CACHED)),
        "limited_calls": Count("created_at", filter=Q(outcome=Outcome.LIMITED)),
        "unpriced_calls": Count("created_at", filter=Q(cost_usd__isnull=True) & ~Q(model="")),
        "smell_passed": Count("created_at", filter=Q(smell_verdict=SmellVerdict.PASS)),
        "smell_judged": Count("created_at", filter=Q(smell_verdict__in=JUDGED)),
    }
    if connection.vendor == "postgresql":
        aggregates["latency_p50_ms"] = Percentile("latency_ms", 0.5)
        aggregates["latency_p95_ms"] = Percentile("latency_ms", 0.95)
    else:
        aggregates["latency_p50_ms"] = Avg("latency_ms")
    wanted = set(days)
    rows: Any = (
        records.annotate(local_day=TruncDate("created_at", tzinfo=tz))
        .values("local_day", "feature")
        # Prefixed: an annotation may not shadow a column of the same name.
        .annotate(**{f"agg_{name}": aggregate for name, aggregate in aggregates.items()})
        .order_by()
    )
    return [
        (
            r["local_day"],
            r["feature"],
            {name: r[f"agg_{name}"] for name in aggregates},
        )
        for r in rows
        if r["local_day"] in wanted
    ]


def build_dashboard(
    *, days: int = 14, feature: str = "", today: datetime.date | None = None
) -> Dashboard:
    """The dashboard's numbers for the last ``days`` days (site time), one feature or all."""
    tz = timezone.get_default_timezone()
    today = today or local_today()
    since = today - datetime.timedelta(days=max(1, days) - 1)
    stats = {
        since + datetime.timedelta(days=i): DayStats(since + datetime.timedelta(days=i))
        for i in range(max(1, days))
    }

    rolled = DailyCost.objects.filter(day__gte=since, day__lt=today)
    if feature:
        rolled = rolled.filter(feature=feature)
    rolled_days: set[datetime.date] = set()
    cost_by_feature: dict[str, Decimal] = defaultdict(Decimal)
    calls_by_feature: dict[str, int] = defaultdict(int)
    for row in rolled.values(
        "day",
        "feature",
        "cost_usd",
        "tool_cost_usd",
        "latency_p50_ms",
        "latency_p95_ms",
        *COUNT_FIELDS,
    ):
        rolled_days.add(row["day"])
        stats[row["day"]].add(row["feature"], row)
        calls_by_feature[row["feature"]] += int(row["calls"] or 0)
    for day, feat, values in _live([d for d in stats if d not in rolled_days], tz, feature):
        stats[day].add(feat, values)
        calls_by_feature[feat] += int(values.get("calls") or 0)
    for day_stats in stats.values():
        day_stats.settle()
        for feat, cost in day_stats.cost_by_feature.items():
            cost_by_feature[feat] += cost
    features = sorted(cost_by_feature, key=lambda f: (-cost_by_feature[f], f))

    baseline = None
    if feature:
        latest = SmellBaseline.objects.filter(feature=feature).order_by("-computed_at").first()
        baseline = latest.pass_rate if latest else None
    changes = ModelRouteChange.objects.filter(
        changed_at__date__gte=since, changed_at__date__lte=today
    ).order_by("changed_at")
    if feature:
        changes = changes.filter(feature__in=[feature, ""])
    return Dashboard(
        since=since,
        until=today,
        feature=feature,
        days=list(stats.values()),
        features=features,
        top_features=[(f, cost_by_feature[f], calls_by_feature[f]) for f in features[:10]],
        baseline=baseline,
        route_changes=list(changes.select_related("changed_by", "canary")),
        latency_kind="percentiles" if connection.vendor == "postgresql" else "average",
        reconciliations=[] if feature else _reconciliations(since, today),
    )


def _reconciliations(since: datetime.date, until: datetime.date) -> list[Reconciliation]:
    """The period's reconciliation rows: drift first, then newest day first."""
    rows = Reconciliation.objects.filter(day__gte=since, day__lte=until)
    return sorted(rows, key=lambda r: (r.within_tolerance, -r.day.toordinal(), r.model))
