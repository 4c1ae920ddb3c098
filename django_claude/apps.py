from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete, post_save


class DjangoClaudeConfig(AppConfig):
    name = "django_claude"
    verbose_name = "Claude"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_claude import checks as claude_checks
        from django_claude import logs, shared_cache
        from django_claude.conf import conf
        from django_claude.judging import judge_sampled_call
        from django_claude.models import ModelPrice
        from django_claude.recording import pricing, shutdown
        from django_claude.signals import call_sampled

        checks.register(claude_checks.check_settings, "django_claude")
        checks.register(claude_checks.check_api_key, "django_claude")
        checks.register(claude_checks.check_smell_test, "django_claude")
        checks.register(claude_checks.check_smell_test_deploy, "django_claude", deploy=True)
        checks.register(claude_checks.check_prices, "django_claude", checks.Tags.database)
        if conf.PROMETHEUS and find_spec("prometheus_client") is not None:
            import_module("django_claude.contrib.prometheus").enable()  # counts every call

        def _prices_changed(**kwargs: object) -> None:
            pricing.invalidate()

        post_save.connect(
            _prices_changed, sender=ModelPrice, dispatch_uid="django_claude.prices", weak=False
        )
        post_delete.connect(
            _prices_changed, sender=ModelPrice, dispatch_uid="django_claude.prices_del", weak=False
        )
        # Celery when the site configured it, else a thread of this process (judging.py).
        call_sampled.connect(judge_sampled_call, dispatch_uid="django_claude.smell.queue_judge")
        # The call lines reach stderr unless the site's LOGGING says where they go.
        logs.show_call_lines()
        # SIGTERM: the records still queued are written before the process goes.
        shutdown.drain_on_sigterm()
        # The shared cache's client library is loaded here, not in the first call.
        shared_cache.warm()
