"""What calls cost: the site's price overrides, the daily rollups, the budget
alerts, and the reconciliation with Anthropic's bill."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_claude.admin.base import ClaudeAdmin, ReadOnlyAdmin, usd, usd_exact
from django_claude.models import BudgetAlert, DailyCost, ModelPrice, Reconciliation

PER_MTOK = _("USD / million tokens")
PRICE_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    "cache_write_5m_per_mtok",
    "cache_write_1h_per_mtok",
    "cache_read_per_mtok",
)


def price_label(name: str) -> Any:
    """A price column's name with its unit: "input (USD / million tokens)"."""
    field = ModelPrice._meta.get_field(name)
    label = field.verbose_name if isinstance(field, models.Field) else name
    return format_lazy("{} ({})", label, PER_MTOK)


def price_display(name: str, *, exact: bool) -> Callable[[Any, ModelPrice], str]:
    """A ``ModelPriceAdmin`` column showing the price ``name`` with its unit,
    rounded for a list or (``exact``) with every stored digit."""
    show = usd_exact if exact else usd

    @admin.display(description=price_label(name), ordering=name)
    def price(admin: Any, obj: ModelPrice) -> str:
        return show(getattr(obj, name))

    return price


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        fields = ["model", "effective_from", *PRICE_FIELDS]
        labels = {name: capfirst(price_label(name)) for name in PRICE_FIELDS}
        help_texts = dict.fromkeys(PRICE_FIELDS, PER_MTOK)


@admin.register(ModelPrice)
class ModelPriceAdmin(ClaudeAdmin):
    """Prices are added, never edited: a new price is a new row from a new day."""

    form = ModelPriceForm
    list_display = (
        "model",
        "effective_from",
        "input_price",
        "output_price",
        "cache_write_5m_price",
        "cache_write_1h_price",
        "cache_read_price",
    )
    list_filter = ("effective_from",)
    search_fields = ("model",)
    # What a saved price shows: every digit, each labelled with its unit.
    saved_fields = (
        "model",
        "effective_from",
        "input_price_exact",
        "output_price_exact",
        "cache_write_5m_price_exact",
        "cache_write_1h_price_exact",
        "cache_read_price_exact",
        "created_at",
    )

    input_price = price_display("input_per_mtok", exact=False)
    output_price = price_display("output_per_mtok", exact=False)
    cache_write_5m_price = price_display("cache_write_5m_per_mtok", exact=False)
    cache_write_1h_price = price_display("cache_write_1h_per_mtok", exact=False)
    cache_read_price = price_display("cache_read_per_mtok", exact=False)
    input_price_exact = price_display("input_per_mtok", exact=True)
    output_price_exact = price_display("output_per_mtok", exact=True)
    cache_write_5m_price_exact = price_display("cache_write_5m_per_mtok", exact=True)
    cache_write_1h_price_exact = price_display("cache_write_1h_per_mtok", exact=True)
    cache_read_price_exact = price_display("cache_read_per_mtok", exact=True)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.saved_fields if obj is not None else super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.saved_fields if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DailyCost)
class DailyCostAdmin(ReadOnlyAdmin):
    """The rollups, read-only."""

    # Eleven counters do not fit a laptop: related ones share a cell (every
    # one is on the row's page).
    list_display = ("day", "feature", "model", "calls", "cost", "failures", "tokens")
    list_filter = ("feature", "model")
    date_hierarchy = "day"
    search_fields = ("feature", "model")

    @admin.display(description=_("cost (USD)"), ordering="cost_usd")
    def cost(self, obj: DailyCost) -> str:
        if not obj.unpriced_calls:
            return usd(obj.cost_usd)
        return format_html(
            '{}<div class="help">{}</div>',
            usd(obj.cost_usd),
            ngettext(
                "without %(count)d unpriced call",
                "without %(count)d unpriced calls",
                obj.unpriced_calls,
            )
            % {"count": obj.unpriced_calls},
        )

    @admin.display(description=_("fallback / degraded / error / limited"))
    def failures(self, obj: DailyCost) -> str:
        return (
            f"{obj.fallback_calls:,} / {obj.degraded_calls:,} / {obj.error_calls:,}"
            f" / {obj.limited_calls:,}"
        )

    @admin.display(description=_("tokens in / out"))
    def tokens(self, obj: DailyCost) -> str:
        return f"{obj.input_tokens:,} / {obj.output_tokens:,}"


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("day", "feature", "threshold", "cost", "budget", "created_at")
    list_filter = ("feature", "threshold")
    date_hierarchy = "day"

    @admin.display(description=_("cost (USD)"), ordering="cost_usd")
    def cost(self, obj: BudgetAlert) -> str:
        return usd(obj.cost_usd)

    @admin.display(description=_("budget (USD)"), ordering="budget_usd")
    def budget(self, obj: BudgetAlert) -> str:
        return usd(obj.budget_usd)


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdmin):
    """``claude_reconcile``'s rows: our cost beside Anthropic's, per UTC day and model."""

    list_display = ("day", "model", "ours", "theirs", "difference", "within_tolerance")
    list_filter = ("within_tolerance", "model")
    date_hierarchy = "day"

    @admin.display(description=_("our cost (USD)"), ordering="our_cost_usd")
    def ours(self, obj: Reconciliation) -> str:
        return usd_exact(obj.our_cost_usd)

    @admin.display(description=_("Anthropic's cost (USD)"), ordering="their_cost_usd")
    def theirs(self, obj: Reconciliation) -> str:
        return usd_exact(obj.their_cost_usd)

    @admin.display(description=_("difference (USD)"), ordering="difference_usd")
    def difference(self, obj: Reconciliation) -> str:
        return usd_exact(obj.difference_usd)
