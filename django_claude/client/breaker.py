"""The circuit breaker: one per model id, shared by every process of a site.

The state machine (``breaker_allows``, ``breaker_after_failure``) is pure;
``CircuitBreaker`` keeps its state in the Django cache ``DJANGO_CLAUDE_CACHE``
and ``Breakers`` performs the engine's breaker steps for one call. A cache
that fails or hangs never takes a call down: within its time budget
(``shared_cache``) the breaker reads as closed.

Each process keeps the state it last read for ``SYNC_EVERY`` seconds
(``LocalView``), so a healthy model costs one cache read per model and
process every quarter second, not one per call; a failure, a trip and a
reset are written through at once (and update the local copy). Another
process's trip is seen within ``SYNC_EVERY``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache import BaseCache

from django_claude.client.engine import BreakerEvent, BreakerStep
from django_claude.conf import conf
from django_claude.shared_cache import cache_op

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0
    open_until: float | None = None  # wall-clock seconds; None when closed
    limited_until: float | None = None  # out of Anthropic's rate limit until (ratelimits.py)


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


SYNC_EVERY = 0.25  # seconds a process trusts the breaker state it last read


class LocalView:
    """The breaker states this process read or wrote last, by model, with
    when (monotonic); shared by its threads."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[float, BreakerState]] = {}
        self._lock = threading.Lock()

    def fresh(self, model: str) -> BreakerState | None:
        """The state read less than ``SYNC_EVERY`` ago, else None."""
        seen = self._states.get(model)
        if seen is None or time.monotonic() - seen[0] >= SYNC_EVERY:
            return None
        return seen[1]

    def keep(self, model: str, state: BreakerState) -> None:
        """Remember ``state`` (a rate limit this process noted meanwhile stays)."""
        with self._lock:
            known = self._states.get(model)
            noted = known[1].limited_until if known is not None else None
            if noted is not None and noted > (state.limited_until or 0.0):
                state = replace(state, limited_until=noted)
            self._states[model] = (time.monotonic(), state)

    def limit(self, model: str, until: float) -> None:
        """Note that ``model`` is out of rate limit until ``until`` (keeping
        the rest of what is known of it, for as long as it was fresh)."""
        with self._lock:
            # A model not read yet stays stale (read at its next use), so its
            # breaker state in the cache is not hidden behind a blank one.
            when, state = self._states.get(model, (float("-inf"), BreakerState()))
            later = max(until, state.limited_until or 0.0)
            self._states[model] = (when, replace(state, limited_until=later))

    def forget(self, model: str | None = None) -> None:
        with self._lock:
            if model is None:
                self._states.clear()
            else:
                self._states.pop(model, None)


local_view = LocalView()


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
        self._limited_key = f"{self.PREFIX}{model}:limited_until"  # ratelimits.limited_key
        self.probing = False
        self._seen = BreakerState()

    def state(self) -> BreakerState:
        """The shared state, as this process read it less than ``SYNC_EVERY`` ago."""
        known = local_view.fresh(self.model)
        if known is not None:
            return known
        keys = [self._failures_key, self._open_key, self._limited_key]
        values: dict[str, Any] = cache_op("breaker read", lambda c: c.get_many(keys), default={})
        limited = values.get(self._limited_key)
        state = BreakerState(
            failures=int(values.get(self._failures_key) or 0),
            open_until=values.get(self._open_key),
            limited_until=float(limited) if isinstance(limited, (int, float)) else None,
        )
        local_view.keep(self.model, state)
        return state

    @property
    def known_locally(self) -> bool:
        """Can ``allow`` answer without the cache? (Not when it may probe.)"""
        known = local_view.fresh(self.model)
        return known is not None and breaker_allows(known, now=time.time()) != "half-open"

    def rate_wait(self, *, now: float | None = None) -> float | None:
        """Seconds until the model's rate limit resets, when it is spent."""
        until = self.state().limited_until
        now = time.time() if now is None else now
        return None if until is None or until <= now else until - now

    def allow(self, *, now: float | None = None) -> bool:
        """May a request go to this model now? Claims the probe when half-open."""
        self._seen = self.state()
        verdict = breaker_allows(self._seen, now=time.time() if now is None else now)
        if verdict == "closed":
            return True
        if verdict == "open":
            return False
        ttl = max(1, int(conf.TIMEOUT) + 1)
        # No cache to hold the probe lock: behave as the only process.
        self.probing = bool(
            cache_op(
                "breaker probe", lambda c: c.add(self._probe_key, 1, timeout=ttl), default=True
            )
        )
        return self.probing

    @property
    def has_state_to_clear(self) -> bool:
        """Would ``record_success`` touch the cache? (The common answer: no.)"""
        return bool(self._seen.failures or self._seen.open_until is not None or self.probing)

    def record_success(self) -> None:
        if self.has_state_to_clear:
            cache_op("breaker reset", lambda c: c.delete_many(self._keys), default=None)
            local_view.keep(self.model, BreakerState())
            if self._seen.open_until is not None or self.probing:
                logger.info("claude breaker closed for %s", self.model)
        self._seen = BreakerState()
        self.probing = False

    def _count_failure(self, cache: BaseCache) -> int:
        cache.add(self._failures_key, 0, timeout=None)
        return int(cache.incr(self._failures_key))

    def record_failure(self, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        failures = cache_op("breaker count", self._count_failure, default=self._seen.failures + 1)
        new = breaker_after_failure(
            BreakerState(failures=failures - 1, open_until=self._seen.open_until),
            now=now,
            threshold=conf.BREAKER_THRESHOLD,
            cooldown=conf.BREAKER_COOLDOWN,
            probe=self.probing,
        )
        if new.open_until is not None and new.open_until != self._seen.open_until:
            opened = new.open_until

            def trip(cache: BaseCache) -> None:
                cache.set(self._open_key, opened, timeout=None)
                cache.delete(self._probe_key)

            cache_op("breaker trip", trip, default=None)
            logger.warning(
                "claude breaker open for %s: %d consecutive failures, cooling down %.0fs",
                self.model,
                failures,
                conf.BREAKER_COOLDOWN,
            )
        self._seen = new
        self.probing = False
        local_view.keep(self.model, new)

    @property
    def _keys(self) -> list[str]:
        return [self._failures_key, self._open_key, self._probe_key]

    def reset(self) -> None:
        cache_op("breaker reset", lambda c: c.delete_many(self._keys), default=None)
        local_view.forget(self.model)


class Breakers:
    """The breakers of one call's models: performs the engine's breaker steps.

    Blocking (cache I/O); the async driver runs ``perform`` in a thread only
    when ``needs_io`` says the step touches the cache.
    """

    def __init__(self) -> None:
        self._by_model: dict[str, CircuitBreaker] = {}

    def _of(self, model: str) -> CircuitBreaker:
        if model not in self._by_model:
            self._by_model[model] = CircuitBreaker(model)
        return self._by_model[model]

    def needs_io(self, step: BreakerStep) -> bool:
        if step.event is BreakerEvent.SUCCEEDED:
            return self._of(step.model).has_state_to_clear
        if step.event is BreakerEvent.ALLOW:
            return not self._of(step.model).known_locally
        return True

    def perform(self, step: BreakerStep) -> bool | float:
        """Carry out ``step``; for ``ALLOW``, whether the model may take an
        attempt, or the seconds until its spent rate limit resets."""
        breaker = self._of(step.model)
        if step.event is BreakerEvent.ALLOW:
            wait = breaker.rate_wait()
            return breaker.allow() if wait is None else wait
        if step.event is BreakerEvent.SUCCEEDED:
            breaker.record_success()
        else:
            breaker.record_failure()
        return True
