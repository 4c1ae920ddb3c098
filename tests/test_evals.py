"""The smell test: sampling, the judge, verdicts, failures, baseline and alerts."""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import random
import signal
import threading
import time
import weakref
from io import StringIO
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import django_claude
from django_claude import checks, judging, tasks
from django_claude.costs import retention
from django_claude.models import CallRecord, SmellAlert, SmellBaseline, SmellFailure
from django_claude.recording import sampling
from django_claude.signals import call_sampled, smell_pass_rate_dropped
from django_claude.smell import alerts, judge, verdicts
from django_claude.smell.background import Background, background
from django_claude.testing import Fault
from tests.celery_app import app

JUDGE = "claude-haiku-4-5-20251001"
PRIMARY = "claude-sonnet-4-6"


# -- sampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_sampling_rate_within_binomial_bounds(settings, rate):
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = rate
    rng = random.Random(20261126)
    n = 10_000
    hits = sum(sampling.should_sample("chat", rng=rng) for _ in range(n))
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(hits - n * rate) < 4 * sigma


def test_sampling_overrides(settings):
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0
    settings.DJANGO_CLAUDE_SMELL_TEST_RATES = {"chat": 1.0}
    assert sampling.should_sample("chat")
    assert not sampling.should_sample("search")
    assert sampling.should_sample("search", True)
    assert not sampling.should_sample("chat", False)
    assert not sampling.should_sample(sampling.JUDGE_FEATURE, True)  # never judge the judge


# -- parsing the judge ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("PASS", "pass"),
        ("pass", "pass"),
        ("Pass.", "pass"),
        ("**PASS**", "pass"),
        (" PASS - the answer is fine", "pass"),
        ("Verdict: PASS", "pass"),
        ("PASSED", "pass"),
        ("FAIL", "fail"),
        ("fail!", "fail"),
        ("FAIL: refuses a benign request", "fail"),
        ("Verdict: fail", "fail"),
        ("", "error"),
        (None, "error"),
        ("I think it is fine", "error"),
        ("PASS or FAIL", "error"),
        ("PASS/FAIL", "error"),
        ("The answer passes", "error"),
        ("¯\\_(ツ)_/¯", "error"),
    ],
)
def test_parse_verdict(text, verdict):
    assert judge.parse_verdict(text) == verdict


# -- end to end with the judge inline (CELERY_TASK_ALWAYS_EAGER) -----------------------------


def test_sampled_call_is_judged_and_passes(claude, call_lines):
    claude.script(JUDGE, [Fault(text="PASS")])
    result = django_claude.call("What is Django?", feature="chat", smell_test=True)
    assert result.outcome == "ok" and result.text == "Hello from the fake Claude."
    record = CallRecord.objects.get(feature="chat")
    assert record.smell_verdict == "pass" and record.judged_at is not None
    judge_record = CallRecord.objects.get(feature=sampling.JUDGE_FEATURE)
    assert judge_record.model == JUDGE and judge_record.cost_usd > 0  # its cost shows
    assert judge_record.smell_verdict == "not_sampled"
    judge_request = claude.requests[-1].body
    assert judge_request["max_tokens"] == judge.JUDGE_MAX_TOKENS
    assert "PASS or FAIL" in judge_request["system"]
    assert "What is Django?" in judge_request["messages"][0]["content"]
    assert not SmellFailure.objects.exists()
    [line] = [line for line in call_lines.lines if line["feature"] == "chat"]
    assert line["smell_verdict"] == "pending"  # the line is written before the verdict


def test_failed_verdict_keeps_a_redacted_copy(claude):
    claude.reply_text = "I can't help with that. Mail me at helpdesk@example.com"
    claude.script(JUDGE, [Fault(text="FAIL")])
    django_claude.call("Card 4111 1111 1111 1111: is it valid?", feature="chat", smell_test=True)
    record = CallRecord.objects.get(feature="chat")
    assert record.smell_verdict == "fail"
    failure = SmellFailure.objects.get()
    assert failure.call == record and failure.feature == "chat"
    assert failure.prompt == "Card [CARD]: is it valid?"
    assert failure.response == "I can't help with that. Mail me at [EMAIL]"
    assert failure.judge_answer == "FAIL"


@pytest.mark.parametrize(
    "judge_faults",
    [
        [Fault(text="Looks reasonable to me")],  # nonsense
        [529, 529],  # down
        [Fault(delay=3), Fault(delay=3)],  # slower than the timeout
        [401],
    ],
)
def test_a_broken_judge_gives_error_and_never_touches_the_call(claude, settings, judge_faults):
    settings.DJANGO_CLAUDE_TIMEOUT = 0.5
    settings.DJANGO_CLAUDE_DEADLINE = 1.5
    claude.script(JUDGE, judge_faults)
    result = django_claude.call("hi", feature="chat", smell_test=True)
    assert result.outcome == "ok" and result.model == PRIMARY
    assert CallRecord.objects.get(feature="chat").smell_verdict == "error"
    assert not SmellFailure.objects.exists()


def test_judge_failure_with_raise_on_failure(claude, settings):
    settings.DJANGO_CLAUDE_RAISE_ON_FAILURE = True
    claude.always(JUDGE, 529)
    result = django_claude.call("hi", feature="chat", smell_test=True)
    assert result.outcome == "ok"
    assert CallRecord.objects.get(feature="chat").smell_verdict == "error"


def test_unsampled_and_degraded_calls_are_not_judged(claude, settings):
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 1.0
    django_claude.call("hi", feature="chat", smell_test=False)
    claude.always(PRIMARY, 529)
    claude.always(JUDGE, 529)
    django_claude.call("hi", feature="chat")
    assert set(CallRecord.objects.values_list("smell_verdict", flat=True)) == {"not_sampled"}


def test_the_pair_never_travels_in_the_task_arguments(claude, settings):
    sent = []
    original = tasks.smell_test.delay

    def spy(*args, **kwargs):
        sent.append((args, kwargs))
        return original(*args, **kwargs)

    tasks.smell_test.delay = spy
    try:
        claude.script(JUDGE, [Fault(text="PASS")])
        result = django_claude.call("secret plans for Q3", feature="chat", smell_test=True)
    finally:
        tasks.smell_test.delay = original
    assert sent == [((str(result.request_id),), {})]
    # and the stash is gone once judged
    assert cache.get(f"{sampling.STASH_PREFIX}{result.request_id}") is None


def test_a_judge_that_cannot_be_queued_drops_the_text_at_once(claude, monkeypatch):
    def no_broker(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(tasks.smell_test, "delay", no_broker)
    result = django_claude.call("secret plans for Q3", feature="chat", smell_test=True)
    assert result.outcome == "ok"
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "error"
    assert cache.get(sampling.stash_key(result.request_id)) is None
    assert claude.count(JUDGE) == 0


# -- without Celery: the judge in a background thread of this process ------------------------


@pytest.fixture
def no_celery(monkeypatch):
    """A site with no Celery configured (what a fresh project is)."""
    monkeypatch.setattr(judging, "celery_configured", lambda: False)
    yield
    assert background.drain(10)


def sampled_call(prompt="What is Django?"):
    started = time.monotonic()
    result = django_claude.call(prompt, feature="chat", smell_test=True)
    return result, time.monotonic() - started


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_the_judge_runs_in_process_off_the_request_path(fake_anthropic, no_celery):
    fake_anthropic.script(JUDGE, [Fault(text="PASS", delay=1.0)])
    result, waited = sampled_call()
    assert result.outcome == "ok" and waited < 1.0  # the judge's second is not the caller's
    assert background.drain(10)
    record = CallRecord.objects.get(id=result.request_id)
    assert record.smell_verdict == "pass" and record.judged_at is not None
    assert CallRecord.objects.filter(feature=sampling.JUDGE_FEATURE).count() == 1
    assert cache.get(sampling.stash_key(result.request_id)) is None
    assert fake_anthropic.count(JUDGE) == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_a_failure_is_kept_redacted(fake_anthropic, no_celery):
    fake_anthropic.reply_text = "I can't help with that. Mail me at helpdesk@example.com"
    fake_anthropic.script(JUDGE, [Fault(text="FAIL")])
    result, _ = sampled_call("Card 4111 1111 1111 1111: is it valid?")
    assert background.drain(10)
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "fail"
    failure = SmellFailure.objects.get()
    assert failure.prompt == "Card [CARD]: is it valid?"
    assert failure.response == "I can't help with that. Mail me at [EMAIL]"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_a_judge_that_is_down_gives_error_and_drops_the_text(
    fake_anthropic, no_celery, settings
):
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    fake_anthropic.always(JUDGE, 529)
    result, _ = sampled_call("secret plans for Q3")
    assert result.outcome == "ok" and result.text == "Hello from the fake Claude."
    assert background.drain(20)
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "error"
    assert cache.get(sampling.stash_key(result.request_id)) is None
    assert not SmellFailure.objects.exists()


@pytest.fixture
def judge_as_served(monkeypatch):
    """The in-process judge as outside a test runner, where its thread keeps
    its connection while judgements come; yields the connections that thread
    opens, and hands its connection back before the test database is dropped."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    from django_claude.smell import background as background_module

    monkeypatch.setattr(background_module, "under_test_runner", lambda: False)
    opened: list[Any] = []

    def note(sender: object, connection: object, **kwargs: object) -> None:
        if threading.current_thread().name == "django-claude-smell":
            opened.append(connection)

    connection_created.connect(note)
    yield opened
    connection_created.disconnect(note)
    handed_back = threading.Event()

    def close() -> None:
        connections.close_all()
        handed_back.set()

    background.submit(close, on_full=close)
    assert handed_back.wait(10)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_judgements_in_a_row_share_one_database_connection(
    fake_anthropic, no_celery, judge_as_served
):
    # A new PostgreSQL backend for each judgement cost more than the judgement.
    fake_anthropic.script(JUDGE, [Fault(text="PASS") for _ in range(5)])
    results = []
    for n in range(5):
        results.append(sampled_call(f"question {n}")[0])
        assert background.drain(10)
    verdicts_given = CallRecord.objects.filter(id__in=[r.request_id for r in results])
    assert sorted(verdicts_given.values_list("smell_verdict", flat=True)) == ["pass"] * 5
    # (At most one: SQLite's in-memory test database ignores a close, so the
    # thread's connection of an earlier test may still be open.)
    assert len(judge_as_served) <= 1, judge_as_served


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_a_judgement_after_the_database_dropped_the_connection_is_kept(
    fake_anthropic, no_celery, judge_as_served
):
    from django.db import connection

    fake_anthropic.script(JUDGE, [Fault(text="PASS") for _ in range(3)])
    results = [sampled_call("first")[0]]
    assert background.drain(10)
    backend = judge_as_served[-1].connection.info.backend_pid
    with connection.cursor() as cursor:  # a restart, as the judge's connection sees it
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    for n in range(2):
        results.append(sampled_call(f"after {n}")[0])
        assert background.drain(10)
    verdicts_given = [CallRecord.objects.get(id=r.request_id).smell_verdict for r in results]
    assert verdicts_given == ["pass", "pass", "pass"]
    assert fake_anthropic.count(JUDGE) == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_a_job_that_left_autocommit_off_does_not_swallow_the_next(
    fake_anthropic, no_celery, judge_as_served
):
    from django.db import connections, transaction

    def careless_job() -> None:
        transaction.set_autocommit(False)
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        raise RuntimeError("left a transaction open")

    fake_anthropic.script(JUDGE, [Fault(text="PASS")])
    background.submit(careless_job, on_full=lambda: None)
    result = sampled_call("after")[0]
    assert background.drain(10)
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "pass"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_a_crashing_judge_still_drops_the_text(
    fake_anthropic, no_celery, monkeypatch
):
    def broken_judge(prompt, answer):
        raise RuntimeError("a bug in the judge")

    monkeypatch.setattr(verdicts, "judge", broken_judge)
    result, _ = sampled_call("secret plans for Q3")
    assert background.drain(10)
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "error"
    assert cache.get(sampling.stash_key(result.request_id)) is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_celery_verdicts_left_pending_are_closed(fake_anthropic, no_celery, monkeypatch):
    from django_claude.smell import inprocess

    monkeypatch.setattr(inprocess, "_stale_closed_at", None)
    left = CallRecord.objects.create(
        created_at=timezone.now() - datetime.timedelta(hours=2),
        feature="chat",
        model_requested=PRIMARY,
        outcome="ok",
        smell_verdict="pending",
    )  # a process killed before its judge ran
    fake_anthropic.script(JUDGE, [Fault(text="PASS")])
    result, _ = sampled_call()
    assert background.drain(10)
    assert CallRecord.objects.get(id=left.id).smell_verdict == "error"
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "pass"


def test_without_celery_in_a_tests_transaction_the_judge_runs_inline(claude, monkeypatch):
    """A site's own test suite (pytest-django ``db``): the row is only in the
    test's transaction, so the verdict is there when the call returns."""
    monkeypatch.setattr(judging, "celery_configured", lambda: False)
    claude.script(JUDGE, [Fault(text="FAIL")])
    result = django_claude.call("hi", feature="chat", smell_test=True)
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "fail"
    assert SmellFailure.objects.get().call_id == result.request_id
    assert background._jobs.unfinished_tasks == 0  # nothing went to the thread


def test_with_celery_configured_the_judge_goes_to_celery(claude, monkeypatch):
    monkeypatch.setattr(judging, "celery_configured", lambda: True)
    sent = []
    monkeypatch.setattr(tasks, "queue_judge", lambda sender, **kw: sent.append(kw["request_id"]))
    result = django_claude.call("hi", feature="chat", smell_test=True)
    assert sent == [result.request_id]
    assert claude.count(JUDGE) == 0


def test_ready_connects_the_receiver_that_chooses_at_call_time():
    uid = "django_claude.smell.queue_judge"
    [receiver] = [r[1] for r in call_sampled.receivers if r[0][0] == uid]
    assert (receiver() if isinstance(receiver, weakref.ref) else receiver) is (
        judging.judge_sampled_call
    )


# -- the background thread: bounded, and drained at exit ---------------------------------------


class TinyBackground(Background):
    MAX_QUEUED = 2


def test_a_full_queue_abandons_at_once_and_exit_drops_what_waits():
    worker = TinyBackground()
    release, ran, dropped = threading.Event(), [], []
    worker.submit(lambda: release.wait(5), on_full=lambda: dropped.append("busy"))
    deadline = time.monotonic() + 5
    while worker._running is None and time.monotonic() < deadline:  # the thread took it
        time.sleep(0.01)
    for name in ("second", "third", "fourth"):
        worker.submit(
            lambda name=name: ran.append(name), on_full=lambda name=name: dropped.append(name)
        )
    assert dropped == ["fourth"]  # the queue holds two: the fourth is abandoned at once
    started = time.monotonic()
    # the busy job outlives the grace period: it and the two waiting are abandoned
    assert worker.shutdown(timeout=0.2) == 3
    assert time.monotonic() - started < 2
    assert dropped == ["fourth", "busy", "second", "third"] and ran == []
    release.set()
    assert worker.drain(5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_with_an_empty_queue_and_no_thread():
    release = threading.Event()
    background.submit(lambda: release.wait(10), on_full=lambda: None)  # the thread is busy
    background.submit(lambda: None, on_full=lambda: None)  # and one job waits
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            signal.alarm(20)
            ran = []
            fresh = background._jobs.qsize() == 0 and background._thread is None
            background.submit(lambda: ran.append(1), on_full=lambda: None)
            code = 0 if fresh and background.drain(5) and ran == [1] else 2
        finally:
            os._exit(code)
    release.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert background.drain(10)


def test_exit_waits_for_jobs_that_finish_in_time():
    worker = Background()
    ran = []
    worker.submit(lambda: (time.sleep(0.2), ran.append(1)), on_full=lambda: ran.append("lost"))
    assert worker.shutdown(timeout=5) == 0
    assert ran == [1]
    assert Background().shutdown() == 0  # nothing queued: no wait at all


def test_lost_payload_is_an_error(claude):
    record = CallRecord.objects.create(
        created_at=timezone.now(),
        feature="chat",
        model_requested=PRIMARY,
        model=PRIMARY,
        outcome="ok",
        smell_verdict="pending",
    )
    assert verdicts.run_smell_test(record.id) == "error"
    record.refresh_from_db()
    assert record.smell_verdict == "error"


def test_stale_pending_verdicts_are_closed(db):
    now = timezone.now()
    for minutes in (30, 59, 61, 600):
        CallRecord.objects.create(
            created_at=now - datetime.timedelta(minutes=minutes),
            feature="chat",
            model_requested=PRIMARY,
            outcome="ok",
            smell_verdict="pending",
        )
    assert verdicts.close_stale_verdicts(now=now) == 2
    assert CallRecord.objects.filter(smell_verdict="pending").count() == 2


# -- baseline and alerts --------------------------------------------------------------------


def judged(feature: str, passes: int, fails: int, *, minutes_ago: int = 5) -> None:
    when = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    for verdict in ["pass"] * passes + ["fail"] * fails:
        CallRecord.objects.create(
            created_at=when,
            feature=feature,
            model_requested=PRIMARY,
            model=PRIMARY,
            outcome="ok",
            smell_verdict=verdict,
        )


def test_baseline_from_recorded_verdicts(db):
    judged("chat", 90, 10)
    out = StringIO()
    call_command("claude_smell_baseline", "--feature", "chat", "--sample", "50", stdout=out)
    baseline = SmellBaseline.objects.get()
    assert baseline.sample_size == 50 and baseline.source == "records"
    assert "baseline for chat" in out.getvalue()
    with pytest.raises(CommandError, match="no judged calls"):
        call_command("claude_smell_baseline", "--feature", "empty", stdout=StringIO())


def test_baseline_from_a_history_file(claude, tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text(
        "\n".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) for i in range(6)) + "\n"
    )
    claude.script(JUDGE, [Fault(text=t) for t in ["PASS", "PASS", "FAIL", "PASS", "maybe"]])
    out = StringIO()
    call_command(
        "claude_smell_baseline",
        "--feature",
        "chat",
        "--sample",
        "5",
        "--from-file",
        str(history),
        stdout=out,
    )
    baseline = SmellBaseline.objects.get()
    assert (baseline.sample_size, baseline.pass_rate, baseline.source) == (4, 75.0, "file")
    assert "1 the judge could not decide" in out.getvalue()
    assert claude.count(JUDGE) == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(CommandError, match="bad.jsonl:1"):
        call_command("claude_smell_baseline", "--feature", "chat", "--from-file", str(bad))


@pytest.mark.parametrize(
    ("baseline", "passed", "total", "alert"),
    [
        (90.0, 150, 200, True),  # 75%: a real drop
        (90.0, 172, 200, False),  # 86%: under the 5-point drop
        (90.0, 20, 25, False),  # too few judged calls to conclude
        (90.0, 34, 40, False),  # 85% of 40: 5 points but within the noise margin
        (99.0, 186, 200, True),  # 93%: a tight baseline makes a small drop significant
    ],
)
def test_should_alert(baseline, passed, total, alert):
    recent = alerts.PassRate(passed=passed, judged=total)
    assert alerts.should_alert(baseline=baseline, recent=recent, drop=5.0) is alert


def test_alert_fires_once_per_episode_and_clears(db, caplog):
    SmellBaseline.objects.create(feature="chat", pass_rate=95.0, sample_size=100, source="records")
    seen = []
    smell_pass_rate_dropped.connect(
        lambda **kw: seen.append(kw["recent"]), weak=False, dispatch_uid="test-smell"
    )
    try:
        judged("chat", 60, 40, minutes_ago=30)
        with caplog.at_level(logging.INFO, logger="django_claude.smell"):
            assert alerts.check_pass_rates() == ["alert:chat"]
            assert alerts.check_pass_rates() == []  # not again every 15 minutes
            judged("chat", 200, 0, minutes_ago=1)  # the newest 200 are all good
            assert alerts.check_pass_rates() == ["recovered:chat"]
            assert alerts.check_pass_rates() == []
    finally:
        smell_pass_rate_dropped.disconnect(dispatch_uid="test-smell")
    assert seen == [60.0]
    events = [json.loads(r.getMessage())["event"] for r in caplog.records]
    assert events == ["claude.smell_alert", "claude.smell_recovered"]
    assert caplog.records[0].levelno == logging.ERROR
    assert len(mail.outbox) == 1 and "chat" in mail.outbox[0].subject
    episode = SmellAlert.objects.get()
    assert episode.ended_at is not None and episode.judged == 100


def test_check_task_closes_stale_verdicts(db):
    CallRecord.objects.create(
        created_at=timezone.now() - datetime.timedelta(hours=2),
        feature="chat",
        model_requested=PRIMARY,
        outcome="ok",
        smell_verdict="pending",
    )
    tasks.check_smell_pass_rates.delay()
    assert CallRecord.objects.get().smell_verdict == "error"


def test_w005_sampling_without_a_shared_cache(settings):
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.05
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        assert [m.id for m in checks.check_smell_test()] == [checks.W005]
        settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0
        assert checks.check_smell_test() == []
    finally:
        app.conf.task_always_eager = eager


def test_failures_are_purged_after_their_retention(claude, settings):
    settings.DJANGO_CLAUDE_FAILURE_RETENTION_DAYS = 30
    claude.script(JUDGE, [Fault(text="FAIL")])
    django_claude.call("hi", feature="chat", smell_test=True)
    SmellFailure.objects.update(created_at=timezone.now() - datetime.timedelta(days=31))
    retention.purge_old_records()
    assert not SmellFailure.objects.exists()
    assert CallRecord.objects.filter(feature="chat").exists()  # the record stays 90 days


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_slow_broker_never_holds_the_caller(fake_anthropic, monkeypatch):
    """Off the request path: the caller is answered while the send still waits;
    when it fails, the text leaves the cache and the verdict is error."""
    released = threading.Event()

    def stuck_broker(*args, **kwargs):
        released.wait(5)
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(tasks.smell_test, "delay", stuck_broker)
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        started = time.monotonic()
        result = django_claude.call("secret plans for Q3", feature="chat", smell_test=True)
        waited = time.monotonic() - started
    finally:
        released.set()
        app.conf.task_always_eager = eager
    assert result.outcome == "ok"
    assert waited < 2.0  # the send waits 5 s in the background, not here
    assert background.drain(10)
    assert CallRecord.objects.get(id=result.request_id).smell_verdict == "error"
    assert cache.get(sampling.stash_key(result.request_id)) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_forked_workers_do_not_sample_alike(settings):
    """gunicorn --preload forks workers from one parent: each must draw its own sample."""
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.5
    draws = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: draw, report, leave at once
            os.close(read)
            bits = "".join("1" if sampling.should_sample("chat") else "0" for _ in range(64))
            os.write(write, bits.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            draws.append(pipe.read())
        os.waitpid(pid, 0)
    assert len(draws[0]) == 64
    assert draws[0] != draws[1]
