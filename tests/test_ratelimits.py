"""Anthropic's rate-limit headers, shared by every worker: a spent model is
waited for (a reset that is close) or skipped for the fallback, instead of
being sent into 429s."""

from __future__ import annotations

import datetime
import time

import pytest

import django_claude
from django_claude.client import ratelimits
from django_claude.client.breaker import local_view
from django_claude.models import CallRecord
from django_claude.testing import Fault, rate_limit_headers

PRIMARY = "claude-sonnet-4-6"
FALLBACK = "claude-haiku-4-5-20251001"


@pytest.fixture
def site(claude, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = PRIMARY
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = FALLBACK
    return claude


def test_a_spent_model_is_skipped_for_the_fallback_until_its_reset(site):
    site.script(PRIMARY, [Fault(headers=rate_limit_headers(requests_remaining=0, reset_in=30))])
    assert django_claude.call("one", feature="f").outcome == "ok"  # answered, and now spent
    result = django_claude.call("two", feature="f")
    assert result.outcome == "fallback"
    assert site.models_called() == [PRIMARY, FALLBACK]  # the primary was not sent the second
    record = CallRecord.objects.get(id=result.request_id)
    assert record.attempt_log[0] == {"model": PRIMARY, "error": "rate_limited"}


@pytest.mark.parametrize("kind", ["tokens", "input-tokens", "output-tokens"])
def test_any_spent_token_limit_counts(site, kind):
    headers = rate_limit_headers(reset_in=30, **{f"{kind.replace('-', '_')}_remaining": 0})
    site.script(PRIMARY, [Fault(headers=headers)])
    django_claude.call("one", feature="f")
    assert django_claude.call("two", feature="f").outcome == "fallback"


def test_a_reset_that_is_close_is_waited_for(site):
    site.script(PRIMARY, [Fault(headers=rate_limit_headers(requests_remaining=0, reset_in=0.4))])
    django_claude.call("one", feature="f")
    started = time.monotonic()
    result = django_claude.call("two", feature="f")
    assert result.outcome == "ok" and site.models_called() == [PRIMARY, PRIMARY]
    assert time.monotonic() - started >= 0.2  # it waited for the reset


def test_without_a_fallback_the_wait_is_bounded_by_the_deadline(site, settings):
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    settings.DJANGO_CLAUDE_DEADLINE = 1.0
    settings.DJANGO_CLAUDE_TIMEOUT = 1.0
    site.script(PRIMARY, [Fault(headers=rate_limit_headers(requests_remaining=0, reset_in=60))])
    django_claude.call("one", feature="f")
    result = django_claude.call("two", feature="f")
    assert result.outcome == "degraded" and site.count(PRIMARY) == 1
    assert CallRecord.objects.get(id=result.request_id).error_type == "RateLimited"


def test_a_429_with_retry_after_spends_the_model_for_everyone(site, settings):
    settings.DJANGO_CLAUDE_DEADLINE = 5.0
    site.script(PRIMARY, [Fault(status=429, retry_after="30")])
    assert django_claude.call("one", feature="f").outcome == "fallback"
    assert django_claude.call("two", feature="f").outcome == "fallback"
    assert site.count(PRIMARY) == 1  # not hammered


def test_a_process_that_never_saw_the_429_skips_the_model_too(site):
    """Another worker's view: only the shared cache says the model is spent."""
    site.script(PRIMARY, [Fault(headers=rate_limit_headers(requests_remaining=0, reset_in=30))])
    django_claude.call("one", feature="f")
    local_view.forget()  # as if this were another process
    assert django_claude.call("two", feature="f").outcome == "fallback"
    assert site.count(PRIMARY) == 1


def test_healthy_headers_change_nothing(site):
    site.always(PRIMARY, Fault(headers=rate_limit_headers(requests_remaining=40, reset_in=30)))
    outcomes = [django_claude.call("q", feature="f").outcome for _ in range(3)]
    assert outcomes == ["ok"] * 3


def test_the_last_limits_seen_are_kept_per_model(site):
    site.script(PRIMARY, [Fault(headers=rate_limit_headers(requests_remaining=7, reset_in=30))])
    ratelimits._last_written.clear()
    django_claude.call("q", feature="f")
    seen = ratelimits.last_seen([PRIMARY, FALLBACK])
    assert set(seen) == {PRIMARY}
    assert seen[PRIMARY]["limits"]["requests"]["remaining"] == 7
    assert seen[PRIMARY]["limits"]["requests"]["limit"] == 50


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-ratelimit-requests-remaining": "lots"},
        {"anthropic-ratelimit-requests-remaining": "0"},  # no reset: nothing to wait for
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "soon",
        },
        {"anthropic-ratelimit-tokens-remaining": "", "anthropic-ratelimit-tokens-limit": "x"},
    ],
)
def test_garbled_headers_are_ignored(site, headers):
    site.script(PRIMARY, [Fault(headers=headers)])
    assert django_claude.call("one", feature="f").outcome == "ok"
    assert django_claude.call("two", feature="f").outcome == "ok"


def test_a_far_reset_is_not_believed_past_two_minutes():
    far = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)).isoformat()
    now = time.time()
    limits = ratelimits.read_limits(
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-reset": far,
        }
    )
    until = ratelimits.exhausted_until(limits, 200, None, now)
    assert until is not None and until <= now + ratelimits.MAX_BLOCK


# An async call's ending runs in asgiref's thread, outside a test's transaction.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_async_calls_and_streams_read_the_limits_too(site):
    import asyncio

    site.script(PRIMARY, [Fault(headers=rate_limit_headers(requests_remaining=0, reset_in=30))])

    async def go() -> tuple[str, str]:
        async with django_claude.astream("one", feature="f") as stream:
            async for _ in stream.text_stream:
                pass
        assert stream.result is not None
        second = await django_claude.acall("two", feature="f")
        return stream.result.outcome, second.outcome

    assert asyncio.run(go()) == ("ok", "fallback")
    assert site.models_called() == [PRIMARY, FALLBACK]
