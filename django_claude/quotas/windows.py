"""Calendar windows in the site's time zone: when one began and when it resets."""

from __future__ import annotations

import datetime

from django.utils import timezone

from django_claude.recording.clock import aware

# The window that held the last ``now`` asked about, per window and zone (its
# bounds, and the same as POSIX timestamps): a call in the same minute, hour,
# day or month needs no date arithmetic, nor a comparison across time zones.
_last: dict[tuple[str, object], tuple[datetime.datetime, datetime.datetime, float, float]] = {}


def window_bounds(
    window: str, now: datetime.datetime | None = None
) -> tuple[datetime.datetime, datetime.datetime]:
    """The start and end (exclusive) of the ``window`` holding ``now``, as
    aware datetimes in the site's ``TIME_ZONE``. A day is a calendar day, so
    DST days last 23 or 25 hours; a month is a calendar month."""
    start, end, _, _ = window_of(window, now)
    return start, end


def window_of(
    window: str, now: datetime.datetime | None = None
) -> tuple[datetime.datetime, datetime.datetime, float, float]:
    """``window_bounds``, and the same bounds as POSIX timestamps."""
    now = aware(now or timezone.now())  # (USE_TZ = False: local time already)
    zone_of_site = timezone.get_default_timezone()
    stamp = now.timestamp()
    key = (window, zone_of_site)
    known = _last.get(key)
    if known is not None and known[2] <= stamp < known[3]:
        return known
    start, end = _bounds(window, timezone.localtime(now, zone_of_site))
    known = _last[key] = (start, end, start.timestamp(), end.timestamp())
    return known


def _bounds(window: str, local: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    zone = local.tzinfo
    if window in ("minute", "hour"):
        start = local.replace(second=0, microsecond=0)
        if window == "hour":
            start = start.replace(minute=0)
        # Elapsed time, not wall-clock time: the hour a DST change repeats is two hours.
        length = datetime.timedelta(minutes=1 if window == "minute" else 60)
        return start, (start.astimezone(datetime.UTC) + length).astimezone(zone)
    if window == "day":
        first = local.date()
        following = first + datetime.timedelta(days=1)
    elif window == "month":
        first = local.date().replace(day=1)
        following = (first + datetime.timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown window {window!r}")
    return _midnight(first, zone), _midnight(following, zone)


def _midnight(day: datetime.date, zone: datetime.tzinfo | None) -> datetime.datetime:
    """The first moment of ``day`` in ``zone`` (zoneinfo resolves a gap forward)."""
    naive = datetime.datetime.combine(day, datetime.time())
    return timezone.make_aware(naive, zone) if zone is not None else naive


_labels: dict[datetime.datetime, str] = {}


def window_label(start: datetime.datetime) -> str:
    """A window's start as a compact UTC stamp, for a counter's key."""
    label = _labels.get(start)
    if label is None:
        if len(_labels) > 64:  # old windows: a minute window makes one a minute
            _labels.clear()
        label = _labels[start] = start.astimezone(datetime.UTC).strftime("%Y%m%d%H%M")
    return label
