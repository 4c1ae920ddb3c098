"""Cost arithmetic and the price table."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal

import pytest

from django_claude.models import ModelPrice
from django_claude.recording import pricing
from django_claude.recording.pricing import Price, Usage, cost_of

SONNET = Price(
    model="claude-sonnet-4-6",
    effective_from=datetime.date(2025, 1, 1),
    input=Decimal("3"),
    output=Decimal("15"),
    cache_write_5m=Decimal("3.75"),
    cache_write_1h=Decimal("6"),
    cache_read=Decimal("0.30"),
)


def test_every_kind_of_token_is_priced_once():
    usage = Usage(
        input_tokens=1000,
        output_tokens=500,
        cache_read_input_tokens=2000,
        cache_creation_input_tokens=400,  # 300 for 5 minutes + 100 for 1 hour
        cache_creation_1h_input_tokens=100,
    )
    # 1000*3 + 2000*0.30 + 300*3.75 + 100*6 + 500*15 = 12825 per million
    assert cost_of(usage, SONNET) == Decimal("0.012825")


def test_cost_is_exact_decimal():
    cost = cost_of(Usage(input_tokens=1, output_tokens=1), SONNET)
    assert isinstance(cost, Decimal)
    assert cost == Decimal("0.000018")


def test_usage_from_the_api_with_and_without_the_cache_breakdown():
    with_breakdown = Usage.from_api(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10},
        }
    )
    assert with_breakdown.cache_creation_input_tokens == 30
    assert with_breakdown.cache_creation_1h_input_tokens == 10
    without = Usage.from_api({"input_tokens": 10, "cache_creation_input_tokens": 30})
    assert without.cache_creation_1h_input_tokens == 0  # priced as 5-minute writes
    assert Usage.from_api(None) == Usage()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-7", ("5", "6.25", "10", "0.50", "25")),
        ("claude-opus-4-1", ("15", "18.75", "30", "1.50", "75")),
        ("claude-sonnet-4-5-20250929", ("3", "3.75", "6", "0.30", "15")),
        ("claude-haiku-4-5", ("1", "1.25", "2", "0.10", "5")),
        ("claude-haiku-4-5-20251001", ("1", "1.25", "2", "0.10", "5")),
        ("claude-3-5-haiku-20241022", ("0.80", "1", "1.6", "0.08", "4")),
        ("claude-sonnet-4-6-20260101", ("3", "3.75", "6", "0.30", "15")),  # dated alias
    ],
)
def test_seeded_list_prices(model, expected):
    price = pricing.price_for(model, on=datetime.date(2026, 6, 1))
    assert price is not None
    got = (price.input, price.cache_write_5m, price.cache_write_1h, price.cache_read, price.output)
    assert got == tuple(Decimal(v) for v in expected)


@pytest.mark.django_db
def test_a_new_price_never_rewrites_the_past():
    ModelPrice.objects.create(
        model="claude-sonnet-4-6",
        effective_from=datetime.date(2026, 7, 1),
        input_per_mtok=Decimal("2"),
        output_per_mtok=Decimal("10"),
        cache_write_5m_per_mtok=Decimal("2.5"),
        cache_write_1h_per_mtok=Decimal("4"),
        cache_read_per_mtok=Decimal("0.2"),
    )
    usage = Usage(input_tokens=1_000_000)
    june = pricing.price_call("claude-sonnet-4-6", usage, on=datetime.date(2026, 6, 30))
    july = pricing.price_call("claude-sonnet-4-6", usage, on=datetime.date(2026, 7, 1))
    assert (june, july) == (Decimal("3"), Decimal("2"))


@pytest.mark.django_db
def test_unpriced_model_is_null_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="django_claude.pricing"):
        first = pricing.price_call(
            "claude-mystery-9", Usage(input_tokens=5), on=datetime.date.today()
        )
        second = pricing.price_call(
            "claude-mystery-9", Usage(input_tokens=5), on=datetime.date.today()
        )
    assert first is None and second is None
    assert len([r for r in caplog.records if "claude-mystery-9" in r.getMessage()]) == 1


@pytest.mark.django_db
def test_unpriced_call_is_recorded_with_null_cost(fake_anthropic, settings):
    import django_claude
    from django_claude.models import CallRecord

    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-mystery-9"
    result = django_claude.call("hi", feature="f")
    assert result.outcome == "ok"
    assert result.cost_usd is None
    assert CallRecord.objects.get().cost_usd is None
    assert CallRecord.objects.unpriced().count() == 1


@pytest.mark.django_db
def test_cached_cost_of_cache_tokens_end_to_end(fake_anthropic):
    import django_claude

    fake_anthropic.usage = {
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_input_tokens": 1000,
        "ephemeral_5m_input_tokens": 200,
        "ephemeral_1h_input_tokens": 50,
    }
    result = django_claude.call("hi", feature="f")
    # 100*3 + 1000*0.30 + 200*3.75 + 50*6 + 10*15 = 1800 per million
    assert result.cost_usd == Decimal("0.0018")


def test_prices_survive_a_database_outage(monkeypatch):
    from django.db import OperationalError

    def down():
        raise OperationalError("database is down")

    monkeypatch.setattr(pricing, "load_price_book", down)
    pricing.invalidate()
    price = pricing.price_for("claude-haiku-4-5", on=datetime.date(2026, 1, 1))
    assert price is not None and price.output == Decimal("5")
