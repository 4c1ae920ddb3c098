"""Anthropic's rate limits, read from its responses and shared by every worker.

Each response carries ``anthropic-ratelimit-{requests,tokens,input-tokens,
output-tokens}-{limit,remaining,reset}``. When one of them reaches zero (or
a 429 says so), the model is out until that reset: the breaker's state in
the shared cache says so (``limited_until``), so the other processes wait
for a reset that is close and within the deadline, or go to the fallback,
instead of all sending into 429s. The last limits seen per model are kept in
the cache for the admin.

The driver says which model an attempt is for (``attempt_model``); the SDK
client's response hook (``note_response``) reads the headers.
"""

from __future__ import annotations

import contextvars
import datetime
import threading
import time
from collections.abc import Mapping
from typing import Any

from django_claude.client.errors import retry_after
from django_claude.shared_cache import cache_op, cache_op_later

KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
HEADER = "anthropic-ratelimit-"
SEEN_PREFIX = "django_claude:ratelimit:seen:"
SEEN_TTL = 7 * 24 * 3600
SEEN_EVERY = 10.0  # seconds between two writes of one model's last seen limits
LIMITED_SUFFIX = ":limited_until"  # after the breaker's prefix and the model
MAX_BLOCK = 120.0  # seconds: a reset further off is not believed

attempt_model: contextvars.ContextVar[str] = contextvars.ContextVar(
    "django_claude_attempt_model", default=""
)
_last_written: dict[str, float] = {}
_lock = threading.Lock()


def limited_key(model: str) -> str:
    from django_claude.client.breaker import CircuitBreaker

    return f"{CircuitBreaker.PREFIX}{model}{LIMITED_SUFFIX}"


def _reset_at(value: str | None, now: float) -> float | None:
    """An RFC 3339 reset time as epoch seconds (at most ``MAX_BLOCK`` away)."""
    if not value:
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return min(when.timestamp(), now + MAX_BLOCK)


def read_limits(headers: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{kind: {"limit", "remaining", "reset"}}`` for each kind the headers carry.

    The headers are read in one pass (an httpx ``Headers`` looks each name up
    by scanning them all: twelve lookups a response, with Anthropic's)."""
    values: dict[str, str] = {}
    items = headers.multi_items() if hasattr(headers, "multi_items") else headers.items()
    for name, value in items:
        if name[: len(HEADER)].lower() == HEADER:
            values.setdefault(name.lower(), value)
    if not values:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        remaining = values.get(f"{HEADER}{kind}-remaining")
        if remaining is None:
            continue
        try:
            found[kind] = {
                "limit": int(values.get(f"{HEADER}{kind}-limit") or 0),
                "remaining": int(remaining),
                "reset": values.get(f"{HEADER}{kind}-reset") or "",
            }
        except ValueError:
            continue
    return found


def exhausted_until(
    limits: Mapping[str, Mapping[str, Any]], status: int, retry_after: float | None, now: float
) -> float | None:
    """When a model's limits are spent, the epoch second they reset; else None."""
    until = None
    for values in limits.values():
        if values["remaining"] <= 0:
            reset = _reset_at(values["reset"], now)
            if reset is not None and reset > now:
                until = max(until or 0.0, reset)
    if status == 429 and retry_after is not None:  # without it, the engine's backoff decides
        until = max(until or 0.0, now + min(retry_after, MAX_BLOCK))
    return until


def note_response(response: Any) -> None:
    """The SDK client's response hook: share what the headers say. Never raises."""
    model = attempt_model.get()
    if not model:
        return
    try:
        headers = response.headers
        status = int(response.status_code)
    except Exception:  # not an HTTP response we can read
        return
    limits = read_limits(headers)
    if not limits and status != 429:
        return
    now = time.time()
    waited = retry_after(headers) if status == 429 else None
    until = exhausted_until(limits, status, waited, now)
    if until is not None:
        mark_limited(model, until, now=now)
    if limits:
        _remember(model, limits, now)


def mark_limited(model: str, until: float, *, now: float | None = None) -> None:
    """Tell every process that ``model`` takes no request before ``until``."""
    from django_claude.client.breaker import local_view

    now = time.time() if now is None else now
    local_view.limit(model, until)
    ttl = max(1, int(until - now) + 1)
    cache_op_later("rate limit", lambda cache: cache.set(limited_key(model), until, timeout=ttl))


def _remember(model: str, limits: dict[str, dict[str, Any]], now: float) -> None:
    with _lock:
        if now - _last_written.get(model, 0.0) < SEEN_EVERY:
            return
        _last_written[model] = now
    seen = {"at": now, "limits": limits}
    cache_op_later("rate limits seen", lambda cache: cache.set(SEEN_PREFIX + model, seen, SEEN_TTL))


def last_seen(models: list[str]) -> dict[str, dict[str, Any]]:
    """The last limits seen per model (``{"at", "limits"}``), for the admin."""
    keys = [SEEN_PREFIX + model for model in models]
    values: dict[str, Any] = cache_op(
        "rate limits read", lambda cache: cache.get_many(keys), default={}
    )
    return {key[len(SEEN_PREFIX) :]: value for key, value in values.items()}
