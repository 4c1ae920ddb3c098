"""``ClaudeResult``: what every call hands back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class ClaudeResult:
    """The answer to one call, and how it was obtained.

    ``outcome`` is ``"ok"`` (the route's model answered), ``"fallback"`` (the
    fallback model answered), ``"cached"`` (a recent identical answer or an
    idempotent replay, no upstream request) or ``"degraded"`` (nothing
    answered: ``text`` is ``DJANGO_CLAUDE_DEGRADED_MESSAGE``).
    """

    text: str
    outcome: str
    model: str
    attempts: int
    request_id: uuid.UUID
    cost_usd: Decimal | None
    usage: dict[str, int] = field(default_factory=dict)
    message: Any = None
    stop_reason: str = ""

    @property
    def ok(self) -> bool:
        """True when a model answered (live or from the cache)."""
        return self.outcome != "degraded"

    @property
    def degraded(self) -> bool:
        return self.outcome == "degraded"
