"""Our recorded costs beside Anthropic's bill, per UTC day and model.

Anthropic's side is the Usage & Cost Admin API's cost report
(``GET /v1/organizations/cost_report``, daily buckets grouped by
description, amounts in cents), read with an admin key
(``DJANGO_CLAUDE_ADMIN_API_KEY``). Every page is read before anything is
written, and the rows of the whole range are replaced in one transaction: a
failing or slow API is a ``ReconcileError`` and leaves the table as it was.
A difference over ``DJANGO_CLAUDE_RECONCILE_TOLERANCE`` (a share of their
cost) is a drift: a WARNING, the ``reconciliation_drift`` signal and a mail
to the site's admins, once the rows are saved.

Code execution is billed by container hours, which no call reports: the
day's fee is shared out over the day's calls that used a container first
(``containers.py``), in the same transaction. Priority Tier tokens are not in
Anthropic's cost report, so they are not in ours either (their server tools are).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx2
from django.core.mail import mail_admins
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from django_claude.conf import conf, is_loopback_url
from django_claude.costs import containers
from django_claude.models import CallRecord, Reconciliation
from django_claude.signals import reconciliation_drift

logger = logging.getLogger(__name__)

COST_REPORT = "/v1/organizations/cost_report"
ANTHROPIC_API = "https://api.anthropic.com"
PAGE_DAYS = 31  # the API's largest page
TIMEOUT = 30.0  # seconds per request
MAX_PAGES = 60
MAX_CENTS = Decimal(10) ** 10  # $100,000,000 a day and model: what the columns hold
NO_MODEL = "(no model)"  # costs not tied to a model: server tools (web search), sessions
CODE_EXECUTION = "code_execution"  # the cost report's cost_type of container hours
ADVISORY_LOCK = 0x646A_636C_7265  # "djclre": claude_reconcile's lock
PRIORITY = "priority"  # usage.service_tier of Priority Tier calls: not in the cost report


class ReconcileError(Exception):
    """The Admin API could not be read: nothing was written."""


@dataclass(frozen=True)
class Line:
    day: datetime.date
    model: str
    ours: Decimal
    theirs: Decimal
    unpriced_calls: int

    @property
    def difference(self) -> Decimal:
        return self.ours - self.theirs

    def within(self, tolerance: Decimal) -> bool:
        return abs(self.difference) <= tolerance * abs(self.theirs)


def reconcile(first: datetime.date, last: datetime.date) -> list[Line]:
    """Compare ``first``..``last`` (UTC days), save the rows, announce drift."""
    theirs, code_execution = their_costs(first, last)
    tolerance = conf.RECONCILE_TOLERANCE
    with transaction.atomic():
        _one_at_a_time()
        day = first
        while day <= last:  # container hours: only the bill knows them
            containers.share_out(day, code_execution.get(day, Decimal(0)))
            day += datetime.timedelta(days=1)
        ours, unpriced = our_costs(first, last)
        keys = sorted(set(theirs) | set(ours) | set(unpriced))
        lines = [
            Line(
                day,
                model,
                ours.get((day, model), Decimal(0)),
                theirs.get((day, model), Decimal(0)),
                unpriced.get((day, model), 0),
            )
            for day, model in keys
        ]
        Reconciliation.objects.filter(day__range=(first, last)).delete()
        Reconciliation.objects.bulk_create(
            Reconciliation(
                day=line.day,
                model=line.model,
                our_cost_usd=line.ours,
                their_cost_usd=line.theirs,
                difference_usd=line.difference,
                unpriced_calls=line.unpriced_calls,
                within_tolerance=line.within(tolerance),
            )
            for line in lines
        )
        drifts = [line for line in lines if not line.within(tolerance)]
        if drifts:
            transaction.on_commit(lambda: _announce(drifts, tolerance))
    return lines


def _one_at_a_time() -> None:
    """Reconciliations take turns (on PostgreSQL, a transaction-level
    advisory lock): two over overlapping days would otherwise lock the same
    records and DailyCost rows in different orders. SQLite takes one writer
    at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])


def our_costs(
    first: datetime.date, last: datetime.date
) -> tuple[dict[tuple[datetime.date, str], Decimal], dict[tuple[datetime.date, str], int]]:
    """Recorded cost, and calls recorded unpriced, per UTC day and model.

    Priority Tier calls' tokens are left out: Anthropic's cost report leaves
    them out too (the tier is billed by its commitment); their server tools
    are billed as anyone's."""
    start = datetime.datetime.combine(first, datetime.time(), tzinfo=datetime.UTC)
    end = datetime.datetime.combine(last, datetime.time(), tzinfo=datetime.UTC)
    priced = Q(cost_usd__isnull=False)
    tokens = priced & ~Q(service_tier=PRIORITY)
    rows = (
        CallRecord.objects.filter(
            created_at__gte=start, created_at__lt=end + datetime.timedelta(days=1)
        )
        .annotate(day=TruncDate("created_at", tzinfo=datetime.UTC))
        .values("day", "model")
        .annotate(
            cost=Sum("cost_usd", filter=tokens),  # (SQLite sums a difference as a float)
            cost_tools=Sum("tool_cost_usd", filter=tokens),
            tools=Sum("tool_cost_usd", filter=priced),
            # code execution's shares of calls whose tokens are unpriced
            unpriced_shares=Sum("code_execution_usd", filter=~priced),
            unpriced=Count("id", filter=~priced & ~Q(service_tier=PRIORITY)),
        )
    )
    costs: dict[tuple[datetime.date, str], Decimal] = {}
    unpriced: dict[tuple[datetime.date, str], int] = {}
    for row in rows:
        key = (row["day"], row["model"] or NO_MODEL)
        if row["cost"] is not None:
            costs[key] = costs.get(key, Decimal(0)) + row["cost"] - row["cost_tools"]
        # Anthropic's report puts server-tool fees (web search, code
        # execution) under no model: so do we, to compare like with like.
        tools = (row["tools"] or Decimal(0)) + (row["unpriced_shares"] or Decimal(0))
        if tools:
            nomodel = (row["day"], NO_MODEL)
            costs[nomodel] = costs.get(nomodel, Decimal(0)) + tools
        if row["unpriced"]:
            unpriced[key] = unpriced.get(key, 0) + row["unpriced"]
    return costs, unpriced


def their_costs(
    first: datetime.date, last: datetime.date
) -> tuple[dict[tuple[datetime.date, str], Decimal], dict[datetime.date, Decimal]]:
    """Anthropic's cost per UTC day and model, in USD, every page read; and
    the code execution fee per day (in the no-model totals as well)."""
    totals: dict[tuple[datetime.date, str], Decimal] = defaultdict(Decimal)
    code_execution: dict[datetime.date, Decimal] = defaultdict(Decimal)
    workspace = conf.RECONCILE_WORKSPACE
    for bucket in _buckets(first, last, by_workspace=workspace is not None):
        day = _bucket_day(bucket)
        if not first <= day <= last:
            continue
        for result in bucket.get("results") or []:
            if not isinstance(result, dict):
                raise ReconcileError("the cost report has a result that is not an object")
            if workspace is not None and (result.get("workspace_id") or "default") != workspace:
                continue  # another workspace of the organization: not this site's
            if str(result.get("currency") or "USD") != "USD":
                raise ReconcileError(f"the cost report is in {result.get('currency')!r}, not USD")
            try:
                cents = Decimal(str(result["amount"]))
            except (KeyError, InvalidOperation):
                cents = Decimal("NaN")
            if not cents.is_finite():
                raise ReconcileError("the cost report has a result without a finite amount")
            if abs(cents) >= MAX_CENTS:
                raise ReconcileError("the cost report has an amount too large to be a day's cost")
            totals[(day, str(result.get("model") or NO_MODEL))] += cents / 100
            if result.get("cost_type") == CODE_EXECUTION:
                code_execution[day] += cents / 100
    return dict(totals), dict(code_execution)


def _buckets(
    first: datetime.date, last: datetime.date, *, by_workspace: bool
) -> Iterator[dict[str, Any]]:
    key = conf.ADMIN_API_KEY
    if not key:
        raise ReconcileError("no admin key: set DJANGO_CLAUDE_ADMIN_API_KEY (sk-ant-admin...)")
    base = admin_base_url()
    params: dict[str, Any] = {
        "starting_at": f"{first.isoformat()}T00:00:00Z",
        "ending_at": f"{(last + datetime.timedelta(days=1)).isoformat()}T00:00:00Z",
        "bucket_width": "1d",
        "group_by[]": ["description", "workspace_id"] if by_workspace else "description",
        "limit": PAGE_DAYS,
    }
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with httpx2.Client(base_url=base, timeout=TIMEOUT, headers=headers) as client:
        for _ in range(MAX_PAGES):
            page = _get(client, params)
            yield from page["data"]
            if not page["has_more"]:
                return
            params["page"] = page["next_page"]
    raise ReconcileError(f"the cost report ran past {MAX_PAGES} pages")


def admin_base_url() -> str:
    """``DJANGO_CLAUDE_ADMIN_BASE_URL``, else Anthropic's: never ``BASE_URL``,
    which may be a gateway for the Messages API that must not see an
    organization's admin key; and https, but on this machine."""
    url = (conf.ADMIN_BASE_URL or ANTHROPIC_API).rstrip("/")
    if urlsplit(url).scheme != "https" and not is_loopback_url(url):
        raise ReconcileError("DJANGO_CLAUDE_ADMIN_BASE_URL must be https (or on this machine)")
    return url


def _get(client: httpx2.Client, params: dict[str, Any]) -> dict[str, Any]:
    try:
        response = client.get(COST_REPORT, params=params)
    except httpx2.TimeoutException:
        raise ReconcileError(f"the Admin API did not answer within {TIMEOUT:g}s") from None
    except httpx2.HTTPError as exc:
        raise ReconcileError(f"could not reach the Admin API ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise ReconcileError(
            f"the Admin API answered {response.status_code}: {_error_type(response)}"
        )
    try:
        page = response.json()
    except ValueError:
        raise ReconcileError("the Admin API's answer is not JSON") from None
    if (
        not isinstance(page, dict)
        or not isinstance(page.get("data"), list)
        or not isinstance(page.get("has_more"), bool)
        or (page["has_more"] and not page.get("next_page"))
    ):
        raise ReconcileError("the Admin API's answer is not a cost report")
    return page


def _error_type(response: httpx2.Response) -> str:
    """The error's type only: its message might quote what was sent."""
    try:
        return str(response.json()["error"]["type"])[:60]
    except (ValueError, KeyError, TypeError):
        return "no error body"


def _bucket_day(bucket: Any) -> datetime.date:
    try:
        start = datetime.datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00"))
    except (TypeError, KeyError, ValueError):
        raise ReconcileError("the cost report has a bucket without a start") from None
    return start.astimezone(datetime.UTC).date()


def _announce(drifts: list[Line], tolerance: Decimal) -> None:
    for line in drifts:
        logger.warning(
            json.dumps(
                {
                    "event": "claude.reconciliation_drift",
                    "day": line.day.isoformat(),
                    "model": line.model,
                    "ours_usd": str(line.ours),
                    "theirs_usd": str(line.theirs),
                    "difference_usd": str(line.difference),
                }
            )
        )
        reconciliation_drift.send(
            sender=Reconciliation,
            day=line.day,
            model=line.model,
            our_cost_usd=line.ours,
            their_cost_usd=line.theirs,
            difference_usd=line.difference,
        )
    rows = "\n".join(
        f"{line.day} {line.model}: ours ${line.ours:.4f}, Anthropic's ${line.theirs:.4f}"
        for line in drifts
    )
    mail_admins(
        f"Claude costs: {len(drifts)} day(s) and model(s) differ from Anthropic's bill",
        f"Differences over {tolerance:%} of Anthropic's cost:\n{rows}",
        fail_silently=True,
    )
