"""Times as the site keeps them, with time zones (``USE_TZ = True``, aware
UTC) or without (naive local time in ``TIME_ZONE``). Django's own
``localtime``/``localdate`` refuse a naive time, so a site without time
zones needs these."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone


def aware(value: datetime.datetime) -> datetime.datetime:
    """``value`` with its zone: a naive one is the site's local time."""
    if timezone.is_naive(value):
        return timezone.make_aware(value, timezone.get_default_timezone())
    return value


def as_stored(value: datetime.datetime) -> datetime.datetime:
    """``value`` as a ``DateTimeField`` of this site stores it: aware with
    time zones, naive local time without (a naive value is taken as UTC
    with time zones, as a line's time without an offset always was)."""
    if settings.USE_TZ:
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return timezone.make_naive(value, timezone.get_default_timezone()) if value.tzinfo else value


def local(value: datetime.datetime) -> datetime.datetime:
    """``value`` in the site's time, for display."""
    return timezone.localtime(value) if timezone.is_aware(value) else value


def local_today() -> datetime.date:
    """Today in the site's time zone."""
    return timezone.localdate() if settings.USE_TZ else timezone.now().date()
