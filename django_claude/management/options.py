"""Checks of options several ``claude_*`` commands share."""

from __future__ import annotations

from django.core.management.base import CommandError

from django_claude.costs.days import resolve_tz


def check_tz(tz: str | None) -> None:
    """``--tz``: absent (the site's TIME_ZONE) or a zone name; else a CommandError."""
    if tz is None:
        return
    if not tz:
        raise CommandError("--tz: empty (leave it out for TIME_ZONE)")
    try:
        resolve_tz(tz)
    except ValueError as exc:
        raise CommandError(f"--tz: {exc}") from None
