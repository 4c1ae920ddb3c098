"""Budgets alert once per feature, day and threshold; retention; tasks; schedules."""

from __future__ import annotations

import datetime
import json
import logging
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from django_claude import tasks
from django_claude.costs import budgets, retention
from django_claude.models import BudgetAlert, CallRecord, DailyCost
from django_claude.signals import budget_exceeded


def spend(feature: str, cost: str, when: datetime.datetime | None = None) -> None:
    CallRecord.objects.create(
        created_at=when or timezone.now(),
        feature=feature,
        model_requested="claude-sonnet-4-6",
        model="claude-sonnet-4-6",
        outcome="ok",
        cost_usd=Decimal(cost),
    )


def test_budget_alerts_once_per_threshold(db, settings, caplog):
    settings.DJANGO_CLAUDE_BUDGETS = {"support": 1.00, "search": "5"}
    seen = []

    def receiver(**kwargs):
        seen.append((kwargs["feature"], kwargs["threshold"], kwargs["cost_usd"]))

    budget_exceeded.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="django_claude.budget"):
            spend("support", "0.79")
            assert budgets.check_budgets() == []
            spend("support", "0.06")  # 0.85: over 80%
            assert [a.threshold for a in budgets.check_budgets()] == [80]
            assert budgets.check_budgets() == []  # once, not every hour
            spend("support", "0.20")  # 1.05: over 100%
            assert [a.threshold for a in budgets.check_budgets()] == [100]
            assert budgets.check_budgets() == []
    finally:
        budget_exceeded.disconnect(receiver)
    assert seen == [("support", 80, Decimal("0.85")), ("support", 100, Decimal("1.05"))]
    lines = [(r.levelno, json.loads(r.getMessage())) for r in caplog.records]
    assert [(level, line["event"], line["threshold"]) for level, line in lines] == [
        (logging.WARNING, "claude.budget", 80),
        (logging.ERROR, "claude.budget", 100),
    ]
    assert len(mail.outbox) == 2
    assert "support" in mail.outbox[1].subject and "over" in mail.outbox[1].subject
    assert BudgetAlert.objects.count() == 2


def test_budget_counts_only_the_day_in_site_time(db, settings):
    settings.TIME_ZONE = "UTC"
    settings.DJANGO_CLAUDE_BUDGETS = {"support": 1}
    spend("support", "5", when=timezone.now() - datetime.timedelta(days=1))
    assert budgets.check_budgets() == []


def test_purge_in_batches(db, settings):
    settings.DJANGO_CLAUDE_RETENTION_DAYS = 30
    old = timezone.now() - datetime.timedelta(days=31)
    for _ in range(5):
        spend("f", "0", when=old)
    spend("f", "0", when=timezone.now() - datetime.timedelta(days=29))
    assert retention.purge_old_records(batch_size=2) == 5
    assert CallRecord.objects.count() == 1


def test_tasks_call_the_services(db, settings):
    settings.DJANGO_CLAUDE_BUDGETS = {"f": 1}
    spend("f", "2")
    assert tasks.rollup_daily_costs.delay().get() >= 1
    assert DailyCost.objects.filter(day=timezone.localdate(), feature="f").exists()
    assert tasks.rollup_daily_costs.delay(timezone.localdate().isoformat()).get() == 1
    assert tasks.check_budgets.delay().get() == 2
    assert tasks.purge_old_records.delay().get() == 0


def test_install_schedules_is_idempotent(db):
    out = StringIO()
    call_command("claude_install_schedules", stdout=out)
    assert out.getvalue().count("installed") == 6
    out = StringIO()
    call_command("claude_install_schedules", stdout=out)
    assert out.getvalue().count("updated") == 6
    assert PeriodicTask.objects.count() == 6
    tasks_by_name = {t.task: t for t in PeriodicTask.objects.all()}
    assert set(tasks_by_name) == {
        "django_claude.tasks.rollup_daily_costs",
        "django_claude.tasks.check_budgets",
        "django_claude.tasks.purge_old_records",
        "django_claude.tasks.check_smell_pass_rates",
        "django_claude.tasks.reconcile_costs",
        "django_claude.tasks.check_canaries",
    }
    guard = tasks_by_name["django_claude.tasks.check_canaries"].crontab
    assert (guard.minute, guard.hour) == ("*", "*")  # every minute
    reconcile = tasks_by_name["django_claude.tasks.reconcile_costs"].crontab
    assert (reconcile.minute, reconcile.hour) == ("45", "6")
    rollup = tasks_by_name["django_claude.tasks.rollup_daily_costs"].crontab
    assert (rollup.minute, rollup.hour) == ("15", "0")
    assert str(rollup.timezone) == "UTC"


def test_install_schedules_needs_celery_beat(db, settings):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_celery_beat"]
    with pytest.raises(CommandError, match="CELERY_BEAT_SCHEDULE"):
        call_command("claude_install_schedules", stdout=StringIO())
