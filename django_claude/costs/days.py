"""Days as a person at the site counts them: in the site's ``TIME_ZONE`` (or
the one asked for), so a call at 23:59:59.999 and one at 00:00:00 land on the
days a person would expect, DST changes included."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from django_claude.recording.clock import as_stored

# Days whose bounds (the day after, the offsets of any time zone) stay inside
# what ``datetime`` can hold.
FIRST_DAY = datetime.date.min + datetime.timedelta(days=1)
LAST_DAY = datetime.date.max - datetime.timedelta(days=1)


def resolve_tz(name: str | None) -> datetime.tzinfo:
    """The named time zone, or the site's when ``name`` is None or empty.

    Raises ``ValueError`` for a name that is not a time zone.
    """
    if not name:
        return timezone.get_default_timezone()
    try:
        return zoneinfo.ZoneInfo(name)
    # OSError: a name too long for a file name, or a directory such as "Europe".
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise ValueError(f"unknown time zone {shown!r}") from None


def parse_day(value: str) -> datetime.date:
    """The day ``value`` (YYYY-MM-DD) names.

    Raises ``ValueError`` for text that is not such a date, or a day too close
    to the ends of the calendar for its bounds to exist.
    """
    shown = value if len(value) <= 40 else value[:40] + "..."
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {shown!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{day} is out of range ({FIRST_DAY}..{LAST_DAY})")
    return day


def day_bounds(
    since: datetime.date, until: datetime.date, tz: datetime.tzinfo
) -> tuple[datetime.datetime, datetime.datetime]:
    """[since 00:00, the day after until 00:00) in ``tz``, as the site's
    ``DateTimeField`` compares them (aware; naive local time without time zones)."""
    start = datetime.datetime.combine(since, datetime.time.min, tzinfo=tz)
    end = datetime.datetime.combine(
        until + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
    )
    return as_stored(start), as_stored(end)


def line_day(line: Mapping[str, Any], tz: datetime.tzinfo) -> datetime.date:
    """The day in ``tz`` of a ``django_claude.calls`` log line (naive times are UTC).

    Raises ``KeyError``, ``ValueError`` or ``OverflowError`` for a line whose
    ``created_at`` is missing or not a time.
    """
    created = line["created_at"]
    if not isinstance(created, datetime.datetime):
        created = datetime.datetime.fromisoformat(str(created))
    if timezone.is_naive(created):
        created = created.replace(tzinfo=datetime.UTC)
    return created.astimezone(tz).date()


def yesterday(tz: str | None = None) -> datetime.date:
    return timezone.now().astimezone(resolve_tz(tz)).date() - datetime.timedelta(days=1)
