"""Anthropic's list prices, from ``genai-prices`` (Pydantic's price database).

The package ships a snapshot of Anthropic's prices with their history (a
price change has a start date), the long-context tiers (every token of a
request over the threshold at the higher rate), and the batch and fast-mode
variants. It is read here and never fetched: prices are kept current by
upgrading the package. A site's ``ModelPrice`` rows override it
(``pricing.py``).

Looking a model up in genai-prices matches its id against every model's
patterns (about 80 µs), so the result is kept per model and day: pricing a
call stays arithmetic.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# What a site's price table would hold; also what genai-prices calls them.
RATE_KEYS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_write_5m": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "cache_read": "cache_read_mtok",
}
# Anthropic's prompt-caching multipliers of the input rate, for a model whose
# entry lacks a cache rate (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#pricing).
CACHE_MULTIPLIERS = {
    "cache_write_5m": Decimal("1.25"),
    "cache_write_1h": Decimal("2"),
    "cache_read": Decimal("0.1"),
}
PROVIDER = "anthropic"


@dataclass(frozen=True)
class Rates:
    """USD per million tokens, and per 1,000 web searches."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    web_search_per_k: Decimal = Decimal(0)


@dataclass(frozen=True)
class ListPrice:
    """A model's list price on one day: its base rates, and the rates of each
    long-context tier (used for every token of a request whose input, cache
    reads and writes included, is over ``start``)."""

    model: str  # genai-prices' id for it
    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    variant: bool = False  # the rates of the variant asked for (batch, fast), not standard

    def rates_for(self, total_input_tokens: int) -> Rates:
        rates = self.base
        for start, tier in self.tiers:
            if total_input_tokens > start:
                rates = tier
        return rates


_lock = threading.Lock()
Variant = tuple[str, str] | None  # genai-prices' price context: ("speed", "fast")...
_known: dict[tuple[str, datetime.date, Variant], ListPrice | None] = {}
_KEPT = 4096  # (model, day) pairs remembered; cleared when full


def list_price(model: str, on: datetime.date, variant: Variant = None) -> ListPrice | None:
    """genai-prices' price of ``model`` on ``on`` (None: it has none), in the
    ``variant`` asked for when it lists one (``ListPrice.variant`` says)."""
    key = (model, on, variant)
    try:
        return _known[key]
    except KeyError:
        pass
    price = _look_up(model, on, variant)
    with _lock:
        if len(_known) >= _KEPT:
            _known.clear()
        _known[key] = price
    return price


def is_loaded() -> bool:
    """Has genai-prices been loaded? (The first lookup imports 1.6 MB of data,
    a tenth of a second that must not be spent on an event loop.)"""
    return _loaded.is_set()


_loaded = threading.Event()


def _look_up(model: str, on: datetime.date, variant: Variant) -> ListPrice | None:
    from genai_prices import data_snapshot  # 1.6 MB of data: imported when first needed

    snapshot = data_snapshot.get_snapshot()
    _loaded.set()
    try:
        _provider, info = snapshot.find_provider_model(model, None, PROVIDER, None)
    except LookupError:
        return None
    moment = datetime.datetime.combine(on, datetime.time(12), tzinfo=datetime.UTC)
    standard = info.get_prices(moment)
    prices = info.get_prices(moment, dict([variant])) if variant else standard
    values: dict[str, Any] = {
        ours: getattr(prices, theirs, None) for ours, theirs in RATE_KEYS.items()
    }
    if values["input"] is None or values["output"] is None:
        return None  # priced by something other than tokens: not a Messages API model
    starts = sorted({t.start for v in values.values() if _tiered(v) for t in v.tiers})
    search = getattr(prices, "web_searches_kcount", None)
    return ListPrice(
        model=info.id,
        base=_rates(values, search, above=None),
        tiers=tuple((start, _rates(values, search, above=start)) for start in starts),
        variant=variant is not None and vars(prices) != vars(standard),
    )


def _tiered(value: Any) -> bool:
    return value is not None and hasattr(value, "tiers")


def _rate(value: Any, above: int | None) -> Decimal | None:
    """A rate for a request with more than ``above`` input tokens (None: base)."""
    if value is None:
        return None
    if not _tiered(value):
        return Decimal(value)
    rate = Decimal(value.base)
    for tier in sorted(value.tiers, key=lambda t: t.start):
        if above is not None and tier.start <= above:
            rate = Decimal(tier.price)
    return rate


def _rates(values: dict[str, Any], search: Any, *, above: int | None) -> Rates:
    rate = {key: _rate(value, above) for key, value in values.items()}
    base_input = rate["input"]
    assert base_input is not None and rate["output"] is not None
    for key, multiplier in CACHE_MULTIPLIERS.items():
        if rate[key] is None:
            rate[key] = base_input * multiplier
    return Rates(
        input=base_input,
        output=Decimal(rate["output"]),
        cache_write_5m=Decimal(rate["cache_write_5m"]),  # type: ignore[arg-type]
        cache_write_1h=Decimal(rate["cache_write_1h"]),  # type: ignore[arg-type]
        cache_read=Decimal(rate["cache_read"]),  # type: ignore[arg-type]
        web_search_per_k=Decimal(_rate(search, above) or 0),
    )


def forget() -> None:
    """Look every model up again (a test that swaps the snapshot)."""
    with _lock:
        _known.clear()
