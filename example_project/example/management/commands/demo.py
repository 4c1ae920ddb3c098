"""``manage.py demo``: migrate, a demo admin, a few calls, then serve on :8000.

Without ANTHROPIC_API_KEY the site talks to the local fake API from
``django_claude.testing``, so the whole demo runs offline.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

import django_claude
from django_claude.conf import conf
from django_claude.testing import FakeAnthropic, Fault

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-claude"


class Command(BaseCommand):
    help = "Set up and serve the example site (DEMO_SERVE=0 stops before serving)."
    # The checks run with migrate, once the fake API (and its key) is in place.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")

    def handle(self, *args: Any, addrport: str, **options: Any) -> None:
        fake = None
        if not settings.DJANGO_CLAUDE_API_KEY and not os.environ.get("ANTHROPIC_API_KEY"):
            fake = FakeAnthropic().start()
            settings.DJANGO_CLAUDE_BASE_URL = fake.url
            settings.DJANGO_CLAUDE_API_KEY = "sk-ant-demo-fake-key"
            self.stdout.write(
                self.style.WARNING(
                    "No ANTHROPIC_API_KEY is set, so the demo talks to the local fake Claude "
                    f"API at {fake.url} (django_claude.testing). Answers are canned. "
                    "Set ANTHROPIC_API_KEY to use the real API."
                )
            )
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        self._demo_user()
        if fake is not None:
            self._sample_traffic(fake)
        if os.environ.get("DEMO_SERVE", "1") == "0":
            self.stdout.write("DEMO_SERVE=0: not serving.")
            return
        self.stdout.write(self.style.SUCCESS(f"Serving on http://{addrport}/ (Ctrl-C to stop)"))
        call_command("runserver", addrport, use_reloader=False)

    def _demo_user(self) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        self.stdout.write(
            self.style.SUCCESS(f"Admin login: {DEMO_USER} / {DEMO_PASSWORD} at /admin/")
        )

    def _sample_traffic(self, fake: FakeAnthropic) -> None:
        primary = conf.DEFAULT_MODEL
        fake.script(primary, [Fault(status=429, retry_after_ms="200"), 0])
        fake.script(primary, [529, 529, 529, 529])
        for question in (
            "Summarise ticket 1: the printer on floor 3 is on fire.",
            "Summarise ticket 2: my email is ada@example.com and I cannot log in.",
        ):
            result = django_claude.call(question, feature="demo-support")
            self.stdout.write(
                f"  sample call: outcome={result.outcome} attempts={result.attempts} "
                f"model={result.model} request_id={result.request_id}"
            )
