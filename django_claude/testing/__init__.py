"""Test tools for sites using django-claude: a fake Messages API and a pytest plugin."""

from __future__ import annotations

from contextlib import AbstractContextManager

from django_claude.testing.faults import rate_limit_headers
from django_claude.testing.server import OK, FakeAnthropic, Fault, RecordedRequest

__all__ = [
    "OK",
    "FakeAnthropic",
    "Fault",
    "RecordedRequest",
    "flush_pending",
    "rate_limit_headers",
    "records_in_test_transaction",
]


def flush_pending(timeout: float = 10.0) -> bool:
    """Wait until records written from inside a caller's transaction are saved
    (for tests that roll their own transaction back); False on timeout."""
    from django_claude.recording.writer import flush_pending as flush  # needs the app registry

    return flush(timeout)


def records_in_test_transaction() -> AbstractContextManager[None]:
    """Write records into the transactions open now (a test's), so they roll
    back with the test; for test runners other than pytest-django and Django's
    ``TestCase``, which are handled already."""
    from django_claude.recording.transactions import (
        records_in_test_transaction as mark,
    )  # needs the app registry

    return mark()
