"""Test tools for sites using django-claude: a fake Messages API and a pytest plugin."""

from __future__ import annotations

from django_claude.testing.server import OK, FakeAnthropic, Fault, RecordedRequest

__all__ = ["OK", "FakeAnthropic", "Fault", "RecordedRequest"]
