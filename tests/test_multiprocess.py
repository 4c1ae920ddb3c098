"""State that every process of a site must share, through Redis; and what a
fresh process does when its first calls come from many threads at once."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import time

import pytest

import django_claude
from django_claude.client.breaker import CircuitBreaker

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
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
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
        from django_claude.client.breaker import CircuitBreaker
        probe = CircuitBreaker("claude-shared")
        print(probe.allow(now=time.time() + 31))
        probe.record_success()
        """
    )
    assert out.strip() == "True"
    assert CircuitBreaker("claude-shared").allow()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_flip_reaches_another_process_within_two_seconds():
    from django_claude.routing import set_route

    set_route(feature="live", model="claude-sonnet-4-6", fallback_model="claude-haiku-4-5")
    script = "import django; django.setup()\n" + textwrap.dedent(
        """
        import time
        from django_claude.routing import active_route
        first = active_route("live").model
        print("ready", first, flush=True)
        ends = time.monotonic() + 10
        while time.monotonic() < ends:
            model = active_route("live").model
            if model != first:
                print("changed", model, flush=True)
                break
            time.sleep(0.02)
        else:
            print("unchanged", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **_test_database_url()},
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["ready", "claude-sonnet-4-6"]
        flipped = time.monotonic()
        set_route(feature="live", model="claude-opus-4-7", fallback_model="claude-haiku-4-5")
        line = child.stdout.readline().split()
        seen_after = time.monotonic() - flipped
    finally:
        child.kill()
        child.wait()
    assert line == ["changed", "claude-opus-4-7"]
    assert seen_after < 2.0


def test_a_fresh_process_answers_its_first_calls_from_many_threads(tmp_path):
    """A gunicorn gthread worker's first requests arrive together: whatever
    is set up lazily (imports, clients, caches of settings) must be set up
    once, race-free, and every call answered and recorded."""
    out = run_in_another_process(
        """
        import threading
        from django.conf import settings
        from django.core.management import call_command
        import django_claude
        from django_claude.testing import FakeAnthropic

        call_command("migrate", verbosity=0)
        fake = FakeAnthropic().start()
        settings.DJANGO_CLAUDE_BASE_URL = fake.url
        start = threading.Barrier(24)
        outcomes = []

        def first_call(n):
            start.wait()
            outcomes.append(django_claude.call(f"question {n}", feature="first").outcome)

        threads = [threading.Thread(target=first_call, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert django_claude.flush_records(20)
        from django_claude.models import CallRecord

        recorded = CallRecord.objects.filter(feature="first").count()
        print(sorted({str(o) for o in outcomes}), len(outcomes), recorded)
        fake.stop()
        """,
        DATABASE_URL=f"sqlite:///{tmp_path}/first.sqlite3",
        CACHE_URL="locmemcache://",
    )
    outcomes, answered, recorded = out.split("\n")[-2].rsplit(" ", 2)
    assert (answered, recorded) == ("24", "24")  # none raised, every one recorded
    assert set(ast.literal_eval(outcomes)) <= {"ok", "fallback"}, outcomes  # each answered
