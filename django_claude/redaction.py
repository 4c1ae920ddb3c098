"""Kept so that ``DJANGO_CLAUDE_REDACTOR = "django_claude.redaction.redact"``,
the default before 0.2, keeps working: the redactor lives in
``django_claude.recording.redaction``."""

from django_claude.recording.redaction import redact

__all__ = ["redact"]
