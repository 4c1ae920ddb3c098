"""A real Celery worker and beat, against Redis, run the rollup from the schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

import django_claude
from django_claude.models import CallRecord, DailyCost, SmellFailure
from django_claude.testing import Fault
from tests.celery_app import app

ROOT = Path(__file__).resolve().parent.parent
BROKER = "redis://127.0.0.1:6379/3"


def worker_database_url() -> dict[str, str]:
    """Point the worker at this test run's database, not the real one."""
    db = connection.settings_dict
    return {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}


def use_broker(app, url):
    """Point this process's Celery app at ``url``, dropping pools made for another."""
    app.conf.broker_url = url
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_worker_and_beat_run_the_daily_rollup(tmp_path):
    redis.Redis.from_url(BROKER).flushdb()
    CallRecord.objects.create(
        created_at=timezone.now(),
        feature="from-beat",
        model_requested="claude-sonnet-4-6",
        model="claude-sonnet-4-6",
        outcome="ok",
        cost_usd=Decimal("0.25"),
    )
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="test: rollup every second",
        task="django_claude.tasks.rollup_daily_costs",
        interval=every_second,
    )
    env = {
        **os.environ,
        **worker_database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    celery = [sys.executable, "-m", "celery", "-A", "tests.celery_app"]
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("worker", "beat")}  # noqa: SIM115
    worker = subprocess.Popen(
        [*celery, "worker", "--pool=solo", "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=ROOT,
        env=env,
        stdout=logs["worker"],
        stderr=subprocess.STDOUT,
    )
    beat = subprocess.Popen(
        [
            *celery,
            "beat",
            "-S",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "-l",
            "info",
            "--pidfile",
            str(tmp_path / "beat.pid"),
        ],
        cwd=ROOT,
        env=env,
        stdout=logs["beat"],
        stderr=subprocess.STDOUT,
    )
    try:
        ends = time.monotonic() + 90
        while (
            time.monotonic() < ends and not DailyCost.objects.filter(feature="from-beat").exists()
        ):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert beat.poll() is None, (tmp_path / "beat.log").read_text()
            time.sleep(0.5)
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in logs.values():
            handle.close()
    row = DailyCost.objects.filter(feature="from-beat").first()
    assert row is not None, (tmp_path / "beat.log").read_text() + (
        tmp_path / "worker.log"
    ).read_text()
    assert row.cost_usd == Decimal("0.25") and row.calls == 1


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_judges_sampled_calls_end_to_end(fake_anthropic, tmp_path):
    redis.Redis.from_url(BROKER).flushdb()
    judge = "claude-haiku-4-5-20251001"
    fake_anthropic.script(judge, [Fault(text="PASS"), Fault(text="FAIL"), Fault(text="PASS")])
    env = {
        **os.environ,
        **worker_database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_CLAUDE_BASE_URL": fake_anthropic.url,
    }
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    was_eager, was_broker = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager = False
    use_broker(app, BROKER)
    try:
        results = [
            django_claude.call(f"question {i}", feature="judged", smell_test=True) for i in range(3)
        ]
        assert all(r.outcome == "ok" for r in results)
        pending = CallRecord.objects.filter(feature="judged", smell_verdict="pending")
        ends = time.monotonic() + 60
        while time.monotonic() < ends and pending.exists():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.3)
    finally:
        app.conf.task_always_eager = was_eager
        use_broker(app, was_broker)
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    verdicts = [CallRecord.objects.get(id=r.request_id).smell_verdict for r in results]
    assert sorted(verdicts) == ["fail", "pass", "pass"], (tmp_path / "worker.log").read_text()
    assert SmellFailure.objects.count() == 1
    assert CallRecord.objects.filter(feature="django_claude.smell_test").count() == 3
    # The judge ran in the worker, not in the caller: its requests carry the
    # worker's key (tests/settings.py), not the one this process uses.
    judge_keys = {
        r.headers.get("authorization") for r in fake_anthropic.requests if r.model == judge
    }
    assert judge_keys == {"Bearer sk-ant-test-settings-key-1234"}
