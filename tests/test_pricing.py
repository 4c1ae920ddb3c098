"""Cost arithmetic and the price table."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal

import pytest

from django_claude.models import ModelPrice
from django_claude.recording import catalog, pricing
from django_claude.recording.pricing import Price, Usage, cost_of
from tests.prices import site_price

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


# Anthropic's list prices, as genai-prices carries them (USD per million tokens:
# input, 5-minute cache write, 1-hour cache write, cache read, output).
# https://platform.claude.com/docs/en/about-claude/pricing#model-pricing
# https://platform.claude.com/docs/en/build-with-claude/prompt-caching#pricing
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-5", ("5", "6.25", "10", "0.5", "25")),
        ("claude-sonnet-5", ("2", "2.5", "4", "0.2", "10")),
        ("claude-fable-5-2", ("8", "10", "16", "0.2", "40")),  # cache hits at 0.025x
        ("claude-opus-4-7", ("5", "6.25", "10", "0.50", "25")),
        ("claude-opus-4-1", ("15", "18.75", "30", "1.50", "75")),
        ("claude-sonnet-4-5-20250929", ("3", "3.75", "6", "0.30", "15")),
        ("claude-haiku-4-5", ("1", "1.25", "2", "0.10", "5")),
        ("claude-haiku-4-5-20251001", ("1", "1.25", "2", "0.10", "5")),
        ("claude-3-5-haiku-20241022", ("0.80", "1", "1.6", "0.08", "4")),
        ("claude-sonnet-4-6-20260101", ("3", "3.75", "6", "0.30", "15")),  # dated alias
    ],
)
def test_list_prices_come_from_genai_prices(model, expected):
    listed = catalog.list_price(model, datetime.date(2026, 11, 1))
    assert listed is not None
    rates = listed.rates_for(1000)
    got = (rates.input, rates.cache_write_5m, rates.cache_write_1h, rates.cache_read, rates.output)
    assert got == tuple(Decimal(v) for v in expected)


def test_a_model_no_one_lists_has_no_list_price():
    assert catalog.list_price("claude-mystery-9", datetime.date(2026, 11, 1)) is None
    assert catalog.list_price("gpt-4o", datetime.date(2026, 11, 1)) is None


@pytest.mark.django_db
def test_current_models_are_priced_out_of_the_box():
    """After migrate, with no ModelPrice row: priced from the list."""
    assert not ModelPrice.objects.filter(model__in=["claude-opus-5", "claude-sonnet-5"]).exists()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    on = datetime.date(2026, 11, 1)
    assert pricing.price_call("claude-opus-5", usage, on=on) == Decimal("30")
    assert pricing.price_call("claude-sonnet-5", usage, on=on) == Decimal("12")


@pytest.mark.django_db
def test_a_call_on_a_current_model_is_priced_end_to_end(fake_anthropic, settings):
    import django_claude

    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-sonnet-5"
    fake_anthropic.usage = {"input_tokens": 1200, "output_tokens": 300}
    result = django_claude.call("hi", feature="f")
    assert result.model == "claude-sonnet-5"
    assert result.cost_usd == Decimal("0.0054")  # 1200*2 + 300*10 per million


# Long context: "every token of a request whose input (cache reads and writes
# included) is over 200K is billed at the higher rate", not just the excess.
# https://platform.claude.com/docs/en/about-claude/pricing#long-context-pricing
@pytest.mark.django_db
def test_a_long_context_request_pays_the_higher_rate_on_every_token():
    on = datetime.date(2026, 1, 15)  # Sonnet 4.5's 1M beta: $6 / $22.50 over 200K
    short = Usage(input_tokens=150_000, cache_read_input_tokens=50_000, output_tokens=1_000)
    long = Usage(input_tokens=150_000, cache_read_input_tokens=50_001, output_tokens=1_000)
    # 150000*3 + 50000*0.30 + 1000*15 = 480000 per million
    assert pricing.price_call("claude-sonnet-4-5", short, on=on) == Decimal("0.48")
    # 150000*6 + 50001*0.60 + 1000*22.5 = 952500.6 per million
    assert pricing.price_call("claude-sonnet-4-5", long, on=on) == Decimal("0.9525006")


@pytest.mark.django_db
def test_a_price_change_applies_from_its_day():
    """Sonnet 4.6 dropped its long-context tier on 2026-03-13: the same call
    costs the tier rate before and the flat rate after."""
    usage = Usage(input_tokens=300_000, output_tokens=1_000)
    before = pricing.price_call("claude-sonnet-4-6", usage, on=datetime.date(2026, 3, 12))
    after = pricing.price_call("claude-sonnet-4-6", usage, on=datetime.date(2026, 3, 14))
    assert before == Decimal("1.8225")  # 300000*6 + 1000*22.5
    assert after == Decimal("0.915")  # 300000*3 + 1000*15


@pytest.mark.django_db
def test_a_sites_own_price_overrides_the_list_price():
    site_price("claude-opus-5", datetime.date(2026, 10, 1), "4", "20", "5", "8", "0.4")
    usage = Usage(input_tokens=1_000_000)
    assert pricing.price_call("claude-opus-5", usage, on=datetime.date(2026, 9, 30)) == 5
    assert pricing.price_call("claude-opus-5", usage, on=datetime.date(2026, 10, 1)) == 4


@pytest.mark.django_db
def test_a_new_price_never_rewrites_the_past():
    site_price("claude-sonnet-4-6", datetime.date(2026, 7, 1), "2", "10", "2.5", "4", "0.2")
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
    cost = pricing.price_call(
        "claude-haiku-4-5", Usage(output_tokens=1_000_000), on=datetime.date(2026, 1, 1)
    )
    assert cost == Decimal("5")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_to_list_prices_keeps_only_what_a_site_changed():
    """0009 drops the rows 0002 seeded, but a seeded row the site edited is
    its own price now and stays (and reversing puts the seed back)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("django_claude", "0008_route_removal")]
    after = [("django_claude", "0009_list_prices_from_genai_prices")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    executor.loader.build_graph()
    old = executor.loader.project_state(before).apps.get_model("django_claude", "ModelPrice")
    assert old.objects.filter(model="claude-opus-4-7").exists()  # seeded by 0002
    old.objects.filter(model="claude-haiku-4-5").update(input_per_mtok=Decimal("0.9"))
    old.objects.create(
        model="claude-internal-1",
        effective_from=datetime.date(2026, 1, 1),
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
        cache_write_5m_per_mtok=Decimal("1.25"),
        cache_write_1h_per_mtok=Decimal("2"),
        cache_read_per_mtok=Decimal("0.1"),
    )
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    left = set(ModelPrice.objects.values_list("model", flat=True))
    assert left == {"claude-haiku-4-5", "claude-internal-1"}
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    executor.loader.build_graph()
    old = executor.loader.project_state(before).apps.get_model("django_claude", "ModelPrice")
    assert old.objects.filter(model="claude-opus-4-7").exists()
    assert old.objects.get(model="claude-haiku-4-5").input_per_mtok == Decimal("0.9")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_claude_prices_says_what_prices_each_model_in_use(settings):
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    from django_claude.models import CallRecord

    site_price("claude-opus-5", datetime.date(2026, 10, 1), "4", "25", "6.25", "10", "0.5")
    CallRecord.objects.create(
        created_at=timezone.now(),
        feature="f",
        model_requested="claude-mystery-9",
        model="claude-mystery-9",
        outcome="ok",
    )
    out = StringIO()
    call_command("claude_prices", stdout=out)
    lines = {line.split("  ")[0]: line for line in out.getvalue().splitlines()}
    assert (
        "list (genai-prices claude-sonnet-4-6)  $3  $15  $3.75  $6  $0.3"
        in lines["claude-sonnet-4-6"]
    )
    assert "site price from 2026-10-01  $4  $25" in lines["claude-opus-5"]
    assert "none: calls recorded unpriced" in lines["claude-mystery-9"]

    out = StringIO()
    call_command("claude_prices", "--diff", stdout=out)
    assert (
        out.getvalue().strip() == "claude-opus-5 (site price from 2026-10-01): input $4 (list $5)"
    )
