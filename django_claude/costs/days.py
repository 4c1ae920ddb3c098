"""Days as a person at the site counts them: in the site's ``TIME_ZONE`` (or
the one asked for), so a call at 23:59:59.999 and one at 00:00:00 land on the
days a person would expect, DST changes included."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping
from typing import Any

from django.utils import timezone


def resolve_tz(name: str | None) -> datetime.tzinfo:
    """The named time zone, or the site's when ``name`` is empty.

    Raises ``ValueError`` for a name that is not a time zone.
    """
    if not name:
        return timezone.get_default_timezone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def day_bounds(
    since: datetime.date, until: datetime.date, tz: datetime.tzinfo
) -> tuple[datetime.datetime, datetime.datetime]:
    """[since 00:00, the day after until 00:00) in ``tz``, as aware datetimes."""
    start = datetime.datetime.combine(since, datetime.time.min, tzinfo=tz)
    end = datetime.datetime.combine(
        until + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
    )
    return start, end


def line_day(line: Mapping[str, Any], tz: datetime.tzinfo) -> datetime.date:
    """The day in ``tz`` of a ``django_claude.calls`` log line (naive times are UTC)."""
    created = datetime.datetime.fromisoformat(str(line["created_at"]))
    if timezone.is_naive(created):
        created = created.replace(tzinfo=datetime.UTC)
    return created.astimezone(tz).date()


def yesterday(tz: str | None = None) -> datetime.date:
    return timezone.now().astimezone(resolve_tz(tz)).date() - datetime.timedelta(days=1)
