"""Delete call records past their retention period, in small batches."""

from __future__ import annotations

import datetime
import logging

from django.utils import timezone

from django_claude.conf import conf
from django_claude.models import CallRecord

logger = logging.getLogger(__name__)


def purge_old_records(*, batch_size: int = 1000, now: datetime.datetime | None = None) -> int:
    """Delete CallRecords older than ``DJANGO_CLAUDE_RETENTION_DAYS``.

    Each batch is its own short DELETE by primary key, so the table is never
    locked for long and writers keep going. Returns how many were deleted.
    """
    cutoff = (now or timezone.now()) - datetime.timedelta(days=conf.RETENTION_DAYS)
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
