"""Daily budgets per feature: alert at 80% and 100%, once per day and threshold."""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from django_claude.conf import conf
from django_claude.costs.days import day_bounds
from django_claude.costs.totals import format_cost
from django_claude.models import BudgetAlert, CallRecord
from django_claude.recording.clock import local_today
from django_claude.signals import budget_exceeded

logger = logging.getLogger("django_claude.budget")

THRESHOLDS = (80, 100)


@dataclass(frozen=True)
class BudgetStatus:
    feature: str
    day: datetime.date
    cost_usd: Decimal
    budget_usd: Decimal

    @property
    def share(self) -> Decimal:
        return self.cost_usd / self.budget_usd * 100 if self.budget_usd else Decimal(0)


def spent_today(feature: str, day: datetime.date) -> Decimal:
    start, end = day_bounds(day, day, timezone.get_default_timezone())
    total = CallRecord.objects.filter(
        feature=feature, created_at__gte=start, created_at__lt=end
    ).aggregate(cost=Sum("cost_usd"))["cost"]
    return Decimal(total or 0)


def check_budgets(*, day: datetime.date | None = None) -> list[BudgetAlert]:
    """Alert for every feature whose cost for ``day`` (today, site time) crossed
    80% or 100% of its budget and was not alerted yet. Returns the new alerts."""
    day = day or local_today()
    sent: list[BudgetAlert] = []
    for feature, budget in conf.BUDGETS.items():
        status = BudgetStatus(feature, day, spent_today(feature, day), budget)
        for threshold in THRESHOLDS:
            if status.cost_usd < budget * threshold / 100:
                continue
            try:
                with transaction.atomic():
                    alert = BudgetAlert.objects.create(
                        day=day,
                        feature=feature,
                        threshold=threshold,
                        cost_usd=status.cost_usd,
                        budget_usd=budget,
                    )
            except IntegrityError:
                continue  # already alerted, by this or another process
            _announce(status, threshold)
            sent.append(alert)
    return sent


def _announce(status: BudgetStatus, threshold: int) -> None:
    line = {
        "event": "claude.budget",
        "feature": status.feature,
        "day": status.day.isoformat(),
        "threshold": threshold,
        "cost_usd": format_cost(status.cost_usd),
        "budget_usd": str(status.budget_usd),
    }
    logger.log(logging.ERROR if threshold >= 100 else logging.WARNING, json.dumps(line))
    budget_exceeded.send(
        sender=BudgetAlert,
        feature=status.feature,
        day=status.day,
        threshold=threshold,
        cost_usd=status.cost_usd,
        budget_usd=status.budget_usd,
    )
    verb = "is over" if threshold >= 100 else f"has used {threshold}% of"
    mail_admins(
        f"Claude budget: {status.feature} {verb} its daily budget",
        f"{status.feature} has cost ${status.cost_usd:.2f} on {status.day}, "
        f"{status.share:.0f}% of its ${status.budget_usd} daily budget "
        "(DJANGO_CLAUDE_BUDGETS).",
        fail_silently=True,
    )
