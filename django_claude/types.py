"""The values a call hands back, free of Django so any layer can use them.

``Outcome`` and ``SmellVerdict`` are ``StrEnum``: each member equals its
string (``Outcome.OK == "ok"``), so rows, log lines and JSON keep the plain
values while code gets names a type checker can follow.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class Outcome(enum.StrEnum):
    """How a call ended."""

    OK = "ok"  # the route's model answered
    FALLBACK = "fallback"  # the fallback model answered
    CACHED = "cached"  # a stored answer was reused: no upstream request
    DEGRADED = "degraded"  # nothing answered: the degraded message
    ERROR = "error"  # the API called the request invalid: recorded, then raised
    INTERRUPTED = "interrupted"  # a stream cut off after its first token, or a cancelled call
    LIMITED = "limited"  # a quota refused the call: nothing was sent

    @property
    def answered(self) -> bool:
        """A model's whole answer reached the caller (live or from the cache)."""
        return self in (Outcome.OK, Outcome.FALLBACK, Outcome.CACHED)


class SmellVerdict(enum.StrEnum):
    """What the smell-test judge said about a call."""

    NOT_SAMPLED = "not_sampled"
    PENDING = "pending"
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class ClaudeResult:
    """The answer to one call, and how it was obtained.

    ``outcome`` is an ``Outcome``: ``ok`` (the route's model answered),
    ``fallback`` (the fallback model answered), ``cached`` (a recent identical
    answer or an idempotent replay, no upstream request), ``degraded``
    (nothing answered: ``text`` is ``DJANGO_CLAUDE_DEGRADED_MESSAGE``) or, for
    streams and cancelled async calls, ``interrupted``; ``limited`` when a
    quota refused the call before anything was sent (``text`` is
    ``DJANGO_CLAUDE_LIMITED_MESSAGE``, ``quota`` names the quota and
    ``retry_after`` says in how many seconds its window resets).
    """

    text: str
    outcome: Outcome
    model: str
    attempts: int
    request_id: uuid.UUID
    cost_usd: Decimal | None
    usage: dict[str, int] = field(default_factory=dict)
    message: Any = None
    stop_reason: str = ""
    retry_after: float | None = None  # a limited call: seconds until its quota resets
    quota: str = ""  # a limited call: the quota that refused it

    @property
    def ok(self) -> bool:
        """True when a model's whole answer is in ``text`` (live or cached)."""
        return Outcome(self.outcome).answered

    @property
    def degraded(self) -> bool:
        return self.outcome == Outcome.DEGRADED

    @property
    def limited(self) -> bool:
        return self.outcome == Outcome.LIMITED


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


class ClaudeLimited(ClaudeUnavailable):
    """A quota refused the call (nothing was sent), raised instead of the
    limited answer when ``DJANGO_CLAUDE_RAISE_ON_FAILURE = True``. ``quota``
    names the quota; ``retry_after`` is the seconds until its window resets."""

    def __init__(
        self,
        message: str,
        *,
        request_id: uuid.UUID,
        quota: str,
        retry_after: float,
        error_type: str = "QuotaExceeded",
    ) -> None:
        super().__init__(message, request_id=request_id, error_type=error_type)
        self.quota = quota
        self.retry_after = retry_after
