"""The quotas page: each quota, its window, and who is nearest its limit.

The counters live in the cache under hashed keys, so who the heaviest users
and tenants are comes from the records of the current window (one GROUP BY
per quota, on the indexed ``created_at``); what each of them has used,
reservations of calls in flight included, comes from the counters.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_claude.admin.base import moment, usd
from django_claude.client import ratelimits
from django_claude.conf import conf
from django_claude.models import CallRecord
from django_claude.quotas.config import Quota, quotas
from django_claude.quotas.counters import QuotaStoreUnavailable
from django_claude.quotas.status import QuotaStatus, statuses
from django_claude.quotas.windows import window_bounds
from django_claude.types import Outcome

HEAVIEST = 10  # users or tenants shown per quota

# What a quota counts, summed over the window's records.
MEASURES = {
    "calls": Count("id"),
    "tokens": Sum(
        F("input_tokens")
        + F("output_tokens")
        + F("cache_read_input_tokens")
        + F("cache_creation_input_tokens")
    ),
    "usd": Sum("cost_usd"),
}


@dataclass
class Holder:
    """One user or tenant (or the site) under a quota."""

    who: str
    used: Decimal | int | None  # from the counter; None when the cache did not answer
    share: float | None  # used / limit, as a percentage


@dataclass
class QuotaUsage:
    quota: Quota
    resets_at: Any
    holders: list[Holder] = field(default_factory=list)


def _billed(quota: Quota, start: Any) -> QuerySet[CallRecord]:
    records = CallRecord.objects.filter(created_at__gte=start).exclude(
        outcome__in=[Outcome.LIMITED, Outcome.CACHED]
    )
    if quota.features is not None:
        records = records.filter(feature__in=sorted(quota.features))
    return records


def _heaviest(quota: Quota, start: Any) -> list[str]:
    column = "user_ref" if quota.per == "user" else "tenant"
    rows = (
        _billed(quota, start)
        .filter(~Q(**{column: ""}))
        .values(column)
        .annotate(measure=MEASURES[quota.unit])
        .order_by("-measure", column)[:HEAVIEST]
    )
    return [str(row[column]) for row in rows]


def _status(quota: Quota, who: str) -> QuotaStatus | None:
    scope = {"user": {"user": who}, "tenant": {"tenant": who}}.get(quota.per, {})
    try:
        found = statuses(feature=None, **scope)
    except QuotaStoreUnavailable:
        return None
    return next((status for status in found if status.name == quota.name), None)


def quota_usage() -> list[QuotaUsage]:
    """Every quota, with the site's usage or its heaviest users or tenants."""
    now = timezone.now()
    found = []
    for quota in quotas():
        start, end = window_bounds(quota.window, now)
        usage = QuotaUsage(quota=quota, resets_at=end)
        for who in _heaviest(quota, start) if quota.per else [""]:
            status = _status(quota, who)
            used = None if status is None else status.used
            share = None if used is None else float(Decimal(used) / Decimal(quota.limit) * 100)
            usage.holders.append(Holder(who=who, used=used, share=share))
        found.append(usage)
    return found


def models_in_use() -> list[str]:
    """The settings' models, and those that answered in the last day."""
    since = timezone.now() - datetime.timedelta(days=1)
    recent = CallRecord.objects.filter(created_at__gte=since).exclude(model="")
    found = {conf.DEFAULT_MODEL, conf.FALLBACK_MODEL}
    found.update(recent.values_list("model", flat=True).distinct()[:50])
    return sorted(model for model in found if model)


def rate_limit_rows() -> list[tuple[str, str, str, str, str, str]]:
    """(model, kind, limit, remaining, reset, seen at) for each limit last seen."""
    rows = []
    for model, seen in sorted(ratelimits.last_seen(models_in_use()).items()):
        at = datetime.datetime.fromtimestamp(float(seen.get("at") or 0), tz=datetime.UTC)
        for kind, values in sorted(dict(seen.get("limits") or {}).items()):
            rows.append(
                (
                    model,
                    kind,
                    f"{int(values.get('limit') or 0):,}",
                    f"{int(values.get('remaining') or 0):,}",
                    str(values.get("reset") or ""),
                    moment(at),
                )
            )
    return rows


def _amount(unit: str, value: Decimal | int | None) -> str:
    if value is None:
        return "—"  # the cache did not answer
    return usd(Decimal(value)) if unit == "usd" else f"{int(value):,}"


def quotas_page(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """The quotas, their windows and who is nearest each limit."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    usages = []
    for usage in quota_usage():
        quota = usage.quota
        usages.append(
            {
                "quota": quota,
                "limit": _amount(quota.unit, quota.limit),
                "unit": "" if quota.unit == "usd" else quota.unit,
                "features": sorted(quota.features or ()),
                "resets_at": moment(usage.resets_at),
                "rows": [
                    (
                        holder.who,
                        _amount(quota.unit, holder.used),
                        "—" if holder.share is None else f"{holder.share:.1f}%",
                    )
                    for holder in usage.holders
                ],
            }
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Claude quotas and rate limits"),
        "opts": model_admin.opts,
        "usages": usages,
        "rate_limits": rate_limit_rows(),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_claude/quotas.html", context)
