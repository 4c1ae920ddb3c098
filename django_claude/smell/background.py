"""Work for the smell test done off the request path, in one daemon thread.

Two kinds of job come here: sending the judge's Celery task (a broker that is
down makes Celery retry its connection for seconds; a caller must not wait for
it), and, on a site without Celery, judging the call itself
(``smell.inprocess``). Jobs go to a bounded queue and one thread runs them; a
full queue runs the job's ``on_full`` instead (the call's smell test is
abandoned, never its answer). At exit the queue is given ``EXIT_GRACE``
seconds to empty, then the jobs still waiting get their ``on_full`` (so no
user text waits for a process that is gone). Safe after ``fork()``: a child
starts with an empty queue and no thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connections

from django_claude.recording.transactions import under_test_runner

logger = logging.getLogger(__name__)

Job = Callable[[], None]


class Background:
    MAX_QUEUED = 1000
    EXIT_GRACE = 5.0  # seconds the queue gets to empty when the process exits

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Job, Job]] = queue.Queue(maxsize=self.MAX_QUEUED)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running: tuple[Job, Job] | None = None  # the job at work, and its on_full

    def submit(self, job: Job, *, on_full: Job) -> None:
        """Run ``job`` soon in the background thread; never blocks. ``on_full``
        runs instead, at once, when the queue is full, or at exit for a job
        that never ran."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(
                    target=self._work, name="django-claude-smell", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:  # Python 3.12+ at interpreter shutdown: no new threads
                    _run(on_full)
                    return
                self._thread = thread
        try:
            self._jobs.put_nowait((job, on_full))
        except queue.Full:
            _run(on_full)

    def _work(self) -> None:
        while True:
            try:
                item = self._jobs.get(timeout=1.0)
            except queue.Empty:
                connections.close_all()  # idle: hold no connection
                continue
            self._running = item
            _check_connections()
            _run(item[0])
            self._running = None
            self._jobs.task_done()
            try:
                _tidy_connections(idle=self._jobs.empty())
            except Exception:  # never the thread's end
                logger.exception("claude smell test: could not tidy the thread's connections")

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted job has run (tests, shutdown); False on timeout.

        Polls instead of starting a thread: at exit (atexit) Python 3.12+
        refuses to start new threads."""
        ends = time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if time.monotonic() >= ends:
                return False
            time.sleep(0.01)
        return True

    def shutdown(self, timeout: float | None = None) -> int:
        """Give the queue ``timeout`` seconds (``EXIT_GRACE``) to empty, then run
        ``on_full`` for each job still waiting, and for the one still at work
        (the process will not wait for it); returns how many were dropped.
        Registered with ``atexit``.

        The record writer's queue is flushed first (at exit, within the
        writer's own exit budget): a sampled call's row written behind (from
        inside a caller's ``atomic()``) announces its judge once it is in,
        which must find this thread still taking jobs."""
        from django_claude.recording.writer import flush_at_exit, flush_records

        grace = self.EXIT_GRACE if timeout is None else timeout
        if timeout is None:
            flush_at_exit()
        else:
            flush_records(timeout)
        if self._jobs.unfinished_tasks == 0:
            return 0
        if self.drain(grace):
            return 0
        dropped = 0
        running = self._running
        if running is not None:
            _run(running[1])
            dropped += 1
        while True:
            try:
                _, on_drop = self._jobs.get_nowait()
            except queue.Empty:
                return dropped
            _run(on_drop)
            self._jobs.task_done()
            dropped += 1

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's thread does not exist here


def _check_connections() -> None:
    """Before a job: a kept connection the server dropped meanwhile (a
    restart, a killed backend) is closed, so the job connects again instead
    of failing (one ``SELECT 1``, a fraction of a new connection's cost)."""
    for connection in connections.all(initialized_only=True):
        try:
            if connection.connection is not None and not connection.is_usable():
                connection.close()
        except Exception:  # never the thread's end: the job finds out for itself
            logger.debug("claude smell test: could not check a connection", exc_info=True)


def _tidy_connections(*, idle: bool) -> None:
    """After a job. The thread's database connection is kept while jobs come
    (opening one for each judgement cost more than the judgement: a new
    PostgreSQL backend each time) and closed after a second without one
    (the next job checks it first: ``_check_connections``); what a job left
    in a transaction or out of autocommit is rolled back now. Under a test
    runner it is closed as soon as the queue is empty, or the run could not
    drop its test database."""
    if idle and under_test_runner():
        connections.close_all()
        return
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and (
            connection.in_atomic_block or not connection.get_autocommit()
        ):
            _roll_back(connection)


def _roll_back(connection: Any) -> None:
    """Undo what a job left open, and be in autocommit again (or closed)."""
    try:
        if connection.in_atomic_block:
            raise RuntimeError("a job left an atomic block open")
        connection.rollback()
        connection.set_autocommit(True)
    except Exception:
        connection.close()


def _run(job: Job) -> None:
    try:
        job()
    except Exception:
        logger.exception("claude smell test: background job failed")


background = Background()
os.register_at_fork(after_in_child=background.after_fork)
atexit.register(background.shutdown)
