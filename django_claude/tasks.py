"""Celery tasks, each a one-line call into a service, and the receiver that
queues the smell-test judge (needs ``celery`` installed).

The tasks' ``name=`` are what django-celery-beat schedules store: never change them.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from celery import shared_task

from django_claude.conf import conf
from django_claude.costs import budgets, reconcile, retention, rollups
from django_claude.routing import guard
from django_claude.smell import alerts, verdicts
from django_claude.smell.background import background

logger = logging.getLogger(__name__)


@shared_task(name="django_claude.tasks.rollup_daily_costs")
def rollup_daily_costs(day: str | None = None) -> int:
    """Save DailyCost rows for ``day`` (default: yesterday and today, site time)."""
    return rollups.rollup_latest(day=datetime.date.fromisoformat(day) if day else None)


@shared_task(name="django_claude.tasks.check_budgets")
def check_budgets() -> int:
    """Alert on budgets crossed today; returns how many alerts were sent."""
    return len(budgets.check_budgets())


@shared_task(name="django_claude.tasks.purge_old_records")
def purge_old_records() -> int:
    return retention.purge_old_records()


@shared_task(name="django_claude.tasks.reconcile_costs")
def reconcile_costs(days: int = 2) -> int:
    """Reconcile the last ``days`` UTC days before today with Anthropic's bill
    (two: its cost report may lag behind the day's end); returns the drifts.
    Without an admin key there is nothing to read: it says so and returns."""
    if not conf.ADMIN_API_KEY:
        logger.info("claude reconcile: no DJANGO_CLAUDE_ADMIN_API_KEY, nothing reconciled")
        return 0
    last = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
    lines = reconcile.reconcile(last - datetime.timedelta(days=days - 1), last)
    tolerance = conf.RECONCILE_TOLERANCE
    return sum(1 for line in lines if not line.within(tolerance))


@shared_task(name="django_claude.tasks.smell_test", ignore_result=True)
def smell_test(request_id: str) -> str:
    """Judge one sampled call (args carry only the id, never its text)."""
    return verdicts.run_smell_test(request_id)


@shared_task(name="django_claude.tasks.check_smell_pass_rates")
def check_smell_pass_rates() -> list[str]:
    """Close stale pending verdicts, then compare pass rates with baselines."""
    return alerts.check_pass_rates()


@shared_task(name="django_claude.tasks.check_canaries")
def check_canaries() -> list[int]:
    """Compare each running canary with its control and stop each that is
    worse; returns the ids of the canaries stopped."""
    return [canary.pk for canary in guard.check_canaries()]


def queue_judge(sender: object, *, request_id: uuid.UUID, **kwargs: object) -> None:
    """Receiver of ``call_sampled``: send the judge task, off the request path
    (inline with ``CELERY_TASK_ALWAYS_EAGER``, where the judge runs at once).
    When it cannot be queued the call's smell test is abandoned at once."""
    if smell_test.app.conf.task_always_eager:
        _send_judge(request_id)
        return
    background.submit(
        lambda: _send_judge(request_id),
        on_full=lambda: verdicts.abandon_smell_test(request_id),
    )


def _send_judge(request_id: uuid.UUID) -> None:
    try:
        smell_test.delay(str(request_id))
    except Exception as exc:
        logger.warning(
            "claude smell test: could not queue the judge for %s (%s)",
            request_id,
            type(exc).__name__,
        )
        verdicts.abandon_smell_test(request_id)
