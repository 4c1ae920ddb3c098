"""Code execution's fee, shared out over the calls that ran in a container.

Anthropic bills the code execution tool by container hours, per organization
(each container's time, with a minimum per session and free hours every
month), and an answer's usage says nothing of them: no call can be priced for
it when it ends. The bill can. ``claude_reconcile`` reads each day's code
execution cost from the Admin API's cost report and ``share_out`` divides it
equally over the day's containers and, within a container, over its calls
(rounded down to the column's last decimal; what rounding leaves goes to the
day's first such call, so the shares add up to the fee exactly).

A call's share is its ``code_execution_usd``; once the call is priced it is
in its ``cost_usd`` and ``tool_cost_usd`` too, so cost per feature, the report
and the dashboard carry it (a call whose tokens are unpriced keeps it apart
until ``claude_reprice`` prices it). Sharing a day out again replaces its
shares. Every change is a set-based UPDATE, a statement per group of
containers with as many calls, never a row at a time (100,000 calls in
50,000 containers: a few seconds on PostgreSQL).
"""

from __future__ import annotations

import datetime
from collections import Counter
from decimal import ROUND_DOWN, Decimal

from django.db.models import Count, F, Q, QuerySet
from django.db.models.expressions import Combinable

from django_claude.costs.days import resolve_tz
from django_claude.costs.rollups import rollup_day
from django_claude.models import CallRecord

QUANTUM = Decimal("1e-10")  # the cost columns' decimal places
PRICED = Q(cost_usd__isnull=False)


def share_out(day: datetime.date, fee: Decimal) -> int:
    """Share ``fee`` (USD) over the UTC ``day``'s calls that ran in a
    container, replacing an earlier sharing of that day, and save the day's
    DailyCost rows again. Returns how many calls carry a share (0: nobody on
    this site used a container that day; the fee stays unshared, for the
    reconciliation to show). Run it inside the caller's transaction."""
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=1)
    calls = CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
    shared = calls.exclude(code_execution_usd=0)
    changed = shared.exists()
    _add(shared, -F("code_execution_usd"))  # take the earlier shares back
    used = calls.exclude(container_id="")
    per_container = used.values("container_id").annotate(calls=Count("id")).order_by()
    sizes = Counter(per_container.values_list("calls", flat=True))  # calls -> containers
    containers = sum(sizes.values())
    fee = fee.quantize(QUANTUM)
    if containers and fee:
        each = _down(fee / containers)  # a container's share
        given = Decimal(0)
        for size, count in sizes.items():
            share = _down(each / size)  # a call's, in a container of ``size`` calls
            of_size = per_container.filter(calls=size).values("container_id")
            _add(used.filter(container_id__in=of_size), share)
            given += share * size * count
        first = used.order_by("created_at", "id").values_list("pk", flat=True)[:1]
        _add(calls.filter(pk__in=list(first)), fee - given)
        changed = True
    if changed:  # the site's days this UTC day overlaps
        zone = resolve_tz(None)
        last = end - datetime.timedelta(microseconds=1)
        for local_day in sorted({start.astimezone(zone).date(), last.astimezone(zone).date()}):
            rollup_day(local_day)
    return sum(size * count for size, count in sizes.items()) if fee else 0


def share_of(record: CallRecord) -> Decimal:
    """The code execution fee a call carries (0 before its day is shared out)."""
    return record.code_execution_usd or Decimal(0)


def _down(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_DOWN)


def _add(calls: QuerySet[CallRecord], amount: Decimal | Combinable) -> None:
    """Add ``amount`` to these calls' shares, and to the cost and tool fees of
    those that are priced (an unpriced cost stays NULL, its tool fees its own)."""
    if isinstance(amount, Decimal) and not amount:
        return
    calls.filter(PRICED).update(
        cost_usd=F("cost_usd") + amount,
        tool_cost_usd=F("tool_cost_usd") + amount,
        code_execution_usd=F("code_execution_usd") + amount,
    )
    calls.exclude(PRICED).update(code_execution_usd=F("code_execution_usd") + amount)
