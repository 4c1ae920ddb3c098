"""Work for the smell test done off the request path, in one daemon thread.

Sending the judge's task can block (a broker that is down makes Celery retry
its connection for seconds); a caller must not wait for it. Jobs go to a
bounded queue and one thread runs them; a full queue gives the job's
``on_full`` instead (the call's smell test is abandoned, never its answer).
Safe after ``fork()``: a child starts with an empty queue and no thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)

Job = Callable[[], None]


class Background:
    MAX_QUEUED = 1000

    def __init__(self) -> None:
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=self.MAX_QUEUED)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: Job, *, on_full: Job) -> None:
        """Run ``job`` soon in the background thread; never blocks."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            _run(on_full)
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="django-claude-smell", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=1.0)
            except queue.Empty:
                connections.close_all()  # idle: hold no connection
                continue
            _run(job)
            self._jobs.task_done()
            if self._jobs.empty():
                connections.close_all()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted job has run (tests, shutdown); False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._jobs.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's thread does not exist here


def _run(job: Job) -> None:
    try:
        job()
    except Exception:
        logger.exception("claude smell test: background job failed")


background = Background()
os.register_at_fork(after_in_child=background.after_fork)
