"""Delete call records past their retention period, in small batches."""

from __future__ import annotations

import datetime
import logging

from django.utils import timezone

from django_claude.conf import conf
from django_claude.models import CallRecord, SmellFailure

logger = logging.getLogger(__name__)


def purge_old_records(*, batch_size: int = 1000, now: datetime.datetime | None = None) -> int:
    """Delete CallRecords older than ``DJANGO_CLAUDE_RETENTION_DAYS`` (and
    smell-test failure captures older than ``DJANGO_CLAUDE_FAILURE_RETENTION_DAYS``).

    Each batch is its own short DELETE by primary key, so the table is never
    locked for long and writers keep going. Returns how many were deleted.
    """
    now = now or timezone.now()
    failures_cutoff = now - datetime.timedelta(days=conf.FAILURE_RETENTION_DAYS)
    SmellFailure.objects.filter(created_at__lt=failures_cutoff).delete()
    cutoff = now - datetime.timedelta(days=conf.RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(
            CallRecord.objects.filter(created_at__lt=cutoff)
            .order_by()
            .values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            break
        count, _ = CallRecord.objects.filter(id__in=ids).delete()
        deleted += count
    if deleted:
        logger.info("claude retention: deleted %d call records older than %s", deleted, cutoff)
    return deleted
