"""State that every process of a site must share, through Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import django_claude
from django_claude.resilience import CircuitBreaker

PRIMARY = "claude-sonnet-4-6"


def _test_database_url() -> dict[str, str]:
    """The other process writes to this test run's database, not the real one."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return {}
    return {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}


def run_in_another_process(code: str, **env: str) -> str:
    script = "import django; django.setup()\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_breaker_opened_in_one_process_is_open_in_another(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_BREAKER_THRESHOLD = 3
    fake_anthropic.always(PRIMARY, 529)
    out = run_in_another_process(
        f"""
        from django.conf import settings
        import django_claude
        settings.DJANGO_CLAUDE_BASE_URL = {fake_anthropic.url!r}
        settings.DJANGO_CLAUDE_BREAKER_THRESHOLD = 3
        print(django_claude.call("hi", feature="other-process").outcome)
        """,
        **_test_database_url(),
    )
    assert out.strip() == "fallback"
    assert fake_anthropic.count(PRIMARY) == 3  # the other process opened the breaker
    assert not CircuitBreaker(PRIMARY).allow()

    result = django_claude.call("hi", feature="this-process")
    assert result.outcome == "fallback"
    assert fake_anthropic.count(PRIMARY) == 3  # skipped here without a request
    if _test_database_url():
        from django_claude.models import CallRecord

        assert set(CallRecord.objects.values_list("feature", flat=True)) == {
            "other-process",
            "this-process",
        }


@pytest.mark.redis
def test_breaker_closed_in_one_process_is_closed_in_another(settings):
    settings.DJANGO_CLAUDE_BREAKER_THRESHOLD = 2
    settings.DJANGO_CLAUDE_BREAKER_COOLDOWN = 30.0
    breaker = CircuitBreaker("claude-shared")
    for _ in range(2):
        breaker.allow()
        breaker.record_failure()
    assert not CircuitBreaker("claude-shared").allow()
    out = run_in_another_process(
        """
        import time
        from django_claude.resilience import CircuitBreaker
        probe = CircuitBreaker("claude-shared")
        print(probe.allow(now=time.time() + 31))
        probe.record_success()
        """
    )
    assert out.strip() == "True"
    assert CircuitBreaker("claude-shared").allow()
