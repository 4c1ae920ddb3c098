"""Which errors are worth retrying, how long to wait, and when to stop.

The error classification, the backoff schedule, ``retry-after`` parsing, the
deadline and the circuit breaker's state machine are pure functions of plain
values. Only ``CircuitBreaker`` touches the Django cache, so that every
process of a site shares one view of a model's health.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anthropic

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
CALLER_STATUSES = frozenset({400, 413, 422})
MODEL_STATUSES = frozenset({403, 404})
AUTH_STATUSES = frozenset({401})

# An attempt needs at least this long to be worth starting.
MIN_ATTEMPT_SECONDS = 0.05


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"  # retry with backoff, then fall back
    CALLER = "caller"  # the request itself is wrong: record and re-raise
    MODEL = "model"  # this model id cannot serve: go straight to the fallback
    AUTH = "auth"  # the key is wrong: no retry, degraded, logged at ERROR
    FATAL = "fatal"  # anything else upstream refused: no retry, degraded


class BadResponse(Exception):
    """A 200 whose body is not a Message (an HTML page from a proxy, say)."""

    def __init__(self, body: object) -> None:
        super().__init__(f"upstream answered 200 with a {type(body).__name__}, not a Message")
        self.body_type = type(body).__name__


class StreamCutOff(Exception):
    """A stream ended before ``message_stop``: the connection dropped."""


class MissingCredentials(Exception):
    """No API key could be found (setting, environment or SDK config)."""


def classify_status(status: int) -> ErrorKind:
    if status in TRANSIENT_STATUSES or status >= 500:
        return ErrorKind.TRANSIENT
    if status in CALLER_STATUSES:
        return ErrorKind.CALLER
    if status in MODEL_STATUSES:
        return ErrorKind.MODEL
    if status in AUTH_STATUSES:
        return ErrorKind.AUTH
    return ErrorKind.FATAL


# The type in an error event inside a 200 stream, mapped to its status.
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_status(exc: BaseException) -> int | None:
    """The HTTP status an error stands for, or None for network errors."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status == 200:  # an error event inside a stream
            return ERROR_TYPE_STATUS.get(str(getattr(exc, "type", None) or ""), 500)
        return status
    return None


def classify(exc: BaseException) -> ErrorKind:
    """Sort an exception from one attempt into an ``ErrorKind``."""
    if isinstance(exc, anthropic.APIStatusError):
        return classify_status(error_status(exc) or 500)
    if isinstance(
        exc,
        (
            anthropic.APIConnectionError,
            BadResponse,
            StreamCutOff,
            anthropic.APIResponseValidationError,
        ),
    ):
        return ErrorKind.TRANSIENT
    if isinstance(exc, (MissingCredentials, anthropic.CredentialsError)):
        return ErrorKind.AUTH
    return ErrorKind.FATAL


def error_type(exc: BaseException) -> str:
    """A short, PII-free name for an error: the SDK class or Anthropic's type."""
    return type(exc).__name__


def backoff_delay(
    retry_number: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retry_number)].

    ``retry_number`` is 0 before the first retry.
    """
    ceiling = min(cap, base * (2 ** min(retry_number, 32)))
    return (rng or random).uniform(0.0, max(0.0, ceiling))


def retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, then ``retry-after``
    as seconds or an HTTP date. None when absent or unreadable."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_of(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return retry_after(headers) if headers is not None else None


class Deadline:
    """The time left for a whole call, on the monotonic clock."""

    def __init__(self, seconds: float, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.ends = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.ends - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def attempt_timeout(self, per_attempt: float) -> float | None:
        """The timeout for an attempt starting now, or None if none can start."""
        left = self.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            return None
        return min(per_attempt, left)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


def decide_retry(
    *,
    kind: ErrorKind,
    attempts_made: int,
    max_attempts: int,
    remaining: float,
    backoff: float,
    server_delay: float | None,
) -> RetryDecision:
    """Whether to try the same model again after a failed attempt, and when.

    A server's ``retry-after`` replaces our backoff when longer, but never
    pushes the next attempt past the deadline: then we stop and fall back.
    """
    if kind is not ErrorKind.TRANSIENT:
        return RetryDecision(False, reason=kind.value)
    if attempts_made >= max_attempts:
        return RetryDecision(False, reason="attempts exhausted")
    delay = max(backoff, server_delay or 0.0)
    if delay + MIN_ATTEMPT_SECONDS > remaining:
        return RetryDecision(False, reason="deadline")
    return RetryDecision(True, delay=delay)


# -- circuit breaker ---------------------------------------------------------


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0
    open_until: float | None = None  # wall-clock seconds; None when closed


def breaker_allows(state: BreakerState, *, now: float) -> str:
    """``"closed"``: go ahead; ``"open"``: skip the model; ``"half-open"``: one
    probe may go (whoever wins the probe lock)."""
    if state.open_until is None:
        return "closed"
    return "open" if now < state.open_until else "half-open"


def breaker_after_failure(
    state: BreakerState, *, now: float, threshold: int, cooldown: float, probe: bool
) -> BreakerState:
    failures = state.failures + 1
    if probe or failures >= threshold:
        return BreakerState(failures=failures, open_until=now + cooldown)
    return BreakerState(failures=failures, open_until=state.open_until)


class CircuitBreaker:
    """One breaker per model id, kept in the Django cache (``DJANGO_CLAUDE_CACHE``).

    Closed: every call goes. After ``threshold`` consecutive transient failures
    it opens for ``cooldown`` seconds and the model is skipped; then a single
    probe (won with ``cache.add``) decides: success closes it, failure reopens it.
    """

    PREFIX = "django_claude:breaker:"

    def __init__(self, model: str) -> None:
        self.model = model
        self._failures_key = f"{self.PREFIX}{model}:failures"
        self._open_key = f"{self.PREFIX}{model}:open_until"
        self._probe_key = f"{self.PREFIX}{model}:probe"
        self.probing = False
        self._seen = BreakerState()

    @staticmethod
    def _cache() -> Any:
        from django.core.cache import caches

        from django_claude.conf import conf

        return caches[conf.CACHE]

    def state(self) -> BreakerState:
        try:
            values = self._cache().get_many([self._failures_key, self._open_key])
        except Exception:  # a cache outage must not take the call down
            logger.warning("claude breaker: cache unavailable, treating %s as closed", self.model)
            return BreakerState()
        return BreakerState(
            failures=int(values.get(self._failures_key) or 0),
            open_until=values.get(self._open_key),
        )

    def allow(self, *, now: float | None = None) -> bool:
        """May a request go to this model now? Claims the probe when half-open."""
        self._seen = self.state()
        verdict = breaker_allows(self._seen, now=time.time() if now is None else now)
        if verdict == "closed":
            return True
        if verdict == "open":
            return False
        from django_claude.conf import conf

        try:
            self.probing = bool(
                self._cache().add(self._probe_key, 1, timeout=max(1, int(conf.TIMEOUT) + 1))
            )
        except Exception:
            self.probing = True
        return self.probing

    @property
    def has_state_to_clear(self) -> bool:
        """Would ``record_success`` touch the cache? (The common answer: no.)"""
        return bool(self._seen.failures or self._seen.open_until is not None or self.probing)

    def record_success(self) -> None:
        if self.has_state_to_clear:
            try:
                self._cache().delete_many([self._failures_key, self._open_key, self._probe_key])
            except Exception:
                logger.warning("claude breaker: could not reset %s", self.model)
            if self._seen.open_until is not None or self.probing:
                logger.info("claude breaker closed for %s", self.model)
        self._seen = BreakerState()
        self.probing = False

    def record_failure(self, *, now: float | None = None) -> None:
        from django_claude.conf import conf

        now = time.time() if now is None else now
        cache = self._cache()
        try:
            cache.add(self._failures_key, 0, timeout=None)
            failures = int(cache.incr(self._failures_key))
        except Exception:
            failures = self._seen.failures + 1
        new = breaker_after_failure(
            BreakerState(failures=failures - 1, open_until=self._seen.open_until),
            now=now,
            threshold=conf.BREAKER_THRESHOLD,
            cooldown=conf.BREAKER_COOLDOWN,
            probe=self.probing,
        )
        if new.open_until is not None and new.open_until != self._seen.open_until:
            try:
                cache.set(self._open_key, new.open_until, timeout=None)
                cache.delete(self._probe_key)
            except Exception:
                logger.warning("claude breaker: could not open %s", self.model)
            logger.warning(
                "claude breaker open for %s: %d consecutive failures, cooling down %.0fs",
                self.model,
                failures,
                conf.BREAKER_COOLDOWN,
            )
        self._seen = new
        self.probing = False

    def reset(self) -> None:
        self._cache().delete_many([self._failures_key, self._open_key, self._probe_key])
