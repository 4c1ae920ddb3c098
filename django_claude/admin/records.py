"""Call records, read-only, and the dashboard page that hangs off their list."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_claude.admin import charts, dashboard
from django_claude.admin.base import EstimatedCountPaginator, ReadOnlyAdmin, admin_link
from django_claude.models import CallRecord, DailyCost, ModelRoute
from django_claude.types import Outcome

DAY_CHOICES = [7, 14, 30, 90]
DEFAULT_DAYS = 14


@admin.register(CallRecord)
class CallRecordAdmin(ReadOnlyAdmin):
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
    readonly_fields = [*(field.name for field in CallRecord._meta.fields), "route_history"]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    change_list_template = "admin/django_claude/callrecord/change_list.html"

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
            *super().get_urls(),
        ]

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
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_claude/dashboard.html", context)


def dashboard_charts(data: dashboard.Dashboard) -> dict[str, str]:
    """The dashboard's four charts (SVG markup) from its numbers."""
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
    }
    index = {day.day: i for i, day in enumerate(data.days)}
    markers = [
        (
            index[timezone.localtime(change.changed_at).date()],
            f"{timezone.localtime(change.changed_at):%b %d %H:%M} "
            f"{change.feature or '(default)'}: {change.old_model} -> {change.new_model}"
            + (" (rollback)" if change.is_rollback else ""),
        )
        for change in data.route_changes
        if timezone.localtime(change.changed_at).date() in index
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
            fmt=lambda v: f"${v:,.4f}" if v < 1 else f"${v:,.2f}",
        ),
        "outcomes": charts.stacked_bars(
            title="Calls per day by outcome",
            y_label="calls",
            labels=labels,
            series=outcomes,
            fmt=lambda v: f"{v:,.0f}",
            colours=charts.OUTCOME_COLOURS,
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
            y_max=100.0,
            reference=("baseline", data.baseline) if data.baseline is not None else None,
            markers=markers,
        ),
    }
