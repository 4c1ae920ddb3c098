"""``manage.py demo``: migrate, a demo admin, a burst of real traffic, serve.

Without ANTHROPIC_API_KEY the site talks to the local fake API from
``django_claude.testing`` with faults switched on (rate limits, overloads, a
slow upstream), a model flip and a rollback, so the dashboard, the records,
the routes and the cost report all have something true to show. With a key
it sends a few real calls and no faults. Before that it seeds two weeks of
marked demo history (``example.demo_history``) so the dashboard's charts have
a shape. The JSON call lines go to a file (``DEMO_CALL_LOG``, default
``example_project/demo-calls.log``), not the terminal. Then it serves the site
with uvicorn (ASGI, so ``/astream/`` streams); ``DEMO_SERVE=0`` stops before serving.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.utils import timezone

from django_claude import routing
from django_claude.conf import conf
from django_claude.costs import rollups
from django_claude.models import CallRecord
from django_claude.recording import writer
from django_claude.smell.background import background
from django_claude.testing import FakeAnthropic, Fault
from example import demo_history

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-claude"
JUDGE_MARK = "PASS or FAIL"
CALL_LOG = Path(__file__).resolve().parents[3] / "demo-calls.log"
DASHBOARD = "/admin/django_claude/callrecord/dashboard/"

QUESTIONS = {
    "support-summary": [
        "Summarise ticket 4121: the printer on floor 3 prints blank pages since Monday.",
        "Summarise ticket 4122: my email is ada@example.com and I cannot log in.",
        "Summarise ticket 4123: invoices from March show the wrong VAT rate.",
        "Summarise ticket 4124: the mobile app crashes when I open settings.",
    ],
    "search-answer": [
        "How do I reset my password?",
        "What are your opening hours on public holidays?",
        "Can I change the delivery address after ordering?",
    ],
    "example-ask": [
        "What is Django's ORM good at?",
        "Explain database transactions in one paragraph.",
        "Why should an API client have a timeout?",
    ],
}


def _fake_answer(body: dict[str, Any]) -> str:
    """Canned answers; the smell-test judge mostly says PASS."""
    system = str(body.get("system", ""))
    content = str(body.get("messages", [{}])[-1].get("content", ""))
    if JUDGE_MARK in system:
        return "FAIL" if "VAT" in content else "PASS"
    if "ticket" in content.lower():
        return "The customer reports a problem and asks for help; priority: normal."
    return "Here is a short, helpful answer from the demo's fake Claude."


class Command(BaseCommand):
    help = "Set up the example site, send it demo traffic, and serve it (DEMO_SERVE=0: don't)."
    # The checks run with migrate, once the fake API (and its key) is in place.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        port = os.environ.get("PORT") or "8000"
        parser.add_argument(
            "--addrport",
            default=f"127.0.0.1:{port}",
            help="Where to serve, host:port (default 127.0.0.1:$PORT, else 127.0.0.1:8000).",
        )

    def handle(self, *args: Any, addrport: str, **options: Any) -> None:
        serve = os.environ.get("DEMO_SERVE", "1") != "0"
        host, port = self._address(addrport)
        if serve:
            self._check_port_free(host, port)
        call_log = Path(os.environ.get("DEMO_CALL_LOG") or CALL_LOG).resolve()
        self._calls_to_file(call_log)
        fake = None
        if not settings.DJANGO_CLAUDE_API_KEY and not os.environ.get("ANTHROPIC_API_KEY"):
            fake = FakeAnthropic().start()
            fake.responder = _fake_answer
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
        user = self._demo_user()
        self._history(user)
        today = timezone.localdate()
        if CallRecord.objects.filter(created_at__date=today).exists():
            self.stdout.write("Demo traffic is already recorded for today: reusing it.")
        elif fake is not None:
            self._fake_traffic(fake, user)
        else:
            self._real_traffic(user)
        writer.flush_pending()
        rollups.rollup_day(today)
        self.stdout.write(f"One JSON line per call (what claude_ingest_log reads): {call_log}")
        self.stdout.write(self.style.SUCCESS(f"\nCost report for today ({today}):"))
        call_command("claude_cost_report", "--date", today.isoformat(), stdout=self.stdout)
        if not serve:
            self.stdout.write("DEMO_SERVE=0: not serving.")
            return
        self._serve(host, port, call_log)

    @staticmethod
    def _address(addrport: str) -> tuple[str, int]:
        host, _, port = addrport.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"--addrport {addrport!r}: expected host:port, e.g. 127.0.0.1:8000")
        return host or "127.0.0.1", int(port)

    @staticmethod
    def _check_port_free(host: str, port: int) -> None:
        """Say so now, not after a minute of demo traffic."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise CommandError(f"cannot serve on {host}:{port}: {exc}") from exc
                raise CommandError(
                    f"Port {port} on {host} is in use. Pick another: make demo PORT={port + 1}"
                ) from exc

    @staticmethod
    def _calls_to_file(path: Path) -> None:
        """The call lines go to ``path`` (appended), not the terminal."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        calls = logging.getLogger("django_claude.calls")
        for old in list(calls.handlers):
            calls.removeHandler(old)
            old.close()
        calls.addHandler(handler)
        calls.setLevel(logging.INFO)
        calls.propagate = False

    def _history(self, user: Any) -> None:
        seeded = demo_history.seed_history(user=user)
        if seeded.days:
            self.stdout.write(
                f"Seeded {seeded.days} days of demo history: {seeded.calls} calls marked "
                f'tags={{"demo": "seeded"}} (prompt prefix {demo_history.PREFIX.strip()!r}), '
                "rolled up per day."
            )
        else:
            self.stdout.write(
                f"Demo history for the last {demo_history.DAYS} days is already there: "
                "nothing added."
            )
        if seeded.route_change:
            self.stdout.write(
                f"  {demo_history.CHANGE_DAYS_AGO} days ago {demo_history.CHANGED_FEATURE} "
                f"moved to {demo_history.CHANGED_TO}: cheaper, and its smell-test pass rate "
                "fell under its baseline. See it on the dashboard "
                f"({DASHBOARD}?feature={demo_history.CHANGED_FEATURE}) and roll it back "
                "under Claude > Model routes."
            )

    def _serve(self, host: str, port: int, call_log: Path) -> None:
        import uvicorn

        from example.asgi import application

        self._calls_to_file(call_log)  # django.setup() configured LOGGING again

        self.stdout.write(
            self.style.SUCCESS(
                f"Serving on http://{host}:{port}/ with uvicorn (ASGI; admin: /admin/, "
                f"dashboard: {DASHBOARD}, streaming: /astream/?q=hello). Ctrl-C to stop."
            )
        )
        self.stdout.flush()
        # In this process: the fake API and the settings the demo set stay in force.
        uvicorn.run(application, host=host, port=port, lifespan="off", log_level="info")

    def _demo_user(self) -> Any:
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
        return user

    def _ask(self, client: Client, feature: str, question: str) -> None:
        client.post("/", {"question": question, "feature": feature})

    def _burst(self, client: Client, rounds: int = 1) -> None:
        for _ in range(rounds):
            for feature, questions in QUESTIONS.items():
                for question in questions:
                    self._ask(client, feature, question)

    def _fake_traffic(self, fake: FakeAnthropic, user: Any) -> None:
        """Real views, the real call path, the fake API with its faults."""
        settings.DJANGO_CLAUDE_BACKOFF_BASE = 0.05  # keep the demo quick
        settings.DJANGO_CLAUDE_BACKOFF_MAX = 0.5
        settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.3
        settings.DJANGO_CLAUDE_BREAKER_COOLDOWN = 1.0  # so the demo sees it close again
        client = Client()
        client.force_login(user)
        primary = conf.DEFAULT_MODEL
        self.stdout.write("Sending demo traffic through the example views...")
        self._burst(client, rounds=2)
        self.stdout.write("  rate limits (429 with retry-after)")
        fake.script(primary, [Fault(status=429, retry_after_ms="150"), 0] * 3)
        self._burst(client)
        self.stdout.write("  overloads (529): the fallback model answers")
        fake.always(primary, 529)
        for question in QUESTIONS["support-summary"][:3]:
            self._ask(client, "support-summary", question)
        fake.always(primary, Fault())
        self.stdout.write("  ...the circuit breaker opened; one probe closes it again")
        time.sleep(1.1)
        self.stdout.write("  a full outage: both models down, the degraded answer")
        fake.always(primary, 529)
        fake.always(conf.FALLBACK_MODEL, 529)
        self._ask(client, "example-ask", "Is anyone there?")
        self._ask(client, "search-answer", "Is the service down?")
        fake.always(primary, Fault())
        fake.always(conf.FALLBACK_MODEL, Fault())
        time.sleep(1.1)
        self.stdout.write("  a slow upstream")
        fake.script(primary, [Fault(delay=0.4)] * 4)
        self._burst(client)
        self.stdout.write("  streaming answers")
        for question in QUESTIONS["example-ask"]:
            response: Any = client.get("/stream/", {"q": question})  # a streaming response
            b"".join(response.streaming_content)
        self.stdout.write("  a model flip for support-summary, then a rollback")
        routing.set_route(
            feature="support-summary",
            model="claude-opus-4-7",
            fallback_model=conf.FALLBACK_MODEL,
            user=user,
            reason="demo: try Opus for ticket summaries",
        )
        self._burst(client)
        routing.rollback(
            feature="support-summary", user=user, reason="demo: Opus answers are too long"
        )
        self._burst(client)
        writer.flush_pending()  # a sampled call's judge is announced once its row is in
        background.drain()  # the smell-test judge's calls are recorded too
        writer.flush_pending()
        count = CallRecord.objects.filter(created_at__date=timezone.localdate()).count()
        self.stdout.write(self.style.SUCCESS(f"  {count} calls recorded."))

    def _real_traffic(self, user: Any) -> None:
        client = Client()
        client.force_login(user)
        self.stdout.write("Sending three real calls (ANTHROPIC_API_KEY is set)...")
        for feature in QUESTIONS:
            self._ask(client, feature, QUESTIONS[feature][0])
