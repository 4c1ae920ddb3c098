"""What a call cost, in Decimal USD, from the ``ModelPrice`` table.

``cost_of`` is pure arithmetic. ``price_for`` reads the prices from memory
(reloaded from the database at most once a minute, and at once when a price
is saved in this process), so pricing a call adds no query to it.
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
from typing import Any

from django_claude.models import ModelPrice
from django_claude.recording import list_prices as list_prices_table

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


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. ``input_tokens`` excludes every cache token."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0  # 5-minute and 1-hour writes together
    cache_creation_1h_input_tokens: int = 0  # the 1-hour share of the above

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """Read the SDK's ``Usage`` (or a dict of the same shape)."""
        if usage is None:
            return cls()
        get = usage.get if isinstance(usage, Mapping) else lambda k: getattr(usage, k, None)
        creation = get("cache_creation")
        one_hour = 0
        five_min = None
        if creation is not None:
            cget = (
                creation.get
                if isinstance(creation, Mapping)
                else lambda k: getattr(creation, k, None)
            )
            one_hour = int(cget("ephemeral_1h_input_tokens") or 0)
            five_min = int(cget("ephemeral_5m_input_tokens") or 0)
        total_creation = int(get("cache_creation_input_tokens") or 0)
        if five_min is not None:
            total_creation = max(total_creation, five_min + one_hour)
        return cls(
            input_tokens=int(get("input_tokens") or 0),
            output_tokens=int(get("output_tokens") or 0),
            cache_read_input_tokens=int(get("cache_read_input_tokens") or 0),
            cache_creation_input_tokens=total_creation,
            cache_creation_1h_input_tokens=one_hour,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_creation_1h_input_tokens": self.cache_creation_1h_input_tokens,
        }


def cost_of(usage: Usage, price: Price) -> Decimal:
    """Exact cost of ``usage`` at ``price``: every kind of token counted once."""
    five_min = usage.cache_creation_input_tokens - usage.cache_creation_1h_input_tokens
    total = (
        usage.input_tokens * price.input
        + usage.cache_read_input_tokens * price.cache_read
        + five_min * price.cache_write_5m
        + usage.cache_creation_1h_input_tokens * price.cache_write_1h
        + usage.output_tokens * price.output
    )
    return total / MILLION


def list_prices() -> list[Price]:
    """The list prices this release ships (used while the database is down)."""
    return [
        Price(
            model=model,
            effective_from=list_prices_table.EFFECTIVE_FROM,
            input=Decimal(inp),
            output=Decimal(out),
            cache_write_5m=Decimal(write_5m),
            cache_write_1h=Decimal(write_1h),
            cache_read=Decimal(read),
        )
        for models, (inp, write_5m, write_1h, read, out) in list_prices_table.PRICES
        for model in models
    ]


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
    """The prices in force in this process (database, else the built-in list)."""
    global _book, _loaded_at
    now = time.monotonic()
    if _book is not None and now - _loaded_at < RELOAD_SECONDS:
        return _book
    with _lock:
        if _book is None or now - _loaded_at >= RELOAD_SECONDS:
            try:
                _book = load_price_book()
            except Exception:  # DatabaseError, or SynchronousOnlyOperation on an event loop
                # The database is down: keep pricing with what we had.
                logger.warning("claude pricing: could not load prices, using the last known ones")
                if _book is None:
                    _book = PriceBook(list_prices())
            _loaded_at = now
    return _book


def price_book_is_fresh() -> bool:
    """Would ``price_book()`` answer from memory, without the database?"""
    return _book is not None and time.monotonic() - _loaded_at < RELOAD_SECONDS


def invalidate() -> None:
    """Reload prices on next use (connected to ModelPrice's save and delete)."""
    global _book
    _book = None


def price_for(model: str, *, on: datetime.date) -> Price | None:
    return price_book().price_for(model, on)


def price_call(model: str, usage: Usage, *, on: datetime.date) -> Decimal | None:
    """Cost of a call, or None (with one WARNING per model per process) when
    the model has no price: an unpriced call is never counted as free."""
    if not model:
        return None
    price = price_for(model, on=on)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning(
                "claude pricing: no ModelPrice for %r; its calls are recorded unpriced "
                "(cost NULL). Add a price in the admin.",
                model,
            )
        return None
    return cost_of(usage, price)
