"""Costs and prices as the admin shows them: rounded to what matters in a
list, every digit on a detail page, each price with its unit."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from django_claude.admin.base import usd, usd_exact
from django_claude.models import BudgetAlert, DailyCost
from tests.prices import site_price

PER_MTOK = "USD / million tokens"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.0003300000"), "$0.00033"),
        (Decimal("0.0003312345"), "$0.000331"),
        (Decimal("0.0370983"), "$0.037098"),
        (Decimal("0.0000005"), "$0.000001"),
        (Decimal("1E-7"), "<$0.000001"),
        (Decimal("0.0009999999"), "$0.001"),
        (Decimal("12.3456789"), "$12.3457"),
        (Decimal("1.5"), "$1.50"),
        (Decimal("1234567.891"), "$1,234,567.89"),
        (Decimal("0E-10"), "$0.00"),
        (Decimal("-0.25"), "-$0.25"),
        (0.1, "$0.10"),
        (None, "—"),
    ],
)
def test_a_cost_in_a_list(value, shown):
    assert usd(value) == shown
    assert "E" not in usd(value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.0003312345"), "$0.0003312345"),
        (Decimal("0.0003300000"), "$0.00033"),
        (Decimal("1E-10"), "$0.0000000001"),
        (Decimal("3.0000"), "$3.00"),
        (Decimal("1234567.891"), "$1,234,567.891"),
        (None, "—"),
    ],
)
def test_a_cost_on_a_detail_page(value, shown):
    assert usd_exact(value) == shown


def test_daily_cost_and_budget_lists_round_costs(admin_client, db):
    day = datetime.date(2026, 11, 20)
    DailyCost.objects.create(
        day=day, feature="support", model="m", calls=3, cost_usd=Decimal("0.0003312345")
    )
    BudgetAlert.objects.create(
        day=day, feature="support", threshold=80, cost_usd=Decimal("8.0000001"), budget_usd=10
    )
    daily = admin_client.get(reverse("admin:django_claude_dailycost_changelist")).content.decode()
    assert '<td class="field-cost">$0.000331</td>' in daily
    assert "0.0003312345" not in daily
    alerts = admin_client.get(reverse("admin:django_claude_budgetalert_changelist")).content
    assert b'<td class="field-cost">$8.00</td>' in alerts
    assert b'<td class="field-budget">$10.00</td>' in alerts


def test_every_price_says_its_unit(admin_client, db):
    price = site_price(
        "claude-sonnet-4-6", datetime.date(2026, 1, 1), "3", "15", "3.75", "6", "0.30"
    )
    listing = admin_client.get(reverse("admin:django_claude_modelprice_changelist")).content
    page = listing.decode()
    for name in ("input", "output", "5-minute cache write", "1-hour cache write", "cache read"):
        assert f"{name.capitalize()} ({PER_MTOK})" in page or f"{name} ({PER_MTOK})" in page
    assert '<td class="field-input_price">$3.00</td>' in page

    detail = admin_client.get(reverse("admin:django_claude_modelprice_change", args=[price.pk]))
    text = detail.content.decode()
    assert text.count(PER_MTOK) == 5
    assert "$3.00" in text and "$15.00" in text

    add = admin_client.get(reverse("admin:django_claude_modelprice_add")).content.decode()
    assert '<label class="required" for="id_input_per_mtok">Input (USD / million tokens):' in add
    assert add.count(PER_MTOK) >= 5


def test_a_precise_price_keeps_every_digit_on_its_page(admin_client, db):
    price = site_price(
        "claude-precise", datetime.date(2026, 1, 1), "123.4567", "1", "1", "1", "0.0001"
    )
    listing = admin_client.get(
        reverse("admin:django_claude_modelprice_changelist"), {"q": "claude-precise"}
    ).content.decode()
    assert "$123.457" in listing and "$123.4567" not in listing
    detail = admin_client.get(reverse("admin:django_claude_modelprice_change", args=[price.pk]))
    assert b"$123.4567" in detail.content and b"$0.0001" in detail.content


def test_daily_cost_list_shares_cells_to_fit_a_laptop(admin_client, db):
    DailyCost.objects.create(
        day=datetime.date(2026, 11, 20),
        feature="support",
        model="claude-haiku-4-5-20251001",
        calls=1200,
        cost_usd=Decimal("12.3456789"),
        unpriced_calls=2,
        fallback_calls=36,
        degraded_calls=12,
        error_calls=3,
        input_tokens=2_400_000,
        output_tokens=310_000,
    )
    page = admin_client.get(reverse("admin:django_claude_dailycost_changelist")).content.decode()
    assert '<td class="field-failures">36 / 12 / 3 / 0</td>' in page
    assert '<td class="field-tokens">2,400,000 / 310,000</td>' in page
    assert '$12.3457<div class="help">without 2 unpriced calls</div>' in page
