from __future__ import annotations

import importlib.util

from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete, post_save


class DjangoClaudeConfig(AppConfig):
    name = "django_claude"
    verbose_name = "Claude"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_claude import checks as claude_checks
        from django_claude.models import ModelPrice
        from django_claude.recording import pricing
        from django_claude.signals import call_sampled

        if importlib.util.find_spec("celery"):
            from django_claude.tasks import queue_judge
        else:  # nothing can judge a sampled call: its text is dropped at once, verdict "error"
            from django_claude.smell.verdicts import judge_unavailable as queue_judge

        checks.register(claude_checks.check_settings, "django_claude")
        checks.register(claude_checks.check_api_key, "django_claude")
        checks.register(claude_checks.check_smell_test, "django_claude")
        checks.register(claude_checks.check_prices, "django_claude", checks.Tags.database)

        def _prices_changed(**kwargs: object) -> None:
            pricing.invalidate()

        post_save.connect(
            _prices_changed, sender=ModelPrice, dispatch_uid="django_claude.prices", weak=False
        )
        post_delete.connect(
            _prices_changed, sender=ModelPrice, dispatch_uid="django_claude.prices_del", weak=False
        )
        call_sampled.connect(queue_judge, dispatch_uid="django_claude.smell.queue_judge")
