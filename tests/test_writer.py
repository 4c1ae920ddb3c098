"""The background record writer: bounded, one outage window, fresh after fork()."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

import django_claude
from django_claude.models import CallRecord
from django_claude.recording import writer
from django_claude.recording.backlog import Outage
from django_claude.recording.transactions import in_callers_transaction, records_in_test_transaction

# The convention of the suite: a transactional test leaves the migrations' rows behind.
transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def a_record(feature: str = "writer") -> CallRecord:
    return CallRecord(created_at=timezone.now(), feature=feature, model_requested="m", outcome="ok")


def errors(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and text in r.getMessage()]


@pytest.fixture
def fresh_writer():
    """A writer of the test's own; the process-wide one is left alone."""
    writer.flush_pending()
    made: list[writer.RecordWriter] = []

    def make(**kwargs) -> writer.RecordWriter:
        made.append(writer.RecordWriter(**kwargs))
        return made[-1]

    yield make
    for w in made:
        assert w.flush(10.0)


# -- the outage window, as pure logic ------------------------------------------------


def test_failures_are_retried_until_the_window_ends():
    outage = Outage()
    assert outage.may_attempt(100.0, probe_every=5)
    assert not outage.failed(100.0, retry_for=60)  # retry
    assert not outage.failed(159.9, retry_for=60)  # still inside the window
    assert outage.failed(160.0, retry_for=60)  # give up: the outage is declared
    assert outage.declared


def test_a_declared_outage_gives_rows_up_at_once_but_for_a_probe():
    outage = Outage()
    outage.failed(0.0, retry_for=60)
    outage.failed(60.0, retry_for=60)
    # a row after the declaration: no attempt, and none until a probe is due
    assert not outage.may_attempt(60.1, probe_every=5)
    assert not outage.may_attempt(64.9, probe_every=5)
    assert outage.may_attempt(65.0, probe_every=5)  # the probe
    assert outage.failed(65.0, retry_for=60)  # ...fails: given up at once, no retrying
    assert not outage.may_attempt(66.0, probe_every=5)


def test_a_success_closes_the_window():
    outage = Outage()
    outage.failed(0.0, retry_for=60)
    assert outage.succeeded() == 0  # failures but no outage
    assert not outage.failed(59.0, retry_for=60)  # a new window opens at 59
    outage.failed(119.0, retry_for=60)
    outage.given_up = 7
    assert outage.succeeded() == 7
    assert not outage.declared and outage.failing_since is None
    assert outage.may_attempt(120.0, probe_every=5)


# -- a database that fails ---------------------------------------------------------


class DatabaseDown:
    """The database server is down for the writer's thread: every connection
    attempt fails as a refused one does, in the driver, so Django wraps it."""

    def __init__(self) -> None:
        self.down = True
        self.attempts = 0


@pytest.fixture
def database_down(monkeypatch):
    backend = type(connections["default"])
    real = backend.get_new_connection
    state = DatabaseDown()

    def get_new_connection(self, conn_params):
        if threading.current_thread().name == "django-claude-records":
            state.attempts += 1
            if state.down:
                raise self.Database.OperationalError("connection refused")
        return real(self, conn_params)

    monkeypatch.setattr(backend, "get_new_connection", get_new_connection)
    return state


@transactional
def test_n_rows_in_an_outage_cost_one_window_not_n(fresh_writer, database_down, caplog):
    w = fresh_writer()
    w.RETRY_FOR = 0.3
    w.PROBE_EVERY = 3600.0  # no probe during the test
    rows = 40
    started = time.monotonic()
    for _ in range(rows):
        w.submit(a_record(), "default")
    assert w.flush(30.0)
    elapsed = time.monotonic() - started
    stats = w.stats()
    assert stats.given_up == rows
    assert stats.outages == frozenset({"default"})
    assert database_down.attempts < rows  # the first row's retries; the others: none
    assert elapsed < rows * w.RETRY_FOR / 4  # per-row windows would take 12 s
    [declared] = errors(caplog, "have failed for")
    assert "claude_ingest_log" in declared.getMessage()
    # a row submitted during the outage is given up at once: no attempt, no second window
    attempts = database_down.attempts
    w.submit(a_record(), "default")
    assert w.flush(10.0)
    assert w.stats().given_up == rows + 1
    assert database_down.attempts == attempts
    assert len(errors(caplog, "have failed for")) == 1


@transactional
def test_an_outage_ends_when_an_insert_works_again(fresh_writer, database_down, caplog):
    w = fresh_writer()
    w.RETRY_FOR = 0.1
    w.PROBE_EVERY = 0.0  # every row is a probe: one attempt each once declared
    for _ in range(3):
        w.submit(a_record(), "default")
    assert w.flush(10.0)
    assert w.stats().given_up == 3
    assert w.stats().outages == {"default"}
    database_down.down = False
    record = a_record("after-the-outage")
    w.submit(record, "default")
    assert w.flush(10.0)
    assert CallRecord.objects.filter(id=record.id).exists()
    assert w.stats().outages == frozenset()
    assert "3 records were given up during the outage" in caplog.text


# -- a bounded queue ------------------------------------------------------------------


@transactional
def test_a_batch_arrives_field_for_field(fresh_writer, django_user_model):
    """Rows inserted together (by COPY on PostgreSQL) read back as the ones
    saved alone: JSON, decimals, times, the user, text with quotes and tabs."""
    user = django_user_model.objects.create(username="batch")
    own = fresh_writer()
    own.LINGER = 0.5  # all of them in one batch
    rows = []
    for n in range(3):
        row = a_record("batch")
        row.user = user
        row.cost_usd = Decimal("0.001234")
        row.attempt_log = [{"model": "m", "outcome": "ok", "ms": n}]
        row.tags = {"ticket": f"T-{n}", "nested": {"quote": 'say "hi"\tthen\\go'}}
        row.prompt_prefix = 'a "quoted"\ttab, a comma; and \\N'
        row.stop_reason = "end_turn"
        rows.append(row)
        own.submit(row, "default")
    assert own.flush(10.0)
    for row in rows:
        saved = CallRecord.objects.get(pk=row.pk)
        assert saved.user_id == user.pk
        assert saved.cost_usd == Decimal("0.001234")
        assert saved.attempt_log == row.attempt_log
        assert saved.tags == row.tags
        assert saved.prompt_prefix == row.prompt_prefix
        assert saved.created_at == row.created_at
        assert saved.smell_verdict == "not_sampled"  # the model's default


@transactional
def test_a_refused_row_in_a_batch_costs_only_itself(fresh_writer, caplog):
    own = fresh_writer()
    own.LINGER = 0.5
    first = a_record("refused")
    own.submit(first, "default")
    assert own.flush(10.0)
    again = CallRecord(
        pk=first.pk, created_at=timezone.now(), feature="refused", model_requested="m", outcome="ok"
    )
    fine = [a_record("refused") for _ in range(3)]
    for row in [fine[0], again, *fine[1:]]:
        own.submit(row, "default")
    assert own.flush(10.0)
    assert CallRecord.objects.filter(feature="refused").count() == 4


@transactional
def test_rows_handed_over_unbuilt_are_built_by_the_writer(fresh_writer, caplog):
    """What ``record_call`` queues is the way to build the row from its log
    line; the writer's thread builds it. One that cannot be built is logged
    (its line keeps every field) and costs only itself."""
    own = fresh_writer()
    own.LINGER = 0.5
    built_in: list[str] = []

    def build(feature: str):
        def make() -> CallRecord:
            built_in.append(threading.current_thread().name)
            return a_record(feature)

        return make

    def broken() -> CallRecord:
        raise ValueError("not a call line")

    for row in (build("unbuilt"), broken, build("unbuilt")):
        own.submit(row, "default")
    assert own.flush(10.0)
    assert CallRecord.objects.filter(feature="unbuilt").count() == 2
    assert built_in == ["django-claude-records"] * 2
    assert errors(caplog, "not built")


@transactional
def test_a_full_queue_keeps_the_row_in_its_log_line_and_never_blocks(fresh_writer, caplog):
    w = fresh_writer(max_queued=2)
    busy, release = threading.Event(), threading.Event()

    def hold_the_thread():
        busy.set()
        release.wait(10)

    first = a_record()
    w.submit(first, "default", after=hold_the_thread)
    assert busy.wait(10)  # the thread took the first row and is stuck in its follow-up
    queued = [a_record() for _ in range(2)]
    for record in queued:
        w.submit(record, "default")
    followed_up: list[str] = []
    started = time.monotonic()
    overflowing = [a_record() for _ in range(3)]
    for record in overflowing:
        w.submit(record, "default", after=lambda: followed_up.append("done"))
    assert time.monotonic() - started < 1.0  # no waiting for room
    assert w.stats().overflowed == 3
    assert w.stats().queued == 2
    assert followed_up == ["done"] * 3  # follow-ups still run: the row could not be saved
    [line] = errors(caplog, "queue is full")
    assert "claude_ingest_log" in line.getMessage()

    release.set()
    assert w.flush(10.0)
    saved = set(CallRecord.objects.values_list("id", flat=True))
    assert saved == {first.id, *(r.id for r in queued)}
    assert "3 records were not saved" in caplog.text  # the episode is over
    # a new episode gets its own line
    busy.clear()
    release.clear()
    w.submit(a_record(), "default", after=hold_the_thread)
    assert busy.wait(10)
    for _ in range(3):
        w.submit(a_record(), "default")
    release.set()
    assert len(errors(caplog, "queue is full")) == 2


def test_the_default_queue_is_bounded():
    assert 0 < writer.RecordWriter.MAX_QUEUED <= 100_000
    assert writer._writer._queue.maxsize == writer.RecordWriter.MAX_QUEUED


# -- fork() ----------------------------------------------------------------------------


def _in_the_child(w: writer.RecordWriter, record: CallRecord) -> int:
    if w._queue.qsize() or w._thread is not None or w._lock.locked():
        return 2  # the parent's rows, thread or lock leaked into the child
    seen: list[bool] = []
    w.submit(
        record,
        "default",
        after=lambda: seen.append(CallRecord.objects.filter(id=record.id).exists()),
    )
    if not w.flush(10.0):
        return 3
    return 0 if seen == [True] else 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@transactional
def test_a_forked_child_starts_with_a_writer_of_its_own(fresh_writer):
    w = fresh_writer()
    # The parent as Celery prefork or gunicorn --preload may leave it: a thread
    # at work, a row queued, the lock held at the moment of the fork.
    release = threading.Event()
    working = threading.Thread(target=release.wait, args=(10,), daemon=True)
    working.start()
    parents_row, childs_row = a_record("parent"), a_record("child")
    w._queue.put_nowait((parents_row, "default", None))
    w._thread = working
    w._lock.acquire()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            signal.alarm(20)  # a deadlock ends the child instead of the run
            code = _in_the_child(w, childs_row)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    w._lock.release()
    release.set()
    working.join()
    with w._queue.mutex:  # the parent's row is the parent's business, not this test's
        w._queue.queue.clear()
        w._queue.unfinished_tasks = 0
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    if connection.vendor != "sqlite":  # an in-memory SQLite database is the child's copy
        assert CallRecord.objects.filter(id=childs_row.id).exists()
    assert not CallRecord.objects.filter(id=parents_row.id).exists()


# -- a test's transaction ------------------------------------------------------------------


@transactional
def test_a_transaction_marked_as_the_tests_keeps_its_records(fake_anthropic):
    # what a Django TestCase does in setUp(): its atomic block is the test's
    with transaction.atomic(), records_in_test_transaction():
        result = django_claude.call("hi", feature="f")
        assert CallRecord.objects.filter(id=result.request_id).exists()  # written inline
        transaction.set_rollback(True)
    assert writer.flush_pending()
    assert not CallRecord.objects.exists()  # rolled back with "the test"


@pytest.fixture
def callers_atomic():
    """Code under test that holds its own transaction open across fixtures."""
    with transaction.atomic():
        yield


@transactional
def test_an_atomic_opened_by_a_fixture_is_the_callers(callers_atomic, settings):
    # `settings` (a pytest-django fixture) set up inside it did not open it
    assert in_callers_transaction("default")


def test_a_pytest_django_test_transaction_is_the_tests(db):
    assert connection.in_atomic_block
    assert not in_callers_transaction("default")
    with transaction.atomic():
        assert not in_callers_transaction("default")
