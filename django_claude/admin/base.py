"""What the app's admin pages share: a 404 for a missing row, read-only
history, a paginator that never counts a huge table, links that stay on the
admin site serving the page."""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal
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

from django_claude.recording.clock import local

# A list shows this many significant digits of a cost, and at most this many
# decimals (a millionth of a dollar is one Haiku input token).
SIGNIFICANT_DIGITS = 6
MAX_DECIMALS = 6

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

    class Media:
        # Column widths that keep the lists readable at 1366 px.
        css = {"all": ["django_claude/admin.css"]}

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


def _cents_at_least(text: str) -> str:
    """``text`` (a plain decimal) without trailing zeros, but with cents."""
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"


def usd(value: Decimal | float | None) -> str:
    """A cost for a list: "$0.00033", "$0.037098", "$12.3457", "$1,234.50" (six
    significant digits and at most six decimals, never fewer than cents, no
    trailing zeros beyond them, never scientific notation); "<$0.000001" for
    a cost too small to show, "—" when there is no cost."""
    if value is None:
        return "—"
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if not amount.is_finite():
        return str(amount)
    if amount.is_zero():
        return "$0.00"
    sign = "-" if amount < 0 else ""
    places = min(MAX_DECIMALS, max(2, SIGNIFICANT_DIGITS - 1 - abs(amount).adjusted()))
    rounded = abs(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if rounded.is_zero():
        return f"{sign}<${Decimal(1).scaleb(-MAX_DECIMALS):f}"
    return f"{sign}${_cents_at_least(f'{rounded:,f}')}"


def usd_exact(value: Decimal | float | None) -> str:
    """A cost with every digit stored ("$0.0003312345"), for a detail page;
    "—" when there is no cost."""
    if value is None:
        return "—"
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if not amount.is_finite():
        return str(amount)
    sign = "-" if amount < 0 else ""
    return f"{sign}${_cents_at_least(f'{abs(amount).normalize():,f}')}"


def moment(value: datetime.datetime | None) -> str:
    """A timestamp for a list, in the site's time: "2026-11-27 10:35" (it
    wraps between date and time, where Django's long form takes three lines)."""
    if value is None:
        return "—"
    return f"{local(value):%Y-%m-%d %H:%M}"
