"""What calls cost: the site's price overrides, the daily rollups, the budget alerts."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_claude.admin.base import ClaudeAdmin, ReadOnlyAdmin
from django_claude.models import BudgetAlert, DailyCost, ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(ClaudeAdmin):
    """Prices are added, never edited: a new price is a new row from a new day."""

    list_display = (
        "model",
        "effective_from",
        "input_per_mtok",
        "output_per_mtok",
        "cache_write_5m_per_mtok",
        "cache_write_1h_per_mtok",
        "cache_read_per_mtok",
    )
    list_filter = ("effective_from",)
    search_fields = ("model",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:
            return [field.name for field in ModelPrice._meta.fields]
        return ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DailyCost)
class DailyCostAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "feature",
        "model",
        "calls",
        "cost_usd",
        "unpriced_calls",
        "fallback_calls",
        "degraded_calls",
        "error_calls",
        "input_tokens",
        "output_tokens",
    )
    list_filter = ("feature", "model")
    date_hierarchy = "day"
    search_fields = ("feature", "model")


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("day", "feature", "threshold", "cost_usd", "budget_usd", "created_at")
    list_filter = ("feature", "threshold")
    date_hierarchy = "day"
