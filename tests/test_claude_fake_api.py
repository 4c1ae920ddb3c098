"""``manage.py claude_fake_api``: offline development with one setting."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import django_claude
from django_claude.management.commands.claude_fake_api import parse_fault
from django_claude.models import CallRecord
from django_claude.testing import Fault

ROOT = Path(__file__).resolve().parent.parent
PRIMARY = "claude-sonnet-4-6"
FALLBACK = "claude-haiku-4-5-20251001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """``manage.py claude_fake_api`` in a subprocess, its output read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "claude_fake_api", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} in {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def served():
    started: list[Served] = []

    def start(*args: str) -> Served:
        started.append(Served(*args))
        return started[-1]

    yield start
    for one in started:
        if one.process.poll() is None:
            one.process.kill()
            one.process.wait()


def test_offline_development_is_one_setting(claude, settings, served):
    port = free_port()
    server = served("--port", str(port), "--always", f"{PRIMARY}:529")
    setting = server.wait_for("DJANGO_CLAUDE_BASE_URL")
    assert setting.strip() == f'DJANGO_CLAUDE_BASE_URL = "http://127.0.0.1:{port}"'
    server.wait_for(f"{PRIMARY}: every request 529")
    settings.DJANGO_CLAUDE_BASE_URL = f"http://127.0.0.1:{port}"  # the one setting
    result = django_claude.call("What is Django?", feature="offline")
    assert result.outcome == "fallback" and result.model == FALLBACK  # the degraded path
    assert result.text == "Hello from the fake Claude."
    assert CallRecord.objects.get(feature="offline").attempts == 5  # 4 primary, 1 fallback
    assert claude.count() == 0  # not the test suite's own fake
    server.wait_for(f"{FALLBACK} -> 200")
    assert server.stop() == 0
    server.wait_for("Stopped.")
    assert sum(f"{PRIMARY} -> 529" in line for line in server.seen) == 4


def test_scripted_faults_then_normal_answers(claude, settings, served):
    port = free_port()
    server = served("--port", str(port), "--fault", f"{PRIMARY}:529", "--reply", "offline!")
    server.wait_for(f"{PRIMARY}: next request 529")
    settings.DJANGO_CLAUDE_BASE_URL = f"http://127.0.0.1:{port}"
    first = django_claude.call("hi", feature="offline")
    assert (first.outcome, first.attempts, first.text) == ("ok", 2, "offline!")  # one retry
    assert django_claude.call("hi again", feature="offline").attempts == 1
    assert server.stop() == 0


def test_a_port_in_use_is_a_command_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command("claude_fake_api", "--port", str(port), stdout=StringIO())


@pytest.mark.parametrize(
    "bad", ["529", "claude-sonnet-4-6", "claude-sonnet-4-6:200", ":529", "m:slow=x", "m:often"]
)
def test_a_bad_fault_is_a_command_error(bad):
    with pytest.raises(CommandError, match="MODEL:STATUS|HTTP error|slow="):
        call_command("claude_fake_api", "--fault", bad, stdout=StringIO())


def test_parse_fault():
    assert parse_fault("claude-sonnet-4-6:529") == ("claude-sonnet-4-6", Fault(status=529))
    assert parse_fault("m:drop") == ("m", Fault(drop=True))
    assert parse_fault("m:slow=2.5") == ("m", Fault(delay=2.5))
    assert parse_fault("vendor:model:429") == ("vendor:model", Fault(status=429))


def test_without_a_key_it_says_which_key_to_set(settings, monkeypatch):
    from django_claude.management.commands.claude_fake_api import Command

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    settings.DJANGO_CLAUDE_API_KEY = None
    out = StringIO()
    command = Command(stdout=out)

    class Server:
        url = "http://127.0.0.1:8765"

    command._announce(Server(), [], [])
    # On this machine the base URL is the one setting: a placeholder key is sent.
    assert 'DJANGO_CLAUDE_BASE_URL = "http://127.0.0.1:8765"' in out.getvalue()
    assert "DJANGO_CLAUDE_API_KEY" not in out.getvalue()
    assert "No API key is needed" in out.getvalue()

    class Shared:
        url = "http://192.168.1.20:8765"  # --host on a LAN address

    out.truncate(0)
    command._announce(Shared(), [], [])
    assert 'DJANGO_CLAUDE_API_KEY = "sk-ant-fake"' in out.getvalue()
    settings.DJANGO_CLAUDE_API_KEY = "sk-ant-real"
    out.truncate(0)
    command._announce(Shared(), [], [])
    assert "DJANGO_CLAUDE_API_KEY" not in out.getvalue()


def test_no_key_is_needed_for_an_api_on_this_machine(claude, settings, monkeypatch):
    """No key anywhere and the base URL on this machine: calls reach the fake."""
    import django_claude
    from django_claude.models import CallRecord

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    settings.DJANGO_CLAUDE_API_KEY = None
    settings.DJANGO_CLAUDE_BASE_URL = claude.url.replace("127.0.0.1", "localhost")
    result = django_claude.call("Hello offline", feature="offline")
    assert result.outcome == "ok"
    assert claude.count() == 1
    assert CallRecord.objects.get().outcome == "ok"
