"""Price calls that were recorded unpriced, once their model has a price."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import DecimalField, F, Value

from django_claude.costs.days import day_bounds, resolve_tz
from django_claude.costs.rollups import rollup_day
from django_claude.models import CallRecord
from django_claude.recording import pricing

REPRICED_FIELDS = ["cost_usd", "cost_breakdown", "tool_cost_usd"]
AMOUNT = DecimalField(max_digits=18, decimal_places=10)


@dataclass
class RepriceSummary:
    repriced: int
    still_unpriced: int
    days: list[datetime.date]


def reprice(
    *, since: datetime.date, tz: str | None = None, batch_size: int = 1000
) -> RepriceSummary:
    """Price calls recorded unpriced since ``since`` whose model now has a price,
    then re-save the DailyCost rows of the days they fall on.

    Raises ``ValueError`` for an unknown time zone.
    """
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
            web_search_requests=record.web_search_requests,
            web_fetch_requests=record.web_fetch_requests,
            inference_geo=record.inference_geo,
            speed=record.speed,
            service_tier=record.service_tier,
        )
        priced = pricing.price_detail(
            record.model, usage, on=record.created_at.astimezone(datetime.UTC).date()
        )
        if priced is None:
            still += 1
            continue
        # With the code execution fee a reconciliation gave it, read when the
        # row is written (a reconciliation may change it meanwhile).
        share = F("code_execution_usd")
        record.cost_usd = Value(priced.cost, output_field=AMOUNT) + share
        record.tool_cost_usd = Value(priced.tool_cost, output_field=AMOUNT) + share
        record.cost_breakdown = priced.breakdown
        changed.append(record)
        days.add(record.created_at.astimezone(zone).date())
        if len(changed) >= batch_size:
            CallRecord.objects.bulk_update(changed, REPRICED_FIELDS)
            repriced += len(changed)
            changed.clear()
    if changed:
        CallRecord.objects.bulk_update(changed, REPRICED_FIELDS)
        repriced += len(changed)
    for day in sorted(days):
        rollup_day(day, tz=tz)
    return RepriceSummary(repriced=repriced, still_unpriced=still, days=sorted(days))
