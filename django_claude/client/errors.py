"""What an upstream error means: retry it, fall back, or hand it to the caller.

Pure functions of plain values: the engine asks them what an attempt's
failure means and how long the server asked us to wait.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import time
from collections.abc import Mapping

import anthropic
import httpx2

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
CALLER_STATUSES = frozenset({400, 413, 422})
MODEL_STATUSES = frozenset({403, 404})
AUTH_STATUSES = frozenset({401})


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"  # retry with backoff, then fall back
    CALLER = "caller"  # the request itself is wrong: record and re-raise
    MODEL = "model"  # this model id cannot serve: go straight to the fallback
    AUTH = "auth"  # the key is wrong: no retry, degraded, logged at ERROR
    FATAL = "fatal"  # anything else upstream refused: no retry, degraded


class BadResponse(Exception):
    """A 200 whose body is not a Message (an HTML page from a proxy, say)."""

    def __init__(self, body: object, *, what: str = "") -> None:
        what = what or f"a {type(body).__name__}"
        super().__init__(f"upstream answered 200 with {what}, not a Message")
        self.body_type = type(body).__name__


class StreamCutOff(Exception):
    """A stream ended before ``message_stop``: the connection dropped."""


class StreamStalled(Exception):
    """A stream that had begun sent no text for ``DJANGO_CLAUDE_TIMEOUT`` seconds."""


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
            httpx2.TransportError,  # raised as they are while a stream is read
            TimeoutError,  # an attempt that ran out of its time (deadline.AttemptTimedOut)
        ),
    ):
        return ErrorKind.TRANSIENT
    if isinstance(exc, (MissingCredentials, anthropic.CredentialsError)):
        return ErrorKind.AUTH
    return ErrorKind.FATAL


# What an attempt can raise that is about the upstream, not about the caller's code.
UPSTREAM_ERRORS = (
    anthropic.AnthropicError,
    BadResponse,
    MissingCredentials,
    StreamCutOff,
    httpx2.TransportError,
    TimeoutError,
)


def error_type(exc: BaseException) -> str:
    """A short, PII-free name for an error: the SDK class or Anthropic's type."""
    return type(exc).__name__


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
