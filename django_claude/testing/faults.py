"""The fake's scripted answers (``Fault``) and Anthropic's error types."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Fault:
    """One scripted answer. ``Fault()`` (alias ``OK``) is a normal answer.

    - ``status``: an HTTP error status with Anthropic's error body.
    - ``retry_after`` / ``retry_after_ms``: headers sent with the error.
    - ``delay``: seconds to wait before answering (a slow upstream).
    - ``drop``: close the connection without answering.
    - ``body`` / ``content_type``: a raw body, e.g. an HTML page from a proxy.
    - ``text``: the answer's text, instead of the server's default.
    - streams only: ``cut_after`` drops the connection after that many
      content deltas, text first, then a server tool's input (before
      ``message_stop``); ``error_event`` sends an SSE error
      event of that type (``"overloaded_error"``...) after ``cut_after``
      deltas (0: before the first); ``chunk_delay`` waits between events;
      ``pings`` sends that many ``ping`` events (``chunk_delay`` apart) before
      the first text, so a large number is a stream that never starts;
      ``stall_after`` sends that many text deltas, then only pings.
    - ``headers``: more response headers, on an answer or an error (see
      ``rate_limit_headers``).
    - hostile upstreams: ``dribble`` sends the whole response (status line,
      headers, body) one byte at a time, that many seconds apart;
      ``slow_headers`` pauses that long before each header line.
    """

    status: int = 0
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay: float = 0.0
    drop: bool = False
    body: str | None = None
    content_type: str = "application/json"
    text: str | None = None
    cut_after: int | None = None
    error_event: str | None = None
    chunk_delay: float = 0.0
    pings: int = 0
    stall_after: int | None = None
    dribble: float = 0.0
    slow_headers: float = 0.0
    headers: Mapping[str, str] | None = None


OK = Fault()


def rate_limit_headers(
    *,
    requests_remaining: int | None = None,
    tokens_remaining: int | None = None,
    input_tokens_remaining: int | None = None,
    output_tokens_remaining: int | None = None,
    reset_in: float = 60.0,
    limit: int = 50,
) -> dict[str, str]:
    """Anthropic's ``anthropic-ratelimit-*`` headers for ``Fault(headers=...)``:
    for each kind given, its limit, what remains and when it resets."""
    reset = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=reset_in)
    headers: dict[str, str] = {}
    for kind, remaining in (
        ("requests", requests_remaining),
        ("tokens", tokens_remaining),
        ("input-tokens", input_tokens_remaining),
        ("output-tokens", output_tokens_remaining),
    ):
        if remaining is not None:
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset.isoformat().replace("+00:00", "Z")
    return headers
