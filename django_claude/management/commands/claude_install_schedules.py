"""Create or update django-celery-beat's PeriodicTasks for django-claude."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction

# name: (task, crontab minute, hour) in the site's time zone
SCHEDULES = {
    "django-claude: daily cost rollup": ("django_claude.tasks.rollup_daily_costs", "15", "0"),
    "django-claude: budget check": ("django_claude.tasks.check_budgets", "5", "*"),
    "django-claude: retention purge": ("django_claude.tasks.purge_old_records", "30", "3"),
    "django-claude: reconcile with Anthropic's bill": (
        "django_claude.tasks.reconcile_costs",
        "45",
        "6",
    ),
    "django-claude: smell-test pass rates": (
        "django_claude.tasks.check_smell_pass_rates",
        "*/15",
        "*",
    ),
    "django-claude: canary guard": ("django_claude.tasks.check_canaries", "*", "*"),
}


class Command(BaseCommand):
    help = (
        "Install django-claude's periodic tasks in django-celery-beat: the daily cost "
        "rollup at 00:15 site time, an hourly budget check, a daily purge of old "
        "records, the reconciliation with Anthropic's bill at 06:45, the smell-test "
        "pass-rate check every 15 minutes, the canary guard every minute. Safe to run "
        "again: it updates what it installed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not apps.is_installed("django_celery_beat"):
            raise CommandError(
                "django_celery_beat is not in INSTALLED_APPS; add it, or use the "
                "CELERY_BEAT_SCHEDULE shown in django-claude's README"
            )
        try:
            with transaction.atomic():  # all or none
                done = [self._install(name, *schedule) for name, schedule in SCHEDULES.items()]
        except DatabaseError as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CommandError(
                f"could not write the schedules ({type(exc).__name__}: {first_line}); "
                "has manage.py migrate run for django_celery_beat?"
            ) from None
        for line in done:
            self.stdout.write(line)

    def _install(self, name: str, task: str, minute: str, hour: str) -> str:
        # Here, not at the top: its models cannot load when the app is not installed.
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone=settings.TIME_ZONE,
        )
        _, created = PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "crontab": schedule, "interval": None, "enabled": True},
        )
        return f"{'installed' if created else 'updated'}: {name} ({task})"
