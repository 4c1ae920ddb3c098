"""The judge in this process, for sites without Celery (the default).

A sampled call is judged by the background thread of ``smell.background``,
never on the request path: it reads the stashed pair, asks the judge (through
the fake API in tests, the real one otherwise), stores the verdict and keeps a
redacted copy of a FAIL, exactly as the Celery task does. A judge that is down
gives ``error``; a full queue, a crash, or a process that exits before the
turn of the call abandons it (the text leaves the cache, the verdict is
``error``). With no Celery beat to close verdicts left pending by a process
that was killed, the thread closes them itself, at most once per
``CLOSE_STALE_EVERY`` seconds.

Inside a test's transaction (pytest-django's ``db``, Django's ``TestCase``)
the call's row exists only in that transaction, which no other thread can
read: there the judge runs inline, as with ``CELERY_TASK_ALWAYS_EAGER``.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.db import connections, router

from django_claude.models import CallRecord
from django_claude.smell import verdicts
from django_claude.smell.background import background

logger = logging.getLogger(__name__)

CLOSE_STALE_EVERY = 600.0
_stale_closed_at: float | None = None


def judge_in_process(request_id: uuid.UUID | str) -> None:
    """Queue the judging of one sampled call in this process; never blocks
    (but in a test's transaction, where it judges at once)."""
    if _row_in_open_transaction(request_id):
        try:
            _judge(request_id)
        except Exception:
            logger.exception("claude smell test: judging %s failed", request_id)
        return
    background.submit(
        lambda: _judge(request_id),
        on_full=lambda: verdicts.abandon_smell_test(request_id),
    )


def _row_in_open_transaction(request_id: uuid.UUID | str) -> bool:
    """Was the call's row written into this thread's open transaction? Only in
    a test's: a caller's own ``atomic()`` sends its rows, and this signal, from
    the record writer's thread (or never writes them, when that queue is full)."""
    using = router.db_for_write(CallRecord)
    if not connections[using].in_atomic_block:
        return False
    return CallRecord.objects.using(using).filter(id=request_id).exists()


def _judge(request_id: uuid.UUID | str) -> None:
    try:
        verdicts.run_smell_test(request_id)
    except Exception:
        verdicts.abandon_smell_test(request_id)  # no text left waiting for a judge that failed
        raise
    finally:
        _close_stale_now_and_then()


def _close_stale_now_and_then() -> None:
    global _stale_closed_at
    now = time.monotonic()
    if _stale_closed_at is None or now - _stale_closed_at >= CLOSE_STALE_EVERY:
        _stale_closed_at = now
        verdicts.close_stale_verdicts()
