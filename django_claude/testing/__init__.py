"""Test tools for sites using django-claude: a fake Messages API and a pytest plugin."""

from __future__ import annotations

from django_claude.testing.server import OK, FakeAnthropic, Fault, RecordedRequest

__all__ = ["OK", "FakeAnthropic", "Fault", "RecordedRequest", "flush_pending"]


def flush_pending(timeout: float = 10.0) -> bool:
    """Wait until records written from inside a caller's transaction are saved
    (for tests that roll their own transaction back); False on timeout."""
    from django_claude.recording.writer import flush_pending as flush  # needs the app registry

    return flush(timeout)
