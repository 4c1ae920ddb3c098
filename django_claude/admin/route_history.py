"""The history of route changes: under each route's form, and the list of
every change ever made. Read-only: the history is never edited."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_claude.admin.base import ReadOnlyAdmin, moment
from django_claude.models import ModelRouteChange
from django_claude.routing.audit import AUTOMATIC_AUTHOR


def change_moment(when: datetime.datetime, user: Any, *, automatic: bool = False) -> str:
    """When a route changed, and who changed it: "2026-11-27 10:35 by oncall"
    ("by django-claude" for the canary guard's stops)."""
    if automatic:
        user = AUTOMATIC_AUTHOR
    if user is None:
        return moment(when)
    return _("%(when)s by %(user)s") % {"when": moment(when), "user": user}


class ModelRouteChangeInline(admin.TabularInline):
    """The route's history, read-only, newest first."""

    model = ModelRouteChange
    fk_name = "route"
    extra = 0
    can_delete = False
    ordering = ["-id"]
    fields = (
        "changed_at",
        "author",
        "old_model",
        "new_model",
        "old_fallback_model",
        "new_fallback_model",
        "what",
        "rolled_back",
        "reason",
    )
    readonly_fields = fields
    verbose_name_plural = _("history")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("changed_by", "canary")

    @admin.display(description=_("changed by"))
    def author(self, obj: ModelRouteChange) -> str:
        return AUTOMATIC_AUTHOR if obj.automatic else str(obj.changed_by or "—")

    @admin.display(description=_("what"))
    def what(self, obj: ModelRouteChange) -> str:
        return obj.summary()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_claude.view_modelroute")


@admin.register(ModelRouteChange)
class ModelRouteChangeAdmin(ReadOnlyAdmin):
    """Every route change ever made: read-only."""

    list_display = ("changed", "feature", "switch", "kind", "reason")
    list_filter = ("is_rollback", "is_removal", "canary_action", "automatic", "feature")
    list_select_related = ("changed_by", "canary")
    date_hierarchy = "changed_at"

    @admin.display(description=_("time"), ordering="changed_at")
    def changed(self, obj: ModelRouteChange) -> str:
        return change_moment(obj.changed_at, obj.changed_by, automatic=obj.automatic)

    @admin.display(description=_("model: old → new"))
    def switch(self, obj: ModelRouteChange) -> str:
        # Two ids side by side are too wide for a laptop: the arrow may wrap,
        # an id never does.
        return format_html(
            '<span class="claude-model">{}</span> → <span class="claude-model">{}</span>',
            obj.old_model or "—",
            obj.new_model,
        )

    @admin.display(description=_("kind"), ordering="is_rollback")
    def kind(self, obj: ModelRouteChange) -> str:
        if obj.canary_action:
            return obj.summary()
        kind = _("rollback") if obj.is_rollback else _("removal") if obj.is_removal else _("change")
        return f"{kind}, {_('undone')}" if obj.rolled_back else str(kind)
