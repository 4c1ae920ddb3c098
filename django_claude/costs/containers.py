"""Code execution's fee, shared out over the calls that ran in a container.

Anthropic bills the code execution tool by container hours, per organization
(each container's time, with a minimum per session and free hours every
month), and an answer's usage says nothing of them: no call can be priced for
it when it ends. The bill can. ``claude_reconcile`` reads each day's code
execution cost from the Admin API's cost report and ``share_out`` divides it
equally over the day's containers and, within a container, over the calls
that used it. A call's share is in ``cost_breakdown["code_execution"]`` and
in its ``tool_cost_usd`` and ``cost_usd``, so cost per feature, the report
and the dashboard carry it; sharing a day out again replaces its shares, and
the day's DailyCost rows are saved again.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import ROUND_DOWN, Decimal

from django.db import transaction
from django.db.models import Q

from django_claude.costs.days import resolve_tz
from django_claude.costs.rollups import rollup_day
from django_claude.models import CallRecord

PART = "code_execution"  # its key in cost_breakdown
QUANTUM = Decimal("1e-10")  # the cost columns' decimal places
SHARED_FIELDS = ["cost_usd", "tool_cost_usd", "cost_breakdown"]


def split(amount: Decimal, parts: int) -> list[Decimal]:
    """``amount`` in ``parts`` equal shares (to the column's precision) that
    add up to it exactly: the first ones carry the remainder's quanta."""
    if parts <= 0:
        return []
    total = amount.quantize(QUANTUM)
    base = (total / parts).quantize(QUANTUM, rounding=ROUND_DOWN)
    extra = int((total - base * parts) / QUANTUM)
    return [base + QUANTUM if i < extra else base for i in range(parts)]


def share_out(day: datetime.date, fee: Decimal) -> int:
    """Share ``fee`` (USD) over the UTC ``day``'s calls that ran in a
    container, replacing an earlier sharing of that day. Returns how many
    calls carry a share (0: nobody on this site used a container that day,
    and the fee stays unshared, for reconciliation to show)."""
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=1)
    with transaction.atomic():
        records = list(
            CallRecord.objects.select_for_update()
            .filter(created_at__gte=start, created_at__lt=end)
            .filter(~Q(container_id="") | Q(cost_breakdown__has_key=PART))
            .only("id", "created_at", "container_id", *SHARED_FIELDS)
            .order_by("created_at", "id")
        )
        calls: dict[str, list[CallRecord]] = defaultdict(list)
        for record in records:
            if record.container_id:
                calls[record.container_id].append(record)
        shares: dict[object, Decimal] = {}
        containers = sorted(calls)
        for container, amount in zip(containers, split(fee, len(containers)), strict=True):
            for record, part in zip(
                calls[container], split(amount, len(calls[container])), strict=True
            ):
                shares[record.pk] = part
        changed = [r for r in records if _set_share(r, shares.get(r.pk, Decimal(0)))]
        CallRecord.objects.bulk_update(changed, SHARED_FIELDS, batch_size=500)
        zone = resolve_tz(None)
        for local_day in sorted({r.created_at.astimezone(zone).date() for r in changed}):
            rollup_day(local_day)
    return len(shares) if fee else 0


def share_of(record: CallRecord) -> Decimal:
    """The code execution fee a call carries (0 before its day is shared out)."""
    return Decimal(str((record.cost_breakdown or {}).get(PART) or 0))


def _set_share(record: CallRecord, share: Decimal) -> bool:
    """Give ``record`` ``share`` in place of the one it had; True if it changed."""
    delta = share - share_of(record)
    if not delta and (share or PART not in (record.cost_breakdown or {})):
        return False
    breakdown = dict(record.cost_breakdown or {})
    if share:
        breakdown[PART] = format(share.normalize(), "f")
    else:
        breakdown.pop(PART, None)
    record.cost_breakdown = breakdown
    record.tool_cost_usd = (record.tool_cost_usd or Decimal(0)) + delta
    if record.cost_usd is not None:  # an unpriced call stays unpriced
        record.cost_usd += delta
    return True
