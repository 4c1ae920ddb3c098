"""``DJANGO_CLAUDE_QUOTA_COUNT_TOKENS``: a call's input is reserved as
Anthropic's token-counting endpoint counts it, and as the byte bound when
the count fails, is slow or makes no sense.

Every call goes through the real SDK to the fake API, whose
``/v1/messages/count_tokens`` records what it was asked (``count_requests``)
and answers ``token_count``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

import django_claude
from django_claude.quotas.counting import counted_tokens
from django_claude.quotas.estimate import worst_case
from django_claude.testing import Fault

MODEL = "claude-opus-5"  # list price: $5 in, $25 out per million tokens
FALLBACK = "claude-haiku-4-5-20251001"
USAGE = {"input_tokens": 100, "output_tokens": 50}  # $0.00175 a call
PROMPT = "word " * 800  # 4,000 bytes: a byte bound of about 4,000 input tokens
MAX_TOKENS = 100
COUNT = 200  # what the endpoint answers
TOKEN_LIMIT = 2_000  # between the counted worst case and the byte bound's
USD_LIMIT = "0.01"


@pytest.fixture
def counting_site(claude, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = MODEL
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    settings.DJANGO_CLAUDE_QUOTA_COUNT_TOKENS = True
    claude.usage = USAGE
    claude.token_count = COUNT
    return claude


def _worst(**counted: int) -> Any:
    request = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}
    return worst_case(request, [MODEL], on=timezone.now().date(), counted=counted or None)


def test_the_limits_here_sit_between_the_counted_worst_case_and_the_byte_bound():
    counted, bound = _worst(**{MODEL: counted_tokens(_Answer(COUNT))}), _worst()
    assert counted.tokens < TOKEN_LIMIT < bound.tokens
    assert counted.usd < Decimal(USD_LIMIT) < bound.usd


class _Answer:
    def __init__(self, tokens: Any) -> None:
        self.input_tokens = tokens


@pytest.mark.parametrize(
    "quota",
    [
        {"per": "user", "window": "day", "tokens": TOKEN_LIMIT},
        {"per": "user", "window": "day", "usd": USD_LIMIT},
    ],
)
def test_a_counted_call_fits_a_quota_its_byte_bound_would_not(counting_site, settings, quota):
    settings.DJANGO_CLAUDE_QUOTAS = {"q": quota}
    result = django_claude.call(PROMPT, feature="chat", user="u1", max_tokens=MAX_TOKENS)
    assert result.outcome == "ok"
    (asked,) = counting_site.count_requests
    assert asked["model"] == MODEL
    assert asked["messages"] == [{"role": "user", "content": PROMPT}]
    assert "max_tokens" not in asked
    # Settled to what it used, once answered.
    (status,) = django_claude.quota_status(user="u1", feature="chat")
    used = 150 if "tokens" in quota else result.cost_usd
    assert status.used == used

    settings.DJANGO_CLAUDE_QUOTA_COUNT_TOKENS = False  # the byte bound: more than the limit
    before = counting_site.count(MODEL)
    limited = django_claude.call(PROMPT, feature="chat", user="u2", max_tokens=MAX_TOKENS)
    assert (limited.outcome, limited.quota) == ("limited", "q")
    assert counting_site.count(MODEL) == before  # never sent
    assert len(counting_site.count_requests) == 1  # and not counted


def test_the_count_is_asked_about_all_the_call_sends_and_on_each_model(counting_site, settings):
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = FALLBACK
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"window": "day", "tokens": TOKEN_LIMIT}}
    tools = [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    result = django_claude.call(
        PROMPT,
        feature="chat",
        system="Be brief.",
        tools=tools,
        tool_choice={"type": "auto"},
        max_tokens=MAX_TOKENS,
        metadata={"user_id": "u1"},
        stop_sequences=["END"],
    )
    assert result.outcome == "ok"
    asked = counting_site.count_requests
    assert sorted(body["model"] for body in asked) == sorted([MODEL, FALLBACK])
    for body in asked:
        assert body["system"] == "Be brief."
        assert body["tools"] == tools
        assert body["tool_choice"] == {"type": "auto"}
        assert not {"max_tokens", "metadata", "stop_sequences"} & set(body)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"count_fault": Fault(status=500)}, id="500"),
        pytest.param({"count_fault": Fault(status=429)}, id="429"),
        pytest.param({"count_fault": Fault(delay=5)}, id="slow"),
        pytest.param({"token_count": "lots"}, id="not a number"),
        pytest.param({"token_count": -5}, id="negative"),
        pytest.param({"token_count": 0}, id="nothing"),
        pytest.param({"token_count": 10**12}, id="past any context"),
    ],
)
def test_a_count_that_fails_reserves_the_byte_bound_and_never_fails_the_call(
    counting_site, settings, failure
):
    settings.DJANGO_CLAUDE_DEADLINE = 4.0  # a slow count gets a quarter of it at most
    for name, value in failure.items():
        setattr(counting_site, name, value)
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"per": "user", "window": "day", "tokens": TOKEN_LIMIT}}
    limited = django_claude.call(PROMPT, feature="chat", user="u1", max_tokens=MAX_TOKENS)
    assert (limited.outcome, limited.quota) == ("limited", "q")  # the byte bound did not fit
    assert counting_site.count(MODEL) == 0
    assert len(counting_site.count_requests) == 1  # it was asked

    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"per": "user", "window": "day", "tokens": 10**6}}
    served = django_claude.call(PROMPT, feature="chat", user="u1", max_tokens=MAX_TOKENS)
    assert served.outcome == "ok"
    assert counting_site.count(MODEL) == 1
    (status,) = django_claude.quota_status(user="u1", feature="chat")
    assert status.used == 150  # settled: nothing of the byte bound is kept


@pytest.mark.parametrize(
    ("quotas", "enabled"),
    [
        ({"q": {"window": "hour", "calls": 5}}, True),  # a calls quota needs no count
        ({"q": {"window": "day", "tokens": 10**6, "feature": "search"}}, True),  # not this one
        ({}, True),
        ({"q": {"window": "day", "tokens": 10**6}}, False),  # the site did not ask
    ],
)
def test_nothing_is_counted_unless_a_token_or_usd_quota_applies(
    counting_site, settings, quotas, enabled
):
    settings.DJANGO_CLAUDE_QUOTAS = quotas
    settings.DJANGO_CLAUDE_QUOTA_COUNT_TOKENS = enabled
    assert django_claude.call("hi", feature="chat").outcome == "ok"
    with django_claude.stream("hi", feature="chat") as s:
        "".join(s.text_stream)
    assert s.result is not None and s.result.outcome == "ok"
    assert counting_site.count_requests == []


def test_a_stream_is_counted_too(counting_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"window": "day", "tokens": TOKEN_LIMIT}}
    with django_claude.stream(PROMPT, feature="chat", max_tokens=MAX_TOKENS) as s:
        "".join(s.text_stream)
    assert s.result is not None and s.result.outcome == "ok"
    assert [body["model"] for body in counting_site.count_requests] == [MODEL]


# An async call's ending runs in asgiref's thread, outside a test's transaction.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_async_calls_and_streams_count_with_the_async_client(counting_site, settings):
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = FALLBACK
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"per": "user", "window": "day", "usd": USD_LIMIT}}

    async def both() -> tuple[str, str]:
        called = await django_claude.acall(PROMPT, feature="chat", user="u1", max_tokens=MAX_TOKENS)
        async with django_claude.astream(
            PROMPT, feature="chat", user="u2", max_tokens=MAX_TOKENS
        ) as s:
            async for _ in s.text_stream:
                pass
        assert s.result is not None
        return called.outcome, s.result.outcome

    assert asyncio.run(both()) == ("ok", "ok")
    models = sorted(body["model"] for body in counting_site.count_requests)
    assert models == sorted([MODEL, FALLBACK, MODEL, FALLBACK])  # each model, each call


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_async_call_whose_count_fails_reserves_the_byte_bound(counting_site, settings):
    counting_site.count_fault = Fault(status=500)
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"per": "user", "window": "day", "usd": USD_LIMIT}}
    limited = asyncio.run(
        django_claude.acall(PROMPT, feature="chat", user="u1", max_tokens=MAX_TOKENS)
    )
    assert (limited.outcome, limited.quota) == ("limited", "q")
    assert counting_site.count(MODEL) == 0
    counting_site.count_fault = None
    served = asyncio.run(
        django_claude.acall(PROMPT, feature="chat", user="u1", max_tokens=MAX_TOKENS)
    )
    assert served.outcome == "ok"


@pytest.mark.parametrize(("value", "flagged"), [("yes", True), (1, True), (True, False)])
def test_check_names_a_count_tokens_setting_that_is_not_a_bool(settings, value, flagged):
    from django_claude.checks import E016, check_quotas

    settings.DJANGO_CLAUDE_QUOTA_COUNT_TOKENS = value
    assert (E016 in [message.id for message in check_quotas()]) is flagged
