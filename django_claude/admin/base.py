"""What the app's admin pages share: a 404 for a missing row, read-only
history, a paginator that never counts a huge table, links that stay on the
admin site serving the page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import AdminSite
from django.core.paginator import Paginator
from django.db import connection, models
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext as _

# Below this many rows the planner's estimate is no cheaper than counting.
ESTIMATE_ABOVE = 10_000


class EstimatedCountPaginator(Paginator):
    """Never a full-table COUNT on PostgreSQL: an unfiltered list uses the
    planner's row estimate (filtered lists are counted, they are smaller)."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if connection.vendor == "postgresql" and query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [self.object_list.model._meta.db_table],  # type: ignore[attr-defined]
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > ESTIMATE_ABOVE:
                return int(row[0])
        return int(self.object_list.count())  # type: ignore[attr-defined]


class ClaudeAdmin(admin.ModelAdmin):
    """A row that is not there, or an id that cannot be one, is a 404."""

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        # Django's one hook for a missing object redirects to the index with a
        # message; a link to a purged record or a mistyped id should say 404.
        raise Http404(
            _("No %(name)s with the id %(key)r.") % {"name": opts.verbose_name, "key": object_id}
        )


class ReadOnlyAdmin(ClaudeAdmin):
    """History and rows computed from calls: looked at, never typed in or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def admin_url(site: AdminSite, model: type[models.Model], view: str, *args: Any) -> str:
    """The URL of ``model``'s ``view`` page ("change", "changelist", ...) on ``site``."""
    opts = model._meta
    return reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_{view}", args=args)


def admin_link(site: AdminSite, model: type[models.Model], pk: Any, text: Any) -> str:
    """A link to a row's change page on ``site``, or ``text`` alone when
    ``site`` does not show that model."""
    if not site.is_registered(model):
        return str(text)
    return format_html('<a href="{}">{}</a>', admin_url(site, model, "change", pk), text)


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as "12.5%", or "—" when there is nothing to divide."""
    return "—" if not whole else f"{100 * part / whole:.1f}%"
