"""Reuse a recent identical answer (``cache_ttl``) and replay idempotent calls
(``idempotency_key``), both through the Django cache ``DJANGO_CLAUDE_CACHE``.

Only answers a model actually gave are stored; a degraded call is never
replayed, so trying again after an outage reaches the API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from anthropic.types import Message

from django_claude.client.request import CallRequest
from django_claude.conf import conf
from django_claude.shared_cache import cache_op

logger = logging.getLogger(__name__)

PREFIX = "django_claude:answer:"


@dataclass(frozen=True)
class StoredAnswer:
    text: str
    model: str
    stop_reason: str
    usage: dict[str, int]
    message: dict[str, Any] | None


def request_key(payload: dict[str, Any]) -> str:
    """A stable key for an identical request (model, system, messages, options)."""
    blob = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PREFIX}req:{digest}"


def idempotency_cache_key(feature: str, key: str) -> str:
    digest = hashlib.sha256(f"{feature}\x00{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PREFIX}idem:{digest}"


def get(key: str) -> StoredAnswer | None:
    value = cache_op("answer read", lambda c: c.get(key), default=None)
    if not isinstance(value, dict):
        return None
    try:
        return StoredAnswer(**value)
    except TypeError:
        return None


def put(key: str, answer: StoredAnswer, ttl: int) -> None:
    cache_op("answer write", lambda c: c.set(key, answer.__dict__, timeout=ttl), default=None)


class IdempotencyLock:
    """Makes concurrent calls with one idempotency key share one upstream request.

    The first caller takes the lock (``cache.add``); the others wait for its
    answer until their deadline, and go themselves if it released without one.
    """

    def __init__(self, key: str) -> None:
        self.key = f"{key}:lock"
        self.held = False

    def acquire(self, *, ttl: float) -> bool:
        seconds = max(1, int(ttl) + 1)
        # No cache: behave as if we were alone.
        self.held = bool(
            cache_op(
                "idempotency lock", lambda c: c.add(self.key, 1, timeout=seconds), default=True
            )
        )
        return self.held

    def wait_for(self, answer_key: str, *, seconds: float) -> StoredAnswer | None:
        ends = time.monotonic() + seconds
        delay = 0.01
        while time.monotonic() < ends:
            found = get(answer_key)
            if found is not None:
                return found
            holder = cache_op("idempotency lock", lambda c: c.get(self.key), default=None)
            if holder is None and self.acquire(ttl=seconds):
                return None  # the first caller gave up (or the cache is gone): our turn
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        return None

    def release(self) -> None:
        if self.held:
            cache_op("idempotency lock", lambda c: c.delete(self.key), default=None)
            self.held = False


def text_of(message: Message) -> str:
    """The text blocks of an answer, joined."""
    return "".join(
        text
        for block in message.content
        if getattr(block, "type", None) == "text"
        and isinstance(text := getattr(block, "text", ""), str)
    )


class Reuse:
    """One call's ``cache_ttl`` and ``idempotency_key``: find a stored answer
    (waiting for a concurrent twin), and store the new one. Blocking: the
    async driver runs it in a thread, and only when the call asked for it."""

    def __init__(self, req: CallRequest, *, model: str) -> None:
        self.cache_ttl = req.cache_ttl
        self.cache_key = request_key({"model": model, **req.params}) if req.cache_ttl else ""
        self.idem_key = (
            idempotency_cache_key(req.feature, req.idempotency_key) if req.idempotency_key else ""
        )
        self.lock: IdempotencyLock | None = None

    @property
    def wanted(self) -> bool:
        return bool(self.cache_key or self.idem_key)

    def find(self, *, wait: float) -> StoredAnswer | None:
        """A stored answer to reuse, waiting up to ``wait`` seconds for a
        concurrent call with the same idempotency key."""
        for key in (self.idem_key, self.cache_key):
            if key and (stored := get(key)) is not None:
                return stored
        if self.idem_key:
            self.lock = IdempotencyLock(self.idem_key)
            if not self.lock.acquire(ttl=conf.DEADLINE):
                return self.lock.wait_for(self.idem_key, seconds=wait)
        return None

    def keep(self, message: Message, usage: dict[str, int]) -> None:
        """Store an answer a model gave, for the TTL and the idempotency window."""
        if not self.wanted:
            return
        stored = StoredAnswer(
            text=text_of(message),
            model=message.model,
            stop_reason=message.stop_reason or "",
            usage=usage,
            message=message.model_dump(mode="json"),
        )
        if self.cache_key and self.cache_ttl:
            put(self.cache_key, stored, self.cache_ttl)
        if self.idem_key:
            put(self.idem_key, stored, max(conf.IDEMPOTENCY_TTL, self.cache_ttl or 0))

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
