"""Pure retry logic, and the circuit breaker on the Django cache."""

from __future__ import annotations

import email.utils
import random
import time

import anthropic
import httpx2
import pytest

from django_claude.client import errors as resilience
from django_claude.client.breaker import (
    BreakerState,
    CircuitBreaker,
    breaker_after_failure,
    breaker_allows,
)
from django_claude.client.engine import Deadline, backoff_delay, decide_retry
from django_claude.client.errors import ErrorKind, classify, classify_status, retry_after


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *[(s, ErrorKind.TRANSIENT) for s in (408, 409, 429, 500, 502, 503, 504, 529)],
        *[(s, ErrorKind.CALLER) for s in (400, 413, 422)],
        (403, ErrorKind.MODEL),
        (404, ErrorKind.MODEL),
        (401, ErrorKind.AUTH),
        (402, ErrorKind.FATAL),
    ],
)
def test_classify_status(status, kind):
    assert classify_status(status) is kind


def _status_error(status: int, body: object = None) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    response = httpx2.Response(status, request=request)
    return anthropic.APIStatusError("x", response=response, body=body)


def test_classify_exceptions():
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    assert classify(anthropic.APIConnectionError(request=request)) is ErrorKind.TRANSIENT
    assert classify(anthropic.APITimeoutError(request=request)) is ErrorKind.TRANSIENT
    assert classify(resilience.BadResponse("<html>")) is ErrorKind.TRANSIENT
    assert classify(resilience.MissingCredentials()) is ErrorKind.AUTH
    assert classify(_status_error(529)) is ErrorKind.TRANSIENT
    assert classify(_status_error(400)) is ErrorKind.CALLER


def test_error_event_inside_a_stream_is_classified_by_its_type():
    overloaded = _status_error(200, {"type": "error", "error": {"type": "overloaded_error"}})
    invalid = _status_error(200, {"type": "error", "error": {"type": "invalid_request_error"}})
    assert classify(overloaded) is ErrorKind.TRANSIENT
    assert resilience.error_status(overloaded) == 529
    assert classify(invalid) is ErrorKind.CALLER


def test_backoff_is_full_jitter_and_capped():
    rng = random.Random(7)
    for retry in range(10):
        ceiling = min(8.0, 1.0 * 2**retry)
        delays = [backoff_delay(retry, base=1.0, cap=8.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range
        assert min(delays) < ceiling * 0.2


def test_retry_after_headers():
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({"retry-after-ms": "junk", "retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after({"retry-after": when}) or 0) <= 31


def test_decide_retry():
    kwargs = {"max_attempts": 4, "remaining": 10.0, "backoff": 0.5, "server_delay": None}
    assert decide_retry(kind=ErrorKind.TRANSIENT, attempts_made=1, **kwargs).retry
    assert not decide_retry(kind=ErrorKind.TRANSIENT, attempts_made=4, **kwargs).retry
    assert not decide_retry(kind=ErrorKind.CALLER, attempts_made=1, **kwargs).retry
    assert not decide_retry(kind=ErrorKind.MODEL, attempts_made=1, **kwargs).retry
    longer = decide_retry(
        kind=ErrorKind.TRANSIENT, attempts_made=1, **{**kwargs, "server_delay": 2.0}
    )
    assert longer.retry and longer.delay == 2.0
    # a retry-after beyond the deadline is not waited for: we stop instead
    past = decide_retry(
        kind=ErrorKind.TRANSIENT, attempts_made=1, **{**kwargs, "server_delay": 60.0}
    )
    assert not past.retry and past.reason == "deadline"


def test_deadline_cuts_attempt_timeouts():
    now = [100.0]
    deadline = Deadline(5.0, clock=lambda: now[0])
    assert deadline.attempt_timeout(20.0) == 5.0
    now[0] = 103.0
    assert deadline.attempt_timeout(20.0) == 2.0
    assert deadline.attempt_timeout(1.0) == 1.0
    now[0] = 105.0
    assert deadline.attempt_timeout(20.0) is None


def test_breaker_state_machine():
    state = BreakerState()
    assert breaker_allows(state, now=0) == "closed"
    for _ in range(4):
        state = breaker_after_failure(state, now=0, threshold=5, cooldown=30, probe=False)
    assert breaker_allows(state, now=0) == "closed"
    state = breaker_after_failure(state, now=0, threshold=5, cooldown=30, probe=False)
    assert breaker_allows(state, now=29.9) == "open"
    assert breaker_allows(state, now=30.0) == "half-open"
    state = breaker_after_failure(state, now=31, threshold=5, cooldown=30, probe=True)
    assert breaker_allows(state, now=60) == "open"
    assert breaker_allows(state, now=61) == "half-open"


@pytest.fixture
def breaker(settings):
    from django.core.cache import cache

    settings.DJANGO_CLAUDE_BREAKER_THRESHOLD = 3
    settings.DJANGO_CLAUDE_BREAKER_COOLDOWN = 30.0
    cache.clear()
    yield CircuitBreaker("claude-test-model")
    cache.clear()


def test_breaker_opens_after_threshold_consecutive_failures(breaker):
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.allow()
    breaker.record_success()  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.allow()
    assert not CircuitBreaker("claude-test-model").allow()  # every caller sees it
    assert CircuitBreaker("another-model").allow()  # per model


def test_breaker_half_open_lets_exactly_one_probe(breaker):
    for _ in range(3):
        breaker.allow()
        breaker.record_failure()
    later = time.time() + 31
    first, second = CircuitBreaker("claude-test-model"), CircuitBreaker("claude-test-model")
    assert first.allow(now=later)
    assert not second.allow(now=later)
    first.record_success()
    assert CircuitBreaker("claude-test-model").allow()
    assert CircuitBreaker("claude-test-model").state() == BreakerState()


def test_breaker_probe_failure_reopens(breaker):
    for _ in range(3):
        breaker.allow()
        breaker.record_failure()
    later = time.time() + 31
    probe = CircuitBreaker("claude-test-model")
    assert probe.allow(now=later)
    probe.record_failure(now=later)
    assert not CircuitBreaker("claude-test-model").allow(now=later + 1)
    assert CircuitBreaker("claude-test-model").allow(now=later + 31)


@pytest.mark.django_db
def test_breaker_skips_an_unhealthy_model_in_calls(fake_anthropic, settings):
    import django_claude

    settings.DJANGO_CLAUDE_BREAKER_THRESHOLD = 2
    settings.DJANGO_CLAUDE_BREAKER_COOLDOWN = 0.3
    primary = "claude-sonnet-4-6"
    fake_anthropic.always(primary, 529)
    first = django_claude.call("hi", feature="f")
    assert first.outcome == "fallback"
    assert fake_anthropic.count(primary) == 2  # the breaker opened after 2, not 4
    second = django_claude.call("hi", feature="f")
    assert second.outcome == "fallback"
    assert fake_anthropic.count(primary) == 2  # skipped while open
    time.sleep(0.35)
    fake_anthropic.always(primary, 0)  # healthy again
    third = django_claude.call("hi", feature="f")
    assert third.outcome == "ok"
    assert fake_anthropic.count(primary) == 3  # one probe closed it
    assert django_claude.call("hi", feature="f").outcome == "ok"


@pytest.mark.django_db
def test_calls_survive_a_cache_outage(fake_anthropic, settings):
    from django.core.cache import caches

    import django_claude

    settings.CACHES = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with pytest.raises(ConnectionError):
        caches["default"].get("anything")
    breaker = CircuitBreaker("claude-x")
    assert breaker.allow()
    breaker.record_failure()
    fake_anthropic.script("claude-sonnet-4-6", [529, 0])
    result = django_claude.call("hi", feature="f", cache_ttl=30, idempotency_key="k1")
    assert result.outcome == "ok"
    assert result.attempts == 2
