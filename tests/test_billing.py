"""Every billing modifier, priced by hand.

The rules, from Anthropic's pricing page and the API reference:

- Rates per model: https://platform.claude.com/docs/en/about-claude/pricing#model-pricing
- Prompt caching (5-minute writes 1.25x, 1-hour writes 2x, reads 0.1x input, or
  the model's own): https://platform.claude.com/docs/en/build-with-claude/prompt-caching#pricing
- Long context: every token of a request whose input (cache reads and writes
  included) is over the threshold at the higher rate:
  https://platform.claude.com/docs/en/about-claude/pricing#long-context-pricing
- Message Batches: 50% of standard, caching multipliers stack on it:
  https://platform.claude.com/docs/en/build-with-claude/batch-processing#pricing
- Fast mode (``speed: "fast"``) at its own rates, caching multipliers on top:
  https://platform.claude.com/docs/en/about-claude/pricing#fast-mode-pricing
- US-only inference (``usage.inference_geo == "us"``): 1.1x on every token
  category: https://platform.claude.com/docs/en/build-with-claude/data-residency
- Web search: $10 per 1,000 searches (``usage.server_tool_use.web_search_requests``;
  failed searches are not counted), web fetch: tokens only:
  https://platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool#usage-and-pricing
- Thinking tokens are output tokens (``output_tokens`` includes them).

Every expected cost below is worked out in the comment beside it, in USD per
million tokens times tokens, then divided by a million.
"""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal

import pytest

import django_claude
from django_claude.models import CallRecord
from django_claude.recording import pricing
from django_claude.recording.pricing import Usage
from tests.prices import site_price

NOV = datetime.date(2026, 11, 1)
JAN = datetime.date(2026, 1, 15)  # Sonnet 4.5's long-context tier still billed


def cost(model: str, on: datetime.date = NOV, **usage: object) -> Decimal | None:
    return pricing.price_call(model, Usage(**usage), on=on)  # type: ignore[arg-type]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "on", "usage", "expected"),
    [
        # web search: 1000*3 + 500*15 = 10500 -> 0.0105, + 3 searches * $10/1000 = 0.03
        (
            "claude-sonnet-4-6",
            NOV,
            {"input_tokens": 1000, "output_tokens": 500, "web_search_requests": 3},
            "0.0405",
        ),
        # web fetch costs its tokens only
        (
            "claude-sonnet-4-6",
            NOV,
            {"input_tokens": 1000, "output_tokens": 500, "web_fetch_requests": 4},
            "0.0105",
        ),
        # US-only inference: (1000*5 + 2000*0.5 + 400*6.25 + 100*25) * 1.1 = 11000 * 1.1
        (
            "claude-opus-5",
            NOV,
            {
                "input_tokens": 1000,
                "output_tokens": 100,
                "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 400,
                "inference_geo": "us",
            },
            "0.0121",
        ),
        # geo and a web search: the search fee is not a token, not multiplied
        (
            "claude-opus-5",
            NOV,
            {
                "input_tokens": 1000,
                "output_tokens": 100,
                "inference_geo": "us",
                "web_search_requests": 2,
            },
            "0.02825",  # (5000 + 2500) * 1.1 = 8250 -> 0.00825, + 0.02
        ),
        # global inference is standard
        (
            "claude-opus-5",
            NOV,
            {"input_tokens": 1000, "output_tokens": 100, "inference_geo": "global"},
            "0.0075",
        ),
        # fast mode + cache: opus-5 fast is $10 / $50, reads $1, 1-hour writes $20:
        # 1000*10 + 100*50 + 1000*1 + 1000*20 = 36000
        (
            "claude-opus-5",
            NOV,
            {
                "input_tokens": 1000,
                "output_tokens": 100,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 1000,
                "cache_creation_1h_input_tokens": 1000,
                "speed": "fast",
            },
            "0.036",
        ),
        # batch + cache: half of everything, 5-minute writes too:
        # 1000*2.5 + 1000*12.5 + 1000*3.125 = 18125
        (
            "claude-opus-5",
            NOV,
            {
                "input_tokens": 1000,
                "output_tokens": 1000,
                "cache_creation_input_tokens": 1000,
                "service_tier": "batch",
            },
            "0.018125",
        ),
        # geo + cache + long context: 210K input > 200K, every token at the tier
        # rate ($6 / $22.50, reads $0.60), then 1.1x:
        # (150000*6 + 60000*0.6 + 1000*22.5) * 1.1 = 958500 * 1.1 = 1054350
        (
            "claude-sonnet-4-5",
            JAN,
            {
                "input_tokens": 150_000,
                "cache_read_input_tokens": 60_000,
                "output_tokens": 1000,
                "inference_geo": "us",
            },
            "1.05435",
        ),
        # batch + long context: the tier halves too ($3 / $11.25, reads $0.30):
        # 150000*3 + 60000*0.3 + 1000*11.25 = 479250
        (
            "claude-sonnet-4-5",
            JAN,
            {
                "input_tokens": 150_000,
                "cache_read_input_tokens": 60_000,
                "output_tokens": 1000,
                "service_tier": "batch",
            },
            "0.47925",
        ),
        # thinking tokens are in output_tokens: nothing more to add
        ("claude-sonnet-5", NOV, {"input_tokens": 10, "output_tokens": 2000}, "0.02002"),
    ],
    ids=[
        "web-search",
        "web-fetch",
        "geo-cache",
        "geo-search",
        "global",
        "fast-cache",
        "batch-cache",
        "geo-cache-long-context",
        "batch-long-context",
        "thinking",
    ],
)
def test_every_modifier_and_their_combinations(model, on, usage, expected):
    assert cost(model, on, **usage) == Decimal(expected)


@pytest.mark.django_db
def test_a_site_price_takes_the_batch_discount_and_the_geo_premium():
    site_price("claude-opus-5", datetime.date(2026, 10, 1), "4", "20", "5", "8", "0.4")
    # (1000*4 + 1000*20) * 0.5 = 12000
    batch = cost("claude-opus-5", input_tokens=1000, output_tokens=1000, service_tier="batch")
    assert batch == Decimal("0.012")
    # (1000*4 + 1000*20) * 1.1 = 26400, + one search $0.01
    geo = cost(
        "claude-opus-5",
        input_tokens=1000,
        output_tokens=1000,
        inference_geo="us",
        web_search_requests=1,
    )
    assert geo == Decimal("0.0364")


@pytest.mark.django_db
def test_the_breakdown_adds_up_to_the_cost():
    usage = Usage(
        input_tokens=1000,
        output_tokens=100,
        cache_read_input_tokens=2000,
        cache_creation_input_tokens=400,
        cache_creation_1h_input_tokens=100,
        web_search_requests=2,
        inference_geo="us",
    )
    priced = pricing.price_detail("claude-opus-5", usage, on=NOV)
    assert priced is not None
    parts = {k: Decimal(v) for k, v in priced.breakdown.items()}
    assert set(parts) == {
        "input",
        "output",
        "cache_read",
        "cache_write_5m",
        "cache_write_1h",
        "tools",
    }
    assert sum(parts.values()) == priced.cost
    assert parts["tools"] == Decimal("0.02")
    assert parts["cache_write_1h"] == Decimal("100") * 10 * Decimal("1.1") / 1_000_000


MODIFIED_USAGE = {
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_input_tokens": 500,
    "ephemeral_5m_input_tokens": 100,
    "ephemeral_1h_input_tokens": 50,
    "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1},
    "inference_geo": "us",
    "service_tier": "standard",
}
# (1200*5 + 500*0.5 + 100*6.25 + 50*10 + 300*25) * 1.1 = 14875 * 1.1 = 16362.5, + 2 searches
MODIFIED_COST = Decimal("0.0363625")


@pytest.mark.django_db
def test_a_call_records_what_its_bill_depends_on(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-opus-5"
    fake_anthropic.usage = MODIFIED_USAGE
    result = django_claude.call("search the web", feature="billing")
    assert result.cost_usd == MODIFIED_COST
    record = CallRecord.objects.get(id=result.request_id)
    assert record.cost_usd == MODIFIED_COST
    assert (record.web_search_requests, record.web_fetch_requests) == (2, 1)
    assert (record.inference_geo, record.service_tier, record.speed) == (
        "us",
        "standard",
        "standard",
    )
    assert sum(Decimal(v) for v in record.cost_breakdown.values()) == MODIFIED_COST
    assert Decimal(record.cost_breakdown["tools"]) == Decimal("0.02")


# An astream's ending runs in asgiref's thread, outside a test's transaction.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", ["stream", "astream"])
def test_a_streamed_answer_costs_what_the_same_answer_unstreamed_does(
    fake_anthropic, settings, entry
):
    import asyncio

    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-opus-5"
    fake_anthropic.usage = MODIFIED_USAGE
    called = django_claude.call("same question", feature="billing")
    if entry == "stream":
        with django_claude.stream("same question", feature="billing") as s:
            for _ in s.text_stream:
                pass
        streamed = s.result
    else:

        async def run():
            async with django_claude.astream("same question", feature="billing") as s:
                async for _ in s.text_stream:
                    pass
            return s.result

        streamed = asyncio.run(run())
    assert streamed is not None and streamed.outcome == "ok"
    assert streamed.cost_usd == called.cost_usd == MODIFIED_COST


@pytest.mark.django_db
def test_reprice_prices_the_modifiers_the_record_kept(settings):
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    settings.TIME_ZONE = "UTC"
    CallRecord.objects.create(
        created_at=timezone.now(),
        feature="billing",
        model_requested="claude-new-1",
        model="claude-new-1",
        outcome="ok",
        input_tokens=1_000_000,
        web_search_requests=2,
        inference_geo="us",
    )
    site_price("claude-new-1", datetime.date(2026, 1, 1), "2", "8", "2.5", "4", "0.2")
    since = timezone.now().date().isoformat()
    call_command("claude_reprice", "--since", since, stdout=StringIO())
    record = CallRecord.objects.get(model="claude-new-1")
    assert record.cost_usd == Decimal("2.22")  # 1M * $2 * 1.1, + 2 searches at $10/1000
    assert record.cost_breakdown["tools"] == "0.02"
    assert sum(Decimal(v) for v in record.cost_breakdown.values()) == record.cost_usd


@pytest.mark.django_db
def test_fast_mode_and_us_inference_asked_for_in_the_call_are_billed(fake_anthropic, settings):
    """The request's ``speed`` and ``inference_geo`` come back in the usage
    (the fake answers as Anthropic does) and price the call."""
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-opus-5"
    fake_anthropic.usage = {"input_tokens": 1000, "output_tokens": 100}
    fast = django_claude.call("quick", feature="billing", speed="fast", inference_geo="us")
    # (1000*10 + 100*50) * 1.1 = 16500
    assert fast.cost_usd == Decimal("0.0165")
    record = CallRecord.objects.get(id=fast.request_id)
    assert (record.speed, record.inference_geo, record.service_tier) == ("fast", "us", "standard")
    plain = django_claude.call("quick", feature="billing")
    assert plain.cost_usd == Decimal("0.0075")  # 1000*5 + 100*25
    assert CallRecord.objects.get(id=plain.request_id).inference_geo == "global"


# Streams with server tools: cache writes made after message_start come in
# message_delta as a larger cache_creation_input_tokens total, without the
# 5-minute/1-hour split (the SDK keeps message_start's). The gap is priced at
# the TTL the request's cache_control asked for, never left out.
LATE_WRITES = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "ephemeral_5m_input_tokens": 0,
    "ephemeral_1h_input_tokens": 3000,  # the whole answer's writes
    "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0},
}
EARLY = {
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000},
    "cache_creation_input_tokens": 1000,
}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_late_cache_writes_in_a_stream_are_priced_at_the_requested_ttl(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-opus-5"
    fake_anthropic.usage = LATE_WRITES
    fake_anthropic.stream_start_usage = EARLY
    system = [
        {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    called = django_claude.call("look it up", feature="billing", system=system)
    with django_claude.stream("look it up", feature="billing", system=system) as s:
        for _ in s.text_stream:
            pass
    # 1000*5 + 3000*10 (1-hour writes) + 200*25 = 40000 -> 0.04, + one search 0.01
    assert called.cost_usd == Decimal("0.05")
    assert s.result is not None and s.result.cost_usd == called.cost_usd
    record = CallRecord.objects.get(id=s.result.request_id)
    assert record.cache_creation_1h_input_tokens == 3000


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_late_cache_writes_without_a_ttl_are_5_minute_writes(fake_anthropic, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-opus-5"
    fake_anthropic.usage = {
        **LATE_WRITES,
        "ephemeral_5m_input_tokens": 2000,
        "ephemeral_1h_input_tokens": 1000,
    }
    fake_anthropic.stream_start_usage = EARLY
    system = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]
    with django_claude.stream("look it up", feature="billing", system=system) as s:
        for _ in s.text_stream:
            pass
    # 1000*5 + 2000*6.25 + 1000*10 + 200*25 = 32500 -> 0.0325, + one search 0.01
    assert s.result is not None and s.result.cost_usd == Decimal("0.0425")


@pytest.mark.parametrize(
    ("reported", "counted"),
    [
        (-5, 0),
        ("12", 12),
        ("1e3", 0),
        ("abc", 0),
        (None, 0),
        (True, 0),
        (10**30, 2_147_483_647),
        (float("nan"), 0),
        (7.9, 7),
    ],
)
def test_a_hostile_usage_count_is_a_count(reported, counted):
    """Upstream (or a proxy) reports what it likes: never a negative cost, an
    exception, or a number no column holds."""
    usage = Usage.from_api(
        {
            "input_tokens": reported,
            "output_tokens": reported,
            "server_tool_use": {"web_search_requests": reported},
            "cache_creation": {"ephemeral_1h_input_tokens": reported},
        }
    )
    assert usage.input_tokens == usage.output_tokens == counted
    assert usage.web_search_requests == usage.cache_creation_1h_input_tokens == counted
    cost = pricing.price_call("claude-sonnet-4-6", usage, on=NOV)
    assert cost is not None and cost >= 0


@pytest.mark.django_db
def test_a_site_price_past_a_long_context_tier_says_so_once(caplog):
    site_price("claude-sonnet-4-5", datetime.date(2026, 1, 1), "3", "15", "3.75", "6", "0.3")
    long = Usage(input_tokens=250_000, output_tokens=10)
    with caplog.at_level(logging.WARNING, logger="django_claude.recording.pricing"):
        first = pricing.price_call("claude-sonnet-4-5", long, on=JAN)
        pricing.price_call("claude-sonnet-4-5", long, on=JAN)
        pricing.price_call("claude-sonnet-4-5", Usage(input_tokens=10), on=JAN)
    assert first == Decimal("0.75015")  # the site's one rate: 250000*3 + 10*15
    warned = [r for r in caplog.records if "long-context" in r.getMessage()]
    assert len(warned) == 1
