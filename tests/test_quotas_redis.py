"""A USD quota holds across processes: 16 threads in each of 2 processes
spend one quota on Redis, and never past it."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest
from django.utils import timezone

import django_claude
from django_claude.quotas.estimate import worst_case
from tests.test_multiprocess import _test_database_url

MODEL = "claude-opus-5"
USAGE = {"input_tokens": 100, "output_tokens": 50}  # $0.00175 a call
REQUEST = {"messages": [{"role": "user", "content": "q"}], "max_tokens": 200}
LIMIT = Decimal("0.30")

WORKER = """
import json, threading
from django.conf import settings
import django_claude

settings.DJANGO_CLAUDE_BASE_URL = {url!r}
settings.DJANGO_CLAUDE_API_KEY = "sk-ant-test-fake-key-0000"
settings.DJANGO_CLAUDE_DEFAULT_MODEL = {model!r}
settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0
settings.DJANGO_CLAUDE_QUOTAS = {quotas!r}
results = []
lock = threading.Lock()
go = threading.Barrier(16)

def spend():
    go.wait()
    for _ in range(200):
        result = django_claude.call("q", feature="shared", max_tokens=200)
        with lock:
            results.append((result.outcome, str(result.cost_usd)))
        if result.outcome == "limited":
            return

threads = [threading.Thread(target=spend) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
django_claude.flush_records()
print(json.dumps(results))
"""


@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_processes_of_16_threads_never_spend_past_a_usd_quota(fake_anthropic, settings):
    fake_anthropic.usage = USAGE
    quotas = {"shared-usd": {"window": "day", "usd": str(LIMIT)}}
    settings.DJANGO_CLAUDE_QUOTAS = quotas
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = MODEL
    code = "import django; django.setup()\n" + WORKER.format(
        url=fake_anthropic.url, model=MODEL, quotas=quotas
    )
    env = {
        **__import__("os").environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        **_test_database_url(),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
    results = [entry for out, _ in outputs for entry in json.loads(out.decode())]
    served = [Decimal(cost) for outcome, cost in results if outcome == "ok"]
    assert all(outcome in ("ok", "limited") for outcome, _ in results)
    assert sum(served) <= LIMIT  # never past the limit
    worst = worst_case(REQUEST, [MODEL], on=timezone.now().date()).usd
    assert worst is not None
    assert LIMIT - sum(served) < worst  # served until less than one call's worst case was left
    assert fake_anthropic.count(MODEL) == len(served)  # a limited call was never sent
    # Every reservation was settled to the real cost: the counter is the spend.
    (status,) = django_claude.quota_status(feature="shared")
    assert status.used == sum(served)
    if _test_database_url():  # both processes recorded into this test's database
        from django_claude.models import CallRecord

        recorded = CallRecord.objects.filter(feature="shared", outcome="ok")
        assert sum(r.cost_usd for r in recorded) == sum(served) <= LIMIT
        assert CallRecord.objects.filter(feature="shared", outcome="limited").count() == 32
