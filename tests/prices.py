"""A site's own price, as an admin would add it (list prices need no row)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django_claude.models import ModelPrice


def site_price(
    model: str,
    effective_from: datetime.date,
    *rates: str,
) -> ModelPrice:
    """``rates``: USD per million tokens of input, output, 5-minute and 1-hour
    cache writes, cache reads."""
    inp, out, write_5m, write_1h, read = (Decimal(r) for r in rates)
    return ModelPrice.objects.create(
        model=model,
        effective_from=effective_from,
        input_per_mtok=inp,
        output_per_mtok=out,
        cache_write_5m_per_mtok=write_5m,
        cache_write_1h_per_mtok=write_1h,
        cache_read_per_mtok=read,
    )
