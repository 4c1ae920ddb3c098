"""Records written behind: the call does no database work, the writer commits
many rows at once, a graceful stop loses nothing, and after a SIGKILL the
call log restores every row."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import django_claude
from django_claude.models import CallRecord
from django_claude.recording import inserts, writer

ROOT = Path(__file__).resolve().parent.parent

# The convention of the suite: a transactional test leaves the migrations' rows behind.
transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def in_production(monkeypatch):
    """As if no test runner had set Django's test environment up."""
    from django.template import Template

    monkeypatch.setattr(Template, "_render", lambda self, context: self.nodelist.render(context))


@pytest.fixture
def behind(settings):
    settings.DJANGO_CLAUDE_WRITE_BEHIND = True
    yield
    assert writer.flush_pending(10.0)


@transactional
def test_a_call_does_no_database_work_and_its_row_follows(fake_anthropic, behind):
    django_claude.call("warm up", feature="behind")  # loads routes and prices
    assert writer.flush_pending()
    with CaptureQueriesContext(connections["default"]) as queries:
        result = django_claude.call("hi", feature="behind")
    assert result.outcome == "ok"
    assert [q["sql"] for q in queries] == []  # no INSERT, no commit on the caller's path
    assert writer.flush_pending()
    record = CallRecord.objects.get(pk=result.request_id)
    assert (record.feature, record.outcome) == ("behind", "ok")


@transactional
def test_the_writer_commits_many_rows_at_once(monkeypatch):
    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    def watch(sender, connection, **kwargs):
        connection.execute_wrappers.append(count)

    insert_rows = inserts.insert_rows

    def copy_counted(alias, records):
        if connections[alias].vendor == "postgresql":  # COPY, which no execute wrapper sees
            statements.append("COPY")
        insert_rows(alias, records)

    monkeypatch.setattr(inserts, "insert_rows", copy_counted)
    own = writer.RecordWriter()
    connection_created.connect(watch)
    try:
        for n in range(300):
            own.submit(
                CallRecord(
                    created_at=timezone.now(),
                    feature="batched",
                    model_requested="m",
                    outcome="ok",
                    prompt_prefix=f"row {n}",
                ),
                "default",
            )
        assert own.flush(10.0)
    finally:
        connection_created.disconnect(watch)
    assert CallRecord.objects.filter(feature="batched").count() == 300
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "COPY"))]
    # One INSERT per row would be 300: the writer inserts whatever queued meanwhile.
    assert 0 < len(writes) < 150, len(writes)


@transactional
def test_a_rolled_back_caller_keeps_its_record(fake_anthropic, behind):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        result = django_claude.call("inside", feature="behind")
        raise RuntimeError("the view failed after the call")
    assert writer.flush_pending()
    assert CallRecord.objects.filter(pk=result.request_id).exists()


def test_when_records_are_written_behind(settings, monkeypatch):
    from django.template import Template

    settings.DJANGO_CLAUDE_WRITE_BEHIND = None
    assert not writer.writes_behind("default")  # under a test runner: inline
    # As in production (and a locmem e-mail backend's outbox does not count).
    monkeypatch.setattr(Template, "_render", lambda self, context: self.nodelist.render(context))
    connection = connections["default"]
    options = connection.settings_dict.setdefault("OPTIONS", {})
    if connection.vendor == "sqlite":
        # DEFERRED (Django's default): a site's read-then-write transaction
        # would fail at once while the writer commits, so inline.
        monkeypatch.delitem(options, "transaction_mode", raising=False)
        assert not writer.writes_behind("default")
        monkeypatch.setitem(options, "transaction_mode", "IMMEDIATE")
    assert writer.writes_behind("default")
    settings.DJANGO_CLAUDE_WRITE_BEHIND = False
    assert not writer.writes_behind("default")
    settings.DJANGO_CLAUDE_WRITE_BEHIND = True
    monkeypatch.delitem(options, "transaction_mode", raising=False)
    assert writer.writes_behind("default")


REDACTING_THREADS: set[int] = set()


def slow_redactor(text: str) -> str:
    """A redactor that takes its time, noting the thread it ran in."""
    REDACTING_THREADS.add(threading.get_ident())
    time.sleep(0.05)
    return text


@transactional
def test_concurrent_acalls_are_recorded_in_parallel_threads(
    fake_anthropic, settings, in_production
):
    """In production (no test runner) an async call's ending runs in any free
    thread: a server's concurrent calls do not queue for asgiref's one
    thread-sensitive thread."""
    settings.DJANGO_CLAUDE_WRITE_BEHIND = True
    settings.DJANGO_CLAUDE_REDACTOR = "tests.test_write_behind.slow_redactor"
    REDACTING_THREADS.clear()

    async def together() -> list[django_claude.ClaudeResult]:
        calls = [django_claude.acall(f"q{n}", feature="parallel") for n in range(6)]
        results = await asyncio.gather(*calls)
        await sync_to_async(connections.close_all)()
        return list(results)

    results = asyncio.run(together())
    assert {r.outcome for r in results} == {"ok"}
    assert len(REDACTING_THREADS) > 1
    assert writer.flush_pending()
    assert CallRecord.objects.filter(feature="parallel").count() == 6


# -- real processes: SIGKILL, and a graceful stop under gunicorn and uvicorn --------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["logger", "file"])
def site(request, tmp_path: Path, fake_anthropic) -> Iterator[dict[str, str]]:
    """The test site in a temporary directory; its call lines go to a file
    through a ``FileHandler`` on the logger, or (``file``) appended by
    django-claude itself (``DJANGO_CLAUDE_CALL_LOG``)."""
    env = {
        "SITE_CALL_LOG_TO": request.param,
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.site.settings",
        "SITE_DB": str(tmp_path / "site.sqlite3"),
        "SITE_CALL_LOG": str(tmp_path / "calls.log"),
        "SITE_API": fake_anthropic.url,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    migrate = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--verbosity=0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    yield env


def _rows(env: dict[str, str]) -> set[str]:
    with sqlite3.connect(env["SITE_DB"]) as db:
        return {row[0] for row in db.execute("SELECT id FROM django_claude_callrecord")}


def _logged_ids(env: dict[str, str]) -> set[str]:
    lines = Path(env["SITE_CALL_LOG"]).read_text().splitlines()
    return {json.loads(line)["request_id"].replace("-", "") for line in lines if line.strip()}


KILLED = """
import os, sqlite3, sys, time
import django
django.setup()
import django_claude
# Another process holds the database's write lock: the writer cannot insert.
lock = sqlite3.connect(os.environ["SITE_DB"], isolation_level=None, check_same_thread=False)
lock.execute("BEGIN IMMEDIATE")
for n in range(25):
    assert django_claude.call(f"question {n}", feature="killed").outcome == "ok"
print("answered", flush=True)
time.sleep(60)
"""


def test_after_a_sigkill_the_call_log_restores_every_row(site):
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED],
        env=site,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "answered"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    logged = _logged_ids(site)
    assert len(logged) == 25
    assert _rows(site) == set()  # killed before the writer could insert
    ingest = subprocess.run(
        [sys.executable, "-m", "django", "claude_ingest_log", site["SITE_CALL_LOG"]],
        env=site,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ingest.returncode == 0, ingest.stderr
    assert {row.replace("-", "") for row in _rows(site)} == logged


def _wait_for(port: int, process: subprocess.Popen[str], seconds: float = 30.0) -> None:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


SERVERS = {
    "gunicorn": [
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--threads",
        "4",
        "--worker-class",
        "gthread",
        "--graceful-timeout",
        "20",
        "tests.site.app:wsgi",
    ],
    "uvicorn": ["-m", "uvicorn", "--workers", "2", "tests.site.app:asgi"],
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_sigterm_under_a_server_loses_no_record(site, server):
    pytest.importorskip(server)
    port = _free_port()
    bind = ["--bind", f"127.0.0.1:{port}"] if server == "gunicorn" else ["--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, *SERVERS[server], *bind],
        env=site,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(port, process)
        path = "ask" if server == "gunicorn" else "aask"
        # Hold the database's write lock so rows are still queued at SIGTERM.
        lock = sqlite3.connect(site["SITE_DB"], isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        answered = set()
        for n in range(30):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}/?q=n{n}", timeout=10) as r:
                answered.add(json.loads(r.read())["request_id"].replace("-", ""))
        process.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the workers are draining: the lock goes, the rows land
        lock.execute("COMMIT")
        lock.close()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(answered) == 30
    rows = {row.replace("-", "") for row in _rows(site)}
    assert rows == answered, process.communicate()[1][-3000:]


# -- what the hostile review found ------------------------------------------------


def _row(feature: str = "writer", **fields) -> CallRecord:
    values = {"created_at": timezone.now(), "model_requested": "m", "outcome": "ok"}
    return CallRecord(feature=feature, **{**values, **fields})


@transactional
def test_a_row_the_database_refuses_does_not_hold_up_the_others(caplog):
    own = writer.RecordWriter()
    own.RETRY_FOR = 30.0  # an outage window the good rows must never wait for
    refused = _row("refused", model_requested=None)  # NOT NULL: the database says no
    own.submit(refused, "default")
    good = [_row("good") for _ in range(20)]
    for record in good:
        own.submit(record, "default")
    assert own.flush(10.0)
    assert CallRecord.objects.filter(feature="good").count() == 20
    assert not CallRecord.objects.filter(feature="refused").exists()
    stats = own.stats()
    assert (stats.given_up, stats.outages) == (1, frozenset())
    [line] = [r for r in caplog.records if "refused by database" in r.getMessage()]
    assert "claude_ingest_log" in line.getMessage()


@transactional
def test_flush_waits_for_what_was_queued_not_for_a_quiet_moment():
    own = writer.RecordWriter()
    mine = _row("mine")
    own.submit(mine, "default")
    stop = threading.Event()

    def busy_site() -> None:  # other threads' calls never stop coming
        while not stop.is_set():
            own.submit(_row("others"), "default")
            time.sleep(0.0005)

    others = threading.Thread(target=busy_site)
    others.start()
    try:
        assert own.flush(10.0)
    finally:
        stop.set()
        others.join()
    assert CallRecord.objects.filter(pk=mine.pk).exists()
    assert own.flush(10.0)


@transactional
def test_with_no_thread_to_start_the_row_is_written_here(monkeypatch):
    """Python 3.12 refuses new threads at interpreter shutdown, when the
    in-process judge records its last calls."""

    class NoThreads(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(writer.threading, "Thread", NoThreads)
    own = writer.RecordWriter()
    record = _row("at-exit")
    own.submit(record, "default")  # never raises
    assert CallRecord.objects.filter(pk=record.pk).exists()
    assert own.flush(1.0)


def test_write_behind_must_be_a_boolean(settings):
    from django_claude import checks

    for wrong in ("false", "0", 1, 0):
        settings.DJANGO_CLAUDE_WRITE_BEHIND = wrong
        assert checks.E008 in {m.id for m in checks.check_settings()}, wrong
    for right in (True, False, None):
        settings.DJANGO_CLAUDE_WRITE_BEHIND = right
        assert checks.E008 not in {m.id for m in checks.check_settings()}


@transactional
def test_the_writer_keeps_its_connection_between_batches(opened_connections, monkeypatch):
    """At Django's default CONN_MAX_AGE = 0 it reconnected for every batch."""
    from django.template import Template

    # In production (under a test runner it lets go of the connection when idle).
    monkeypatch.setattr(Template, "_render", lambda self, context: self.nodelist.render(context))
    own = writer.RecordWriter()
    own.submit(_row("warm"), "default")
    assert own.flush(10.0)
    opened_connections.clear()
    for n in range(10):
        own.submit(_row(f"row {n}"), "default")
        assert own.flush(10.0)
        time.sleep(0.02)  # a quiet site: every row its own batch
    assert opened_connections == []
    monkeypatch.undo()  # a test runner again: the writer closes its connection once idle
    own.submit(_row("last"), "default")
    assert own.flush(10.0)


@pytest.fixture
def opened_connections() -> Iterator[list[str]]:
    opened: list[str] = []

    def note(sender, connection, **kwargs):
        opened.append(connection.alias)

    connection_created.connect(note)
    yield opened
    connection_created.disconnect(note)


@transactional
def test_an_async_ending_that_cannot_block_runs_on_the_loop(
    fake_anthropic, call_lines, settings, in_production
):
    """In production, an answered acall (or astream) that keeps no answer, is
    not sampled and writes behind is recorded without a thread hop; a sampled
    one (the cache and an insert for the judge) still leaves the loop."""
    settings.DJANGO_CLAUDE_WRITE_BEHIND = True
    fake_anthropic.reply_text = "PASS"

    async def streamed(prompt: str, **kwargs: Any) -> None:
        async with django_claude.astream(prompt, feature="loop", **kwargs) as s:
            async for _ in s.text_stream:
                pass

    async def calls() -> int:
        await django_claude.acall("warm up", feature="loop")  # prices in memory
        await django_claude.acall("plain", feature="loop")
        await django_claude.acall("judged", feature="loop", smell_test=True)
        await streamed("streamed")
        await streamed("streamed and judged", smell_test=True)
        loop_thread = threading.get_ident()
        await sync_to_async(connections.close_all)()
        return loop_thread

    loop_thread = asyncio.run(calls())
    threads = {json.loads(r.getMessage())["prompt_prefix"]: r.thread for r in call_lines.records}
    assert threads["plain"] == loop_thread
    assert threads["streamed"] == loop_thread
    assert threads["judged"] != loop_thread
    assert threads["streamed and judged"] != loop_thread
    from django_claude.smell.background import background

    assert background.drain(20)  # a judge in this process, if Celery does not take it
    assert writer.flush_pending()
    assert CallRecord.objects.filter(feature="loop").count() == 5
    # Sampled and inserted before its ending returned (the judge needs the row).
    assert CallRecord.objects.get(prompt_prefix="judged").smell_verdict != "not_sampled"


@transactional
def test_at_exit_a_sampled_row_still_queued_is_written_then_judged(
    fake_anthropic, call_lines, settings, in_production, monkeypatch
):
    """The judge's shutdown flushes the record writer first: a sampled call
    made inside the caller's ``atomic()`` (its row written behind, its judge
    announced by the writer) whose row was still lingering in the queue at
    exit is judged, not left pending (whichever exit hook runs first)."""
    from django_claude.smell import inprocess
    from django_claude.smell.background import Background

    settings.DJANGO_CLAUDE_WRITE_BEHIND = True
    fake_anthropic.reply_text = "PASS"
    judge = Background()
    monkeypatch.setattr(inprocess, "background", judge)
    monkeypatch.setattr(writer.RecordWriter, "LINGER", 5.0)  # still queued at "exit"
    with transaction.atomic():
        django_claude.call("judged at exit", feature="exit", smell_test=True)
    assert judge.shutdown(timeout=20) == 0  # nothing dropped
    # Judged by the time the judge's exit hook returns: nothing runs after it.
    judged = CallRecord.objects.filter(feature="exit").values_list("smell_verdict", flat=True)
    assert list(judged) and judged[0] not in ("pending", "not_sampled")


def test_a_judge_that_cannot_start_its_thread_abandons_the_job_at_once(monkeypatch):
    """Python 3.12+ refuses new threads at interpreter shutdown: the job's
    ``on_full`` runs at once instead of the job waiting for a thread that
    will never come (the exit would wait out the whole grace for it)."""
    from django_claude.smell.background import Background

    judge = Background()
    refused: list[str] = []

    def no_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    judge.submit(lambda: refused.append("ran"), on_full=lambda: refused.append("abandoned"))
    assert refused == ["abandoned"]
    assert judge.drain(0.1)  # nothing left waiting
