"""``quota_status``: each quota that applies to a user, tenant or feature,
with what is used, what is left and when its window resets."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from django_claude.quotas import counters
from django_claude.quotas.config import NANO, Quota, quotas
from django_claude.quotas.enforce import counter_key
from django_claude.quotas.windows import window_bounds


@dataclass(frozen=True)
class QuotaStatus:
    """One quota's allowance now. USD amounts are ``Decimal``; tokens and calls ints.

    ``used`` includes the worst case reserved by calls still in flight."""

    name: str
    per: str  # "user", "tenant" or "" (site-wide)
    window: str
    unit: str  # "usd", "tokens" or "calls"
    limit: Decimal | int
    used: Decimal | int
    remaining: Decimal | int
    resets_at: datetime.datetime
    features: tuple[str, ...] | None  # None: every feature

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0


def _in_unit(quota: Quota, counted: int) -> Decimal | int:
    if quota.unit == "usd":
        return (Decimal(counted) / NANO).quantize(Decimal("1e-9"))
    return counted


def statuses(
    *, user: str = "", tenant: str = "", feature: str | None = None, now: Any = None
) -> list[QuotaStatus]:
    """The status of each quota for this user, tenant and feature (``feature``
    None: quotas of every feature). A per-user quota needs ``user``, a
    per-tenant one ``tenant``. Raises ``counters.QuotaStoreUnavailable`` when the
    cache does not answer."""
    now = now or timezone.now()
    chosen: list[tuple[Quota, str, datetime.datetime, datetime.datetime]] = []
    for quota in quotas():
        if feature is not None and not quota.covers(feature):
            continue
        scope = {"user": user, "tenant": tenant}.get(quota.per, "")
        if quota.per and not scope:
            continue
        start, end = window_bounds(quota.window, now)
        chosen.append((quota, counter_key(quota, scope, start), start, end))
    values = counters.read([key for _, key, _, _ in chosen]) if chosen else {}
    found = []
    for quota, key, _, end in chosen:
        counted = values.get(key, 0)
        used = _in_unit(quota, counted)
        limit = quota.limit
        found.append(
            QuotaStatus(
                name=quota.name,
                per=quota.per,
                window=quota.window,
                unit=quota.unit,
                limit=limit,
                used=used,
                remaining=max(limit - used, 0)
                if quota.unit != "usd"
                else max(Decimal(limit) - Decimal(used), Decimal(0)),
                resets_at=end,
                features=None if quota.features is None else tuple(sorted(quota.features)),
            )
        )
    return found
