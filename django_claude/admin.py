"""Read-only admin for call records and prices that bills were computed from."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_claude.models import CallRecord, ModelPrice


@admin.register(CallRecord)
class CallRecordAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "feature",
        "model",
        "outcome",
        "attempts",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "smell_verdict",
    )
    list_filter = ("outcome", "feature", "model", "smell_verdict", "fallback_used")
    search_fields = ("=id", "=upstream_request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ("user",)
    readonly_fields = [field.name for field in CallRecord._meta.fields]
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
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
