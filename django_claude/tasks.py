"""Celery tasks: each a thin call into a service (needs ``celery`` installed)."""

from __future__ import annotations

import datetime

from celery import shared_task


@shared_task(name="django_claude.tasks.rollup_daily_costs")
def rollup_daily_costs(day: str | None = None) -> int:
    """Save DailyCost rows for ``day`` (default: yesterday and today, site time)."""
    from django_claude.costs import reports

    if day:
        return reports.rollup_day(datetime.date.fromisoformat(day))
    last = reports.yesterday()
    return reports.rollup_day(last) + reports.rollup_day(last + datetime.timedelta(days=1))


@shared_task(name="django_claude.tasks.check_budgets")
def check_budgets() -> int:
    from django_claude.costs import budgets

    return len(budgets.check_budgets())


@shared_task(name="django_claude.tasks.purge_old_records")
def purge_old_records() -> int:
    from django_claude.costs import retention

    return retention.purge_old_records()


@shared_task(name="django_claude.tasks.smell_test", ignore_result=True)
def smell_test(request_id: str) -> str:
    """Judge one sampled call (queued by call(); args carry only the id)."""
    from django_claude.smell import judge as evals

    return evals.run_smell_test(request_id)


@shared_task(name="django_claude.tasks.check_smell_pass_rates")
def check_smell_pass_rates() -> list[str]:
    """Close stale pending verdicts, then compare pass rates with baselines."""
    from django_claude.smell import judge as evals

    return evals.check_pass_rates()
