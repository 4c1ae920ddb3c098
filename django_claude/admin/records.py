"""Call records, read-only, and the dashboard page that hangs off their list."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_claude.admin import charts, dashboard, quota_usage
from django_claude.admin.base import (
    EstimatedCountPaginator,
    ReadOnlyAdmin,
    admin_link,
    moment,
    usd,
    usd_exact,
)
from django_claude.conf import conf
from django_claude.models import CallRecord, DailyCost, ModelRoute
from django_claude.recording.clock import local
from django_claude.types import Outcome

DAY_CHOICES = [7, 14, 30, 90]
DEFAULT_DAYS = 14
# On the detail page these columns are shown by a method that reads better.
DETAIL_DISPLAY = {
    "cost_usd": "cost_exact",
    "attempt_log": "attempt_table",
    "trace_id": "trace_link",
}
TRACE_ID = re.compile(r"[0-9a-f]{32}")
SPAN_ID = re.compile(r"[0-9a-f]{16}")


def attempt_rows(attempt_log: Any) -> list[dict[str, Any]]:
    """The attempt log as rows of model, status, error and latency; an entry
    that is not an object (a hand-edited or ingested log) becomes its error text."""
    if not isinstance(attempt_log, list):
        attempt_log = [attempt_log] if attempt_log else []
    rows = []
    for entry in attempt_log:
        if isinstance(entry, dict):
            rows.append({k: entry.get(k) for k in ("model", "status", "error", "latency_ms")})
        else:
            rows.append({"model": None, "status": None, "error": entry, "latency_ms": None})
    return rows


def list_dashboard_on(site: admin.AdminSite, records_admin: CallRecordAdmin) -> None:
    """Make the dashboard a row of the app's section wherever ``site`` lists
    its apps (the index, the app page, the sidebar), for those who may see it.

    Django builds those lists from registered models only, and the index
    template is Django's own (it comes first in ``INSTALLED_APPS``): wrapping
    the site's ``get_app_list`` is the one place a row can be added.
    """
    build = site.get_app_list
    if getattr(build, "lists_claude_dashboard", False):
        return

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = build(request, app_label)
        if not records_admin.has_view_permission(request):
            return apps
        opts = records_admin.opts
        for app in apps:
            if app["app_label"] == opts.app_label:
                app["models"].insert(0, dashboard_row(site))
        return apps

    get_app_list.lists_claude_dashboard = True  # type: ignore[attr-defined]
    site.get_app_list = get_app_list  # type: ignore[method-assign]


def dashboard_row(site: admin.AdminSite) -> dict[str, Any]:
    """The dashboard as the admin's app lists show a model: a "View" link."""
    return {
        "model": None,
        "name": _("Dashboard"),
        "object_name": "Dashboard",
        "perms": {"add": False, "change": False, "delete": False, "view": True},
        "admin_url": reverse(f"{site.name}:django_claude_dashboard"),
        "add_url": None,
        "view_only": True,
    }


@admin.register(CallRecord)
class CallRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created",
        "feature",
        "model",
        "result",
        "latency_ms",
        "tokens",
        "cost",
        "smell",
    )
    list_filter = ("outcome", "feature", "model", "smell_verdict", "fallback_used")
    search_fields = ("=id", "=upstream_request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ("user",)
    readonly_fields = [
        *(DETAIL_DISPLAY.get(field.name, field.name) for field in CallRecord._meta.fields),
        "route_history",
    ]
    exclude = list(DETAIL_DISPLAY)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    change_list_template = "admin/django_claude/callrecord/change_list.html"

    def __init__(self, model: type[CallRecord], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        list_dashboard_on(admin_site, self)

    @admin.display(description=_("time"), ordering="created_at")
    def created(self, obj: CallRecord) -> str:
        return moment(obj.created_at)

    @admin.display(description=_("outcome"), ordering="outcome")
    def result(self, obj: CallRecord) -> str:
        """The outcome, and the attempts it took when there was more than one."""
        outcome = obj.get_outcome_display()
        if obj.attempts <= 1:
            return str(outcome)
        return ngettext(
            "%(outcome)s after %(count)d attempt",
            "%(outcome)s after %(count)d attempts",
            obj.attempts,
        ) % {"outcome": outcome, "count": obj.attempts}

    @admin.display(description=_("tokens in / out"))
    def tokens(self, obj: CallRecord) -> str:
        return f"{obj.input_tokens:,} / {obj.output_tokens:,}"

    @admin.display(description=_("smell test"), ordering="smell_verdict")
    def smell(self, obj: CallRecord) -> str:
        return str(obj.get_smell_verdict_display())

    @admin.display(description=_("cost (USD)"), ordering="cost_usd")
    def cost(self, obj: CallRecord) -> str:
        return usd(obj.cost_usd)

    @admin.display(description=_("cost (USD)"))
    def cost_exact(self, obj: CallRecord) -> str:
        return usd_exact(obj.cost_usd)

    @admin.display(description=_("attempts detail"))
    def attempt_table(self, obj: CallRecord) -> SafeString:
        """Each attempt: model, status, error and latency (escaped by the template)."""
        return render_to_string(
            "admin/django_claude/callrecord/attempt_log.html",
            {"attempts": attempt_rows(obj.attempt_log)},
        )

    @admin.display(description=_("trace id"))
    def trace_link(self, obj: CallRecord) -> str:
        """The trace id, linked to the trace (``DJANGO_CLAUDE_TRACE_URL``)."""
        template = conf.TRACE_URL
        if (
            not template
            or not TRACE_ID.fullmatch(obj.trace_id)
            or not SPAN_ID.fullmatch(obj.span_id)
        ):
            return obj.trace_id or "—"
        try:
            url = template.format(trace_id=obj.trace_id, span_id=obj.span_id)
        except (KeyError, IndexError, ValueError):
            return obj.trace_id  # a template we cannot fill: check E014 says why
        return format_html('<a href="{}" rel="noopener">{}</a>', url, obj.trace_id)

    @admin.display(description=_("route history"))
    def route_history(self, obj: CallRecord) -> str:
        """Where this feature's model came from: its route's changes."""
        route = (
            ModelRoute.objects.filter(feature=obj.feature).first()
            or ModelRoute.objects.filter(feature="").first()
        )
        if route is None:
            return str(_("no route: the settings' default model"))
        return admin_link(self.admin_site, ModelRoute, route.pk, f"{route} ({route.model})")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="django_claude_dashboard",
            ),
            path(
                "quotas/",
                self.admin_site.admin_view(self.quotas_view),
                name="django_claude_quotas",
            ),
            *super().get_urls(),
        ]

    def quotas_view(self, request: HttpRequest) -> HttpResponse:
        """The quotas, who is nearest each, and Anthropic's rate limits."""
        return quota_usage.quotas_page(self, request)

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Cost, health and quality per day, as server-rendered SVG."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = min(max(DAY_CHOICES), max(1, int(request.GET.get("days", DEFAULT_DAYS))))
        except ValueError:
            days = DEFAULT_DAYS
        feature = request.GET.get("feature", "")[:100]
        data = dashboard.build_dashboard(days=days, feature=feature)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Claude dashboard"),
            "opts": self.opts,
            "data": data,
            "days": days,
            "feature": feature,
            "day_choices": DAY_CHOICES,
            "all_features": sorted(
                set(DailyCost.objects.values_list("feature", flat=True).distinct())
                | set(data.features)
            ),
            "charts": dashboard_charts(data) if not data.empty else {},
            "total_cost": usd(data.total_cost),
            "total_tool_cost": usd(data.total_tool_cost),
            "reconciliations": [
                (row, usd(row.our_cost_usd), usd(row.their_cost_usd), usd(row.difference_usd))
                for row in data.reconciliations[:RECONCILIATIONS_SHOWN]
            ],
            "top_features": [(name, usd(cost), calls) for name, cost, calls in data.top_features],
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_claude/dashboard.html", context)


RECONCILIATIONS_SHOWN = 10  # the rest are one click away, in their admin list


def dashboard_charts(data: dashboard.Dashboard) -> dict[str, str]:
    """The dashboard's charts (SVG markup) from its numbers."""
    labels = [day.day.strftime("%b %d") for day in data.days]
    features = data.features[:7]
    series: dict[str, list[float]] = {
        f: [float(day.cost_by_feature.get(f, 0)) for day in data.days] for f in features
    }
    others = [
        float(sum(c for f, c in day.cost_by_feature.items() if f not in features))
        for day in data.days
    ]
    if any(others):
        series["other features"] = others
    outcomes = {
        Outcome.OK: [day.ok_calls for day in data.days],
        Outcome.CACHED: [day.cached_calls for day in data.days],
        Outcome.FALLBACK: [day.fallback_calls for day in data.days],
        Outcome.DEGRADED: [day.degraded_calls for day in data.days],
        "errors": [day.error_calls for day in data.days],
        Outcome.LIMITED: [day.limited_calls for day in data.days],
    }
    index = {day.day: i for i, day in enumerate(data.days)}
    markers = [
        (
            index[local(change.changed_at).date()],
            f"{local(change.changed_at):%b %d %H:%M} "
            f"{change.feature or '(default)'}: {change.summary()}",
        )
        for change in data.route_changes
        if local(change.changed_at).date() in index
    ]
    latency_name = "p50" if data.latency_kind == "percentiles" else "average"
    latency: dict[str, list[float | None]] = {
        latency_name: [day.latency_p50_ms for day in data.days]
    }
    if data.latency_kind == "percentiles":
        latency["p95"] = [day.latency_p95_ms for day in data.days]
    return {
        "cost": charts.stacked_bars(
            title="Cost per day by feature (USD)",
            y_label="USD",
            labels=labels,
            series=series,
            fmt=usd,
            prefix="$",
        ),
        "fees": charts.stacked_bars(
            title="Cost per day: tokens and tool fees (USD)",
            y_label="USD",
            labels=labels,
            series={
                "tokens": [float(day.cost - day.tool_cost) for day in data.days],
                "tool fees (web search)": [float(day.tool_cost) for day in data.days],
            },
            fmt=usd,
            prefix="$",
        ),
        "outcomes": charts.stacked_bars(
            title="Calls per day by outcome",
            y_label="calls",
            labels=labels,
            series=outcomes,
            fmt=lambda v: f"{v:,.0f}",
            colours=charts.OUTCOME_COLOURS,
            whole=True,
        ),
        "latency": charts.lines(
            title=f"Latency per day ({latency_name}, ms)",
            y_label="ms",
            labels=labels,
            series=latency,
            fmt=lambda v: f"{v:,.0f}",
        ),
        "quality": charts.lines(
            title="Smell-test pass rate per day (%), model changes marked",
            y_label="%",
            labels=labels,
            series={"pass rate": [day.pass_rate for day in data.days]},
            fmt=lambda v: f"{v:.1f}%",
            suffix="%",
            y_max=100.0,
            reference=("baseline", data.baseline) if data.baseline is not None else None,
            markers=markers,
        ),
    }
