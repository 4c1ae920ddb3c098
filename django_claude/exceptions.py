"""Exceptions raised to callers of ``django_claude``."""

from __future__ import annotations

import uuid


class ClaudeUnavailable(Exception):
    """Nothing could answer (primary, fallback and retries all failed).

    Raised instead of a degraded answer when
    ``DJANGO_CLAUDE_RAISE_ON_FAILURE = True``. ``request_id`` is the id of the
    ``CallRecord`` that was written for the failed call.
    """

    def __init__(self, message: str, *, request_id: uuid.UUID, error_type: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.error_type = error_type
