"""Which price each model in use is priced by, and where the site's own differ."""

from __future__ import annotations

import datetime
from argparse import ArgumentParser
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.conf import conf
from django_claude.costs.days import parse_day
from django_claude.models import CallRecord, ModelPrice, ModelRoute
from django_claude.recording import catalog, pricing
from django_claude.recording.catalog import Rates

COLUMNS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
HEADINGS = ("input", "output", "5m write", "1h write", "cache read")
RECENT_DAYS = 30


def models_in_use(on: datetime.date) -> list[str]:
    """The settings' models, the routes', those with a site price, and those
    called in the ``RECENT_DAYS`` before ``on``."""
    models = {conf.DEFAULT_MODEL, conf.FALLBACK_MODEL, conf.SMELL_TEST_MODEL}
    for model, fallback in ModelRoute.objects.values_list("model", "fallback_model"):
        models |= {model, fallback}
    models |= set(ModelPrice.objects.values_list("model", flat=True))
    since = datetime.datetime.combine(
        on - datetime.timedelta(days=RECENT_DAYS), datetime.time(), tzinfo=datetime.UTC
    )
    models |= set(
        CallRecord.objects.filter(created_at__gte=since)
        .exclude(model="")
        .values_list("model", flat=True)
        .distinct()
    )
    return sorted(m for m in models if m)


def _money(value: Decimal) -> str:
    return f"${value.normalize():f}"


def _row(rates: Any) -> list[str]:
    return [_money(getattr(rates, column)) for column in COLUMNS]


class Command(BaseCommand):
    help = (
        "For each model in use (settings, routes, site prices, calls of the last 30 days): "
        "what prices it (the site's ModelPrice, genai-prices' list price, or nothing) and "
        "the rates in USD per million tokens. --diff lists where a site price differs from "
        "the list price."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--on", help="the day to price (YYYY-MM-DD, default: today)")
        parser.add_argument("--model", action="append", help="only this model (repeatable)")
        parser.add_argument(
            "--diff", action="store_true", help="site prices that differ from the list"
        )

    def handle(
        self, *args: Any, on: str | None, model: list[str] | None, diff: bool, **options: Any
    ) -> None:
        try:
            day = parse_day(on) if on else datetime.date.today()
        except ValueError as exc:
            raise CommandError(f"--on: {exc}") from None
        pricing.invalidate()
        models = model or models_in_use(day)
        if diff:
            self._diff(models, day)
        else:
            self._sources(models, day)

    def _sources(self, models: list[str], day: datetime.date) -> None:
        self.stdout.write(f"Prices on {day} (USD per million tokens)")
        self.stdout.write("  ".join(["model", "source", *HEADINGS]))
        unpriced = 0
        for model in models:
            own = pricing.price_for(model, on=day)
            listed = catalog.list_price(model, day)
            if own is not None:
                source = f"site price from {own.effective_from}"
                cells = _row(own)
            elif listed is not None:
                source = f"list (genai-prices {listed.model})"
                cells = _row(listed.base)
                for start, tier in listed.tiers:
                    cells.append(f"over {start:,} input tokens: " + " / ".join(_row(tier)))
            else:
                unpriced += 1
                self.stdout.write(self.style.WARNING(f"{model}  none: calls recorded unpriced"))
                continue
            self.stdout.write("  ".join([model, source, *cells]))
        if unpriced:
            self.stdout.write(
                self.style.WARNING(
                    f"{unpriced} model(s) without a price: add a ModelPrice in the admin, or "
                    "upgrade genai-prices if the model is new"
                )
            )

    def _diff(self, models: list[str], day: datetime.date) -> None:
        differ = 0
        for model in models:
            own = pricing.price_for(model, on=day)
            listed = catalog.list_price(model, day)
            if own is None or listed is None:
                continue
            changes = _differences(own, listed.base)
            if not changes:
                continue
            differ += 1
            self.stdout.write(
                f"{model} (site price from {own.effective_from}): {', '.join(changes)}"
            )
        if not differ:
            self.stdout.write("No site price differs from its list price.")


def _differences(own: Any, listed: Rates) -> list[str]:
    return [
        f"{heading} {_money(getattr(own, column))} (list {_money(getattr(listed, column))})"
        for column, heading in zip(COLUMNS, HEADINGS, strict=True)
        if getattr(own, column) != getattr(listed, column)
    ]
