"""The totals of a group of calls (a feature, a model, a user, a day), the same
whether they are aggregated by the database or added up from log lines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, FloatField, Q, Sum

from django_claude.querysets import JUDGED
from django_claude.types import Outcome, SmellVerdict

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


def database_has_percentiles() -> bool:
    """PostgreSQL computes latency percentiles; elsewhere there is only the average."""
    return connection.vendor == "postgresql"


def format_cost(value: Decimal) -> str:
    return format(Decimal(value).quantize(COST_PLACES), "f")


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


# -- from the database ---------------------------------------------------------------------


def aggregates(*, percentiles: bool, for_rollup: bool = False) -> dict[str, Any]:
    """Aggregates named ``agg_<CostRow field>`` (a name may not shadow a column),
    for ``.annotate()`` on CallRecords grouped with ``.values()``."""
    named: dict[str, Any] = {
        "calls": Count("*"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cache_read_input_tokens": Sum("cache_read_input_tokens"),
        "cache_creation_input_tokens": Sum("cache_creation_input_tokens"),
        "cost_usd": Sum("cost_usd"),
        "unpriced_calls": Count("created_at", filter=Q(cost_usd__isnull=True) & ~Q(model="")),
        "fallback_calls": Count("created_at", filter=Q(outcome=Outcome.FALLBACK)),
        "degraded_calls": Count("created_at", filter=Q(outcome=Outcome.DEGRADED)),
        "error_calls": Count("created_at", filter=Q(outcome=Outcome.ERROR)),
        "latency_avg_ms": Avg("latency_ms"),
    }
    if for_rollup:
        # The report's own columns all sit in the covering index; these do not.
        named["cached_calls"] = Count("created_at", filter=Q(outcome=Outcome.CACHED))
        named["smell_passed"] = Count("created_at", filter=Q(smell_verdict=SmellVerdict.PASS))
        named["smell_judged"] = Count("created_at", filter=Q(smell_verdict__in=JUDGED))
    if percentiles:
        named["latency_p50_ms"] = Percentile("latency_ms", 0.5)
        named["latency_p95_ms"] = Percentile("latency_ms", 0.95)
    return {f"agg_{name}": aggregate for name, aggregate in named.items()}


def row_from_aggregates(key: str, values: Mapping[str, Any]) -> CostRow:
    """The CostRow of one group of ``aggregates()`` results."""
    row = CostRow(key=key)
    for name in (*CostRow.COUNTS, *CostRow.EXTRA_COUNTS):
        setattr(row, name, int(values.get(f"agg_{name}") or 0))
    row.cost_usd = Decimal(values.get("agg_cost_usd") or 0).quantize(COST_PLACES)
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_avg_ms"):
        value = values.get(f"agg_{name}")
        setattr(row, name, None if value is None else float(value))
    return row


# -- from log lines ------------------------------------------------------------------------

# What adding up a garbled line may raise (decimal's InvalidOperation is an ArithmeticError).
LINE_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError)


def _count(line: Mapping[str, Any], name: str) -> int:
    value = line.get(name) or 0
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name}: {value} is not a whole number")
    count = int(value)
    if count < 0:
        raise ValueError(f"{name}: {count} is negative")
    return count


@dataclass
class LineTotals:
    """Adds up ``django_claude.calls`` log lines into one CostRow."""

    row: CostRow
    latencies: list[float] = field(default_factory=list)

    TOKENS = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    )

    def add(self, line: Mapping[str, Any]) -> None:
        """Count ``line`` in the row. Raises one of ``LINE_ERRORS`` (leaving the
        row as it was) for a count, cost or latency that is not a number, or is negative."""
        tokens = {name: _count(line, name) for name in self.TOKENS}
        cost = line.get("cost_usd")
        cost = None if cost is None else Decimal(str(cost))
        if cost is not None and not cost.is_finite():
            raise ValueError(f"cost_usd: {cost} is not a number")
        latency = float(line.get("latency_ms") or 0)
        if not (math.isfinite(latency) and latency >= 0):
            raise ValueError(f"latency_ms: {latency} is not a duration")
        row = self.row
        row.calls += 1
        for name, value in tokens.items():
            setattr(row, name, getattr(row, name) + value)
        if cost is not None:
            row.cost_usd += cost
        elif line.get("model"):
            row.unpriced_calls += 1
        outcome = line.get("outcome")
        row.fallback_calls += outcome == Outcome.FALLBACK
        row.degraded_calls += outcome == Outcome.DEGRADED
        row.error_calls += outcome == Outcome.ERROR
        row.cached_calls += outcome == Outcome.CACHED
        verdict = line.get("smell_verdict")
        row.smell_passed += verdict == SmellVerdict.PASS
        row.smell_judged += verdict in JUDGED
        self.latencies.append(latency)

    def finish(self) -> CostRow:
        """The row, its cost rounded and its latency percentiles computed."""
        self.row.cost_usd = self.row.cost_usd.quantize(COST_PLACES)
        self.row.latency_p50_ms = percentile_cont(self.latencies, 0.5)
        self.row.latency_p95_ms = percentile_cont(self.latencies, 0.95)
        if self.latencies:
            self.row.latency_avg_ms = sum(self.latencies) / len(self.latencies)
        return self.row
