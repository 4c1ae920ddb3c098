"""What a call cost, in Decimal USD.

A call is priced by the site's own ``ModelPrice`` row for the model and day
when there is one (a negotiated rate, a model genai-prices does not know
yet), else by Anthropic's list price from genai-prices (``catalog.py``),
else not at all: an unpriced call is recorded with no cost, never as free.

``cost_of`` is pure arithmetic. The site's rows are read from memory
(reloaded from the database at most once a minute, and at once when a price
is saved in this process), and list prices are kept per model and day, so
pricing a call adds no query to it.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from django_claude.models import ModelPrice
from django_claude.recording import catalog
from django_claude.recording.usage import Usage

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
RELOAD_SECONDS = 60.0
_DATE_SUFFIX = re.compile(r"-\d{8}$")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    model: str
    effective_from: datetime.date
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


class TokenRates(Protocol):
    """USD per million tokens of each kind: a site's ``Price`` or a list price's ``Rates``."""

    @property
    def input(self) -> Decimal: ...
    @property
    def output(self) -> Decimal: ...
    @property
    def cache_write_5m(self) -> Decimal: ...
    @property
    def cache_write_1h(self) -> Decimal: ...
    @property
    def cache_read(self) -> Decimal: ...


def cost_of(usage: Usage, price: TokenRates) -> Decimal:
    """Exact cost of ``usage``'s tokens at ``price``: every kind counted once."""
    return sum(token_costs(usage, price).values(), Decimal(0))


def token_costs(usage: Usage, price: TokenRates) -> dict[str, Decimal]:
    """USD per kind of token: input, output, cache reads, 5-minute and 1-hour writes."""
    five_min = usage.cache_creation_input_tokens - usage.cache_creation_1h_input_tokens
    return {
        "input": usage.input_tokens * price.input / MILLION,
        "output": usage.output_tokens * price.output / MILLION,
        "cache_read": usage.cache_read_input_tokens * price.cache_read / MILLION,
        "cache_write_5m": five_min * price.cache_write_5m / MILLION,
        "cache_write_1h": usage.cache_creation_1h_input_tokens * price.cache_write_1h / MILLION,
    }


def total_input_tokens(usage: Usage) -> int:
    """What a long-context tier is decided on: input, cache reads and writes."""
    return usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens


class PriceBook:
    """Prices by model, newest first, with the lookup rules in one place."""

    def __init__(self, prices: Iterable[Price]) -> None:
        self._by_model: dict[str, list[Price]] = {}
        for price in prices:
            self._by_model.setdefault(price.model, []).append(price)
        for rows in self._by_model.values():
            rows.sort(key=lambda p: p.effective_from, reverse=True)

    def price_for(self, model: str, on: datetime.date) -> Price | None:
        for candidate in (model, _DATE_SUFFIX.sub("", model)):
            for price in self._by_model.get(candidate, ()):
                if price.effective_from <= on:
                    return price
        return None

    def models(self) -> set[str]:
        return set(self._by_model)


_lock = threading.Lock()
_book: PriceBook | None = None
_loaded_at = 0.0
_warned: set[str] = set()


def load_price_book() -> PriceBook:
    """Every ``ModelPrice`` row, read now (raises ``DatabaseError`` if it cannot)."""

    return PriceBook(
        Price(
            model=row.model,
            effective_from=row.effective_from,
            input=row.input_per_mtok,
            output=row.output_per_mtok,
            cache_write_5m=row.cache_write_5m_per_mtok,
            cache_write_1h=row.cache_write_1h_per_mtok,
            cache_read=row.cache_read_per_mtok,
        )
        for row in ModelPrice.objects.all()
    )


def price_book() -> PriceBook:
    """The site's prices in force in this process (the last ones read, if the
    database is down)."""
    global _book, _loaded_at
    now = time.monotonic()
    book = _book  # once: invalidate() may clear it meanwhile
    if book is not None and now - _loaded_at < RELOAD_SECONDS:
        return book
    with _lock:
        if _book is None or now - _loaded_at >= RELOAD_SECONDS:
            try:
                _book = load_price_book()
            except Exception:  # DatabaseError, or SynchronousOnlyOperation on an event loop
                # The database is down: keep pricing with what we had (list prices need none).
                logger.warning("claude pricing: could not load prices, using the last known ones")
                if _book is None:
                    _book = PriceBook([])
            _loaded_at = now
        book = _book
    return book


def price_book_is_fresh() -> bool:
    """Would ``price_book()`` answer from memory, without the database?"""
    return _book is not None and time.monotonic() - _loaded_at < RELOAD_SECONDS


def invalidate() -> None:
    """Reload prices on next use (connected to ModelPrice's save and delete)."""
    global _book
    _book = None


def price_for(model: str, *, on: datetime.date) -> Price | None:
    """The site's own price (a ``ModelPrice`` row) for ``model`` on ``on``."""
    return price_book().price_for(model, on)


def has_price(model: str, *, on: datetime.date) -> bool:
    """Would a call on ``model`` be priced: by the site's rows or the list?"""
    return price_for(model, on=on) is not None or catalog.list_price(model, on) is not None


# Anthropic's billing modifiers (sources in tests/test_billing.py).
GEO_MULTIPLIERS = {"us": Decimal("1.1")}  # usage.inference_geo, on every token
BATCH_DISCOUNT = Decimal("0.5")  # the Message Batches API; cache multipliers stack
WEB_SEARCH_PER_K = Decimal("10")  # USD per 1,000 searches, when the list has no rate


@dataclass(frozen=True)
class Priced:
    """A call's cost and what it is made of (Decimal strings that add up to it)."""

    cost: Decimal
    breakdown: dict[str, str]

    @property
    def tool_cost(self) -> Decimal:
        """The server-tool fees (web search) in ``cost``."""
        return Decimal(self.breakdown.get("tools", "0"))


def price_call(model: str, usage: Usage, *, on: datetime.date) -> Decimal | None:
    """Cost of a call, or None (with one WARNING per model per process) when
    the model has no price: an unpriced call is never counted as free."""
    priced = price_detail(model, usage, on=on)
    return None if priced is None else priced.cost


def price_detail(
    model: str, usage: Usage, *, on: datetime.date, itemize: bool = True
) -> Priced | None:
    """``price_call`` with its breakdown: input, output, cache reads, 5-minute
    and 1-hour writes, tools. The site's price is standard and batch (at
    half); fast mode is priced by the list's fast rates only."""
    if not model:
        return None
    fast = usage.speed == "fast"
    batch = usage.service_tier == "batch"
    scale = GEO_MULTIPLIERS.get(usage.inference_geo, Decimal(1))
    own = None if fast else price_for(model, on=on)
    rates: TokenRates | None = own
    search_per_k = WEB_SEARCH_PER_K
    if own is not None:
        scale *= BATCH_DISCOUNT if batch else 1
        _warn_if_past_a_tier(model, usage, on)
    else:
        variant = ("speed", "fast") if fast else ("processing", "batch") if batch else None
        listed = catalog.list_price(model, on, variant)
        if listed is not None and (variant is None or listed.variant or batch):
            found = listed.rates_for(total_input_tokens(usage))
            rates, search_per_k = found, found.web_search_per_k or WEB_SEARCH_PER_K
            if batch and not listed.variant:  # no batch rates listed for that day: half
                scale *= BATCH_DISCOUNT
    if rates is None:
        _warn_unpriced(model, usage)
        return None
    parts = {kind: value * scale for kind, value in token_costs(usage, rates).items()}
    parts["tools"] = usage.web_search_requests * search_per_k / 1000
    return Priced(
        cost=sum(parts.values(), Decimal(0)),
        breakdown=(
            {kind: format(value.normalize(), "f") for kind, value in parts.items()}
            if itemize  # (a quota's worst case needs only the total)
            else {}
        ),
    )


def _warn_if_past_a_tier(model: str, usage: Usage, on: datetime.date) -> None:
    """A site's price is one rate: a request past the list's long-context
    threshold is billed by Anthropic at the tier rate. Say so, once."""
    listed = catalog.list_price(model, on)
    if listed is None or not listed.tiers or f"{model} tier" in _warned:
        return
    start = listed.tiers[0][0]
    if total_input_tokens(usage) > start:
        _warned.add(f"{model} tier")
        logger.warning(
            "claude pricing: the ModelPrice of %r has no long-context rate; a request over "
            "%d input tokens is priced at its base rate, where Anthropic's list bills every "
            "token at the tier rate. Check the cost against the bill (claude_reconcile).",
            model,
            start,
        )


def _warn_unpriced(model: str, usage: Usage) -> None:
    key = f"{model} fast" if usage.speed == "fast" else model
    if key in _warned:
        return
    _warned.add(key)
    if usage.speed == "fast":
        logger.warning(
            "claude pricing: genai-prices lists no fast-mode price for %r; its fast calls "
            "are recorded unpriced (cost NULL). Upgrade genai-prices.",
            model,
        )
        return
    logger.warning(
        "claude pricing: %r has no list price (genai-prices) and no ModelPrice; its "
        "calls are recorded unpriced (cost NULL). Add a price in the admin.",
        model,
    )


def requested_cache_ttl(params: Mapping[str, Any]) -> str:
    """The cache TTL a request's ``cache_control`` blocks ask for: "1h" if
    any does (an upper bound when they differ), else "5m", the default.
    Read only when a stream reports writes beyond its first split."""

    def ttls(value: Any, depth: int = 0) -> Iterable[str]:
        if depth > 8:
            return
        if isinstance(value, Mapping):
            control = value.get("cache_control")
            if isinstance(control, Mapping):
                yield str(control.get("ttl") or "5m")
            for item in value.values():
                if isinstance(item, (list, Mapping)):
                    yield from ttls(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                yield from ttls(item, depth + 1)

    return "1h" if "1h" in set(ttls(dict(params))) else "5m"
