"""Serve the bundled fake Messages API in the foreground, for offline development."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_claude.conf import conf, is_loopback_url
from django_claude.testing import FakeAnthropic, Fault

DEFAULT_PORT = 8765


def parse_fault(text: str) -> tuple[str, Fault]:
    """``MODEL:STATUS`` (an HTTP error status, or ``drop`` for a dropped
    connection, or ``slow=SECONDS`` for a late answer) as a model and a ``Fault``.

    Raises ``ValueError`` with what is wrong.
    """
    model, sep, what = text.rpartition(":")
    if not sep or not model.strip() or not what:
        raise ValueError(f"{text!r} is not MODEL:STATUS (e.g. claude-sonnet-4-6:529)")
    if what == "drop":
        return model, Fault(drop=True)
    if what.startswith("slow="):
        try:
            seconds = float(what.removeprefix("slow="))
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 600:
            raise ValueError(f"{text!r}: slow= takes seconds, from 0 to 600")
        return model, Fault(delay=seconds)
    if not what.isdigit() or not 400 <= int(what) <= 599:
        raise ValueError(f"{text!r}: the status must be an HTTP error (400-599), drop or slow=S")
    return model, Fault(status=int(what))


def _describe(fault: Fault) -> str:
    if fault.drop:
        return "drop"
    if fault.delay:
        return f"slow={fault.delay:g}s"
    return str(fault.status or 200)


class Command(BaseCommand):
    help = (
        "Serve the fake Anthropic Messages API (django_claude.testing) on this machine "
        "until Ctrl-C, for development without a key or a network; --fault and --always "
        "script errors (MODEL:STATUS) to see retries, the fallback and the degraded answer."
    )
    requires_system_checks: list[str] = []  # it needs neither a database nor a key

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="MODEL:STATUS",
            help="answer the next request for MODEL this way (repeat to queue several)",
        )
        parser.add_argument(
            "--always",
            action="append",
            default=[],
            metavar="MODEL:STATUS",
            help="answer every request for MODEL this way (after its --fault queue)",
        )
        parser.add_argument("--reply", default=None, help="the text of every normal answer")

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        fault: list[str],
        always: list[str],
        reply: str | None,
        **options: Any,
    ) -> None:
        try:
            scripted = [parse_fault(text) for text in fault]
            permanent = [parse_fault(text) for text in always]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not 0 <= port <= 65535:
            raise CommandError(f"--port {port}: not a port number")
        try:
            server = _LoggingFake(host=host, port=port, out=self._request_line)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        for model, one in scripted:
            server.script(model, [one])
        for model, one in permanent:
            server.always(model, one)
        if reply is not None:
            server.reply_text = reply
        server.start()
        try:
            self._announce(server, scripted, permanent)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        self.stdout.write("Stopped.")

    def _announce(
        self,
        server: FakeAnthropic,
        scripted: list[tuple[str, Fault]],
        permanent: list[tuple[str, Fault]],
    ) -> None:
        self.stdout.write(f"Fake Anthropic API on {server.url} (Ctrl-C to stop).")
        self.stdout.write("Point django-claude at it in your settings:\n")
        self.stdout.write(self.style.SUCCESS(f'    DJANGO_CLAUDE_BASE_URL = "{server.url}"'))
        if not conf.api_key_anywhere():
            if is_loopback_url(server.url):
                self.stdout.write("(No API key is needed: on this machine a placeholder is sent.)")
            else:
                self.stdout.write(
                    self.style.SUCCESS('    DJANGO_CLAUDE_API_KEY = "sk-ant-fake"')
                    + "  # no key is set here; the fake accepts any"
                )
        self.stdout.write("")
        for model, one in scripted:
            self.stdout.write(f"{model}: next request {_describe(one)}")
        for model, one in permanent:
            self.stdout.write(f"{model}: every request {_describe(one)}")
        self.stdout.flush()

    def _request_line(self, model: str, fault: Fault) -> None:
        self.stdout.write(f"{model} -> {_describe(fault)}")
        self.stdout.flush()


class _LoggingFake(FakeAnthropic):
    """The fake API, saying what it answered to each request, and keeping only
    the last ``KEEP`` requests (it may run all day)."""

    KEEP = 100

    def __init__(self, *, host: str, port: int, out: Any) -> None:
        super().__init__(host=host, port=port)
        self._say = out

    def _next_fault(self, model: str, body: dict[str, Any], headers: dict[str, str]) -> Fault:
        fault = super()._next_fault(model, body, headers)
        with self._lock:
            del self.requests[: -self.KEEP]
        self._say(model, fault)
        return fault
