"""The totals of a group of calls (a feature, a model, a user, a day), the same
whether they are aggregated by the database or added up from log lines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, DecimalField, FloatField, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from django_claude.querysets import JUDGED
from django_claude.types import Outcome, SmellVerdict

COST_PLACES = Decimal("1e-10")
PART_FIELD = DecimalField(max_digits=18, decimal_places=10)


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


# The parts of a cost: those ``CallRecord.cost_breakdown`` names (priced
# when the call ends), then code execution's share of the day's container
# hours (``code_execution_usd``, given by claude_reconcile). "other" is what
# they leave of the cost (calls recorded before breakdowns, rounding).
BREAKDOWN_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "tools")
BREAKDOWN_PARTS = (*BREAKDOWN_KEYS, "code_execution")


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
    web_search_requests: int = 0
    tool_cost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0
    fallback_calls: int = 0
    degraded_calls: int = 0
    error_calls: int = 0
    limited_calls: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_avg_ms: float | None = None
    cached_calls: int = 0
    smell_passed: int = 0
    smell_judged: int = 0
    # USD per part (BREAKDOWN_PARTS), when the report was asked for it.
    breakdown: dict[str, Decimal] | None = None

    # Counted for the dashboard's rollups, not printed in the report.
    EXTRA_COUNTS = ("cached_calls", "smell_passed", "smell_judged")
    COUNTS = (
        "calls",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "web_search_requests",
        "unpriced_calls",
        "fallback_calls",
        "degraded_calls",
        "error_calls",
        "limited_calls",
    )
    AMOUNTS = ("cost_usd", "tool_cost_usd")

    def add(self, other: CostRow) -> None:
        """Add ``other``'s counts and amounts (not its latency) to this row."""
        for name in (*self.COUNTS, *self.EXTRA_COUNTS):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in self.AMOUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.breakdown is not None:
            mine = self.breakdown if self.breakdown is not None else {}
            for part, value in other.breakdown.items():
                mine[part] = mine.get(part, Decimal(0)) + value
            self.breakdown = mine

    def breakdown_with_other(self) -> dict[str, Decimal]:
        """The breakdown's parts and "other", which is what they leave of the cost."""
        parts = {part: (self.breakdown or {}).get(part, Decimal(0)) for part in BREAKDOWN_PARTS}
        parts["other"] = self.cost_usd - sum(parts.values(), Decimal(0))
        return {part: value.quantize(COST_PLACES) for part, value in parts.items()}

    def as_json(self, by: str) -> dict[str, Any]:
        data: dict[str, Any] = {by: self.key}
        for name in self.COUNTS[:5]:
            data[name] = getattr(self, name)
        data["cost_usd"] = format_cost(self.cost_usd)
        data["web_search_requests"] = self.web_search_requests
        data["tool_cost_usd"] = format_cost(self.tool_cost_usd)
        for name in self.COUNTS[6:]:
            data[name] = getattr(self, name)
        if self.breakdown is not None:
            data["cost_breakdown"] = {
                part: format_cost(value) for part, value in self.breakdown_with_other().items()
            }
        return data


# -- from the database ---------------------------------------------------------------------


def aggregates(
    *, percentiles: bool, for_rollup: bool = False, breakdown: bool = False
) -> dict[str, Any]:
    """Aggregates named ``agg_<CostRow field>`` (a name may not shadow a column),
    for ``.annotate()`` on CallRecords grouped with ``.values()``. With
    ``breakdown``, also ``agg_part_<part>``: the cost breakdown's parts, summed
    from the JSON field (outside the covering index, so slower)."""
    named: dict[str, Any] = {
        "calls": Count("*"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cache_read_input_tokens": Sum("cache_read_input_tokens"),
        "cache_creation_input_tokens": Sum("cache_creation_input_tokens"),
        "cost_usd": Sum("cost_usd"),
        "web_search_requests": Sum("web_search_requests"),
        "tool_cost_usd": Sum("tool_cost_usd"),
        "unpriced_calls": Count("created_at", filter=Q(cost_usd__isnull=True) & ~Q(model="")),
        "fallback_calls": Count("created_at", filter=Q(outcome=Outcome.FALLBACK)),
        "degraded_calls": Count("created_at", filter=Q(outcome=Outcome.DEGRADED)),
        "error_calls": Count("created_at", filter=Q(outcome=Outcome.ERROR)),
        "limited_calls": Count("created_at", filter=Q(outcome=Outcome.LIMITED)),
        "latency_avg_ms": Avg("latency_ms"),
    }
    if for_rollup:
        # The report's own columns all sit in the covering index; these do not.
        named["cached_calls"] = Count("created_at", filter=Q(outcome=Outcome.CACHED))
        named["smell_passed"] = Count("created_at", filter=Q(smell_verdict=SmellVerdict.PASS))
        named["smell_judged"] = Count("created_at", filter=Q(smell_verdict__in=JUDGED))
    if breakdown:
        for part in BREAKDOWN_KEYS:
            named[f"part_{part}"] = Sum(Cast(KeyTextTransform(part, "cost_breakdown"), PART_FIELD))
        # Shared out after the call (its own column), and in the cost once priced.
        named["part_code_execution"] = Sum("code_execution_usd", filter=Q(cost_usd__isnull=False))
    if percentiles:
        named["latency_p50_ms"] = Percentile("latency_ms", 0.5)
        named["latency_p95_ms"] = Percentile("latency_ms", 0.95)
    return {f"agg_{name}": aggregate for name, aggregate in named.items()}


def row_from_aggregates(key: str, values: Mapping[str, Any]) -> CostRow:
    """The CostRow of one group of ``aggregates()`` results."""
    row = CostRow(key=key)
    for name in (*CostRow.COUNTS, *CostRow.EXTRA_COUNTS):
        setattr(row, name, int(values.get(f"agg_{name}") or 0))
    for name in CostRow.AMOUNTS:
        setattr(row, name, Decimal(values.get(f"agg_{name}") or 0).quantize(COST_PLACES))
    if "agg_part_input" in values:
        row.breakdown = {
            part: Decimal(values.get(f"agg_part_{part}") or 0) for part in BREAKDOWN_PARTS
        }
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


def _amount(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value} is not a number")
    amount = Decimal(str(value))
    if not amount.is_finite():
        raise ValueError(f"{name}: {amount} is not a number")
    return amount


@dataclass
class LineTotals:
    """Adds up ``django_claude.calls`` log lines into one CostRow."""

    row: CostRow
    latencies: list[float] = field(default_factory=list)
    breakdown: bool = False  # add up the cost breakdown's parts too

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
        cost = _amount(line.get("cost_usd"), "cost_usd")
        parts = line.get("cost_breakdown") or {}
        if not isinstance(parts, Mapping):
            raise ValueError("cost_breakdown is not an object")
        amounts = {part: _amount(parts.get(part), part) or Decimal(0) for part in BREAKDOWN_PARTS}
        latency = float(line.get("latency_ms") or 0)
        if not (math.isfinite(latency) and latency >= 0):
            raise ValueError(f"latency_ms: {latency} is not a duration")
        searches = _count(line, "web_search_requests")
        row = self.row
        row.calls += 1
        for name, value in tokens.items():
            setattr(row, name, getattr(row, name) + value)
        row.web_search_requests += searches
        if cost is not None:
            row.cost_usd += cost
            row.tool_cost_usd += amounts["tools"]
            if self.breakdown:
                whole = row.breakdown if row.breakdown is not None else {}
                for part, amount in amounts.items():
                    whole[part] = whole.get(part, Decimal(0)) + amount
                row.breakdown = whole
        elif line.get("model"):
            row.unpriced_calls += 1
        outcome = line.get("outcome")
        row.fallback_calls += outcome == Outcome.FALLBACK
        row.degraded_calls += outcome == Outcome.DEGRADED
        row.error_calls += outcome == Outcome.ERROR
        row.limited_calls += outcome == Outcome.LIMITED
        row.cached_calls += outcome == Outcome.CACHED
        verdict = line.get("smell_verdict")
        row.smell_passed += verdict == SmellVerdict.PASS
        row.smell_judged += verdict in JUDGED
        self.latencies.append(latency)

    def finish(self) -> CostRow:
        """The row, its cost rounded and its latency percentiles computed."""
        self.row.cost_usd = self.row.cost_usd.quantize(COST_PLACES)
        self.row.tool_cost_usd = self.row.tool_cost_usd.quantize(COST_PLACES)
        if self.breakdown and self.row.breakdown is None:
            self.row.breakdown = {}
        self.row.latency_p50_ms = percentile_cont(self.latencies, 0.5)
        self.row.latency_p95_ms = percentile_cont(self.latencies, 0.95)
        if self.latencies:
            self.row.latency_avg_ms = sum(self.latencies) / len(self.latencies)
        return self.row
