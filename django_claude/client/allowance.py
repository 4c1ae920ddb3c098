"""``quota_status``: what a user, tenant or feature has left of its quotas."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from django_claude.client.request import scope_of
from django_claude.conf import conf
from django_claude.quotas.counters import QuotaStoreUnavailable
from django_claude.quotas.status import QuotaStatus, statuses
from django_claude.shared_cache import COOLDOWN


def quota_status(
    *, user: Any = None, tenant: str | None = None, feature: str | None = None
) -> list[QuotaStatus]:
    """Each quota that applies to ``user`` (a user, or a str or int id),
    ``tenant`` (derived from the user by ``DJANGO_CLAUDE_TENANT`` when not
    given) and ``feature`` (None: every feature's quotas), with what is used,
    the limit, what remains and when its window resets.

    Raises ``TypeError``/``ValueError`` for a bad argument, and
    ``QuotaStoreUnavailable`` when the cache does not answer.
    """
    user_ref, tenant_key = scope_of(user, tenant)
    return statuses(user=user_ref, tenant=tenant_key, feature=feature)


@dataclass(frozen=True)
class Spent:
    """A quota with nothing left (or a cache that cannot say), and when to retry."""

    quota: str
    retry_after: float  # seconds


def spent_quota(
    *, user: Any = None, tenant: str | None = None, feature: str | None = None
) -> Spent | None:
    """The quota that would refuse this user's next call on ``feature``
    (None: none would). Of several, the one that resets last; with the cache
    down and ``QUOTAS_WHEN_CACHE_DOWN = "refuse"``, a retry in a few seconds."""
    try:
        found = quota_status(user=user, tenant=tenant, feature=feature)
    except QuotaStoreUnavailable:
        if conf.QUOTAS_WHEN_CACHE_DOWN == "allow":
            return None
        return Spent(quota="", retry_after=COOLDOWN)
    now = timezone.now()
    spent = [status for status in found if status.exhausted]
    if not spent:
        return None
    last = max(spent, key=lambda status: status.resets_at)
    return Spent(last.name, max(0.0, (last.resets_at - now).total_seconds()))


def limited_response(spent: Spent) -> HttpResponse:
    """429 with ``Retry-After`` (whole seconds) and ``LIMITED_MESSAGE``."""
    response = HttpResponse(conf.LIMITED_MESSAGE, status=429, content_type="text/plain")
    response["Retry-After"] = str(max(1, math.ceil(spent.retry_after)))
    return response


def claude_quota(
    feature: str | None = None, *, tenant: Callable[[HttpRequest], str | None] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A view decorator: answer 429 with ``Retry-After`` before the view runs
    when ``request.user`` (or its tenant, or the site) has spent a quota of
    ``feature``. ``tenant(request)`` gives the tenant when
    ``DJANGO_CLAUDE_TENANT`` cannot derive it from the user. Sync and async views."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        def check(request: HttpRequest) -> Spent | None:
            return spent_quota(
                user=getattr(request, "user", None),
                tenant=tenant(request) if tenant is not None else None,
                feature=feature,
            )

        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                spent = await sync_to_async(check)(request)
                if spent is not None:
                    return limited_response(spent)
                return await view(request, *args, **kwargs)

            return async_view

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            spent = check(request)
            if spent is not None:
                return limited_response(spent)
            return view(request, *args, **kwargs)

        return sync_view

    return decorate
