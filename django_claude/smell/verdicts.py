"""The verdict of a sampled call: judged, abandoned, or closed as stale.

A sampled call is recorded with ``smell_verdict="pending"``; its prompt and
answer wait in a short-lived cache entry (``recording.sampling``), never in
the broker or a row, until ``run_smell_test`` hands them to the judge, stores
the verdict and keeps a redacted copy of the pair only when it is FAIL. The
entry is deleted as soon as the verdict is in, or at once when the judge
cannot be reached.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid

from django.core.cache import caches
from django.utils import timezone

from django_claude.conf import conf
from django_claude.models import CallRecord, SmellFailure
from django_claude.recording.facts import redactor
from django_claude.recording.sampling import STASH_TTL, stash_key
from django_claude.smell.judge import judge
from django_claude.types import SmellVerdict

logger = logging.getLogger(__name__)

STALE_AFTER = datetime.timedelta(seconds=STASH_TTL)  # the stash is gone by then


def set_verdict(request_id: uuid.UUID | str, verdict: SmellVerdict) -> int:
    """Store the verdict of a call still pending; returns 1, or 0 if it was not."""
    return CallRecord.objects.filter(id=request_id, smell_verdict=SmellVerdict.PENDING).update(
        smell_verdict=verdict, judged_at=timezone.now()
    )


def run_smell_test(request_id: uuid.UUID | str) -> SmellVerdict:
    """Judge one sampled call (the Celery task, or the in-process judge); returns the verdict.

    ``ERROR`` when its prompt and answer are no longer in the cache.
    """
    cache = caches[conf.CACHE]
    key = stash_key(request_id)
    try:
        payload = cache.get(key)
    except Exception:
        payload = None
    if not isinstance(payload, dict):
        set_verdict(request_id, SmellVerdict.ERROR)
        return SmellVerdict.ERROR
    verdict, judge_text = judge(payload["prompt"], payload["answer"])
    updated = set_verdict(request_id, verdict)
    if verdict == SmellVerdict.FAIL and updated:
        _keep_failure(request_id, payload["prompt"], payload["answer"], judge_text)
    with contextlib.suppress(Exception):  # it expires within the hour anyway
        cache.delete(key)
    return verdict


def _keep_failure(request_id: uuid.UUID | str, prompt: str, answer: str, judge_text: str) -> None:
    """Keep a redacted copy of a failed pair for review in the admin."""
    record = CallRecord.objects.filter(id=request_id).first()
    if record is None:
        return
    redact = redactor()
    SmellFailure.objects.create(
        call=record,
        feature=record.feature,
        model=record.model,
        prompt=redact(prompt),
        response=redact(answer),
        judge_answer=redact(judge_text)[:200],
    )


def abandon_smell_test(request_id: uuid.UUID | str) -> None:
    """Give up judging a call: its text leaves the cache at once, its verdict is
    ``ERROR``. User text never waits where nothing will read it."""
    with contextlib.suppress(Exception):
        caches[conf.CACHE].delete(stash_key(request_id))
    set_verdict(request_id, SmellVerdict.ERROR)


def close_stale_verdicts(*, now: datetime.datetime | None = None) -> int:
    """Mark verdicts pending for over an hour as ``ERROR`` (a worker died).

    Returns how many were closed.
    """
    now = now or timezone.now()
    return CallRecord.objects.filter(
        smell_verdict=SmellVerdict.PENDING, created_at__lt=now - STALE_AFTER
    ).update(smell_verdict=SmellVerdict.ERROR, judged_at=now)
