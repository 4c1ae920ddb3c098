"""The admin: read-only call records and prices, and the model-route switch
with its history and one-click rollback."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_claude import routing
from django_claude.admin import charts, dashboard
from django_claude.models import (
    BudgetAlert,
    CallRecord,
    DailyCost,
    ModelPrice,
    ModelRoute,
    ModelRouteChange,
    SmellAlert,
    SmellBaseline,
    SmellFailure,
)


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
                    [CallRecord._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > 10_000:
                return int(row[0])
        return int(self.object_list.count())  # type: ignore[attr-defined]


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and rows computed from calls: looked at, never typed in or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
        url = reverse("admin:django_claude_modelroute_change", args=[route.pk])
        return format_html('<a href="{}">{} ({})</a>', url, route, route.model)

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
            days = min(90, max(1, int(request.GET.get("days", 14))))
        except ValueError:
            days = 14
        feature = request.GET.get("feature", "")[:100]
        data = dashboard.build_dashboard(days=days, feature=feature)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Claude dashboard"),
            "opts": self.opts,
            "data": data,
            "days": days,
            "feature": feature,
            "day_choices": [7, 14, 30, 90],
            "all_features": sorted(
                set(DailyCost.objects.values_list("feature", flat=True).distinct())
                | set(data.features)
            ),
            "charts": _dashboard_charts(data) if not data.empty else {},
        }
        return TemplateResponse(request, "admin/django_claude/dashboard.html", context)


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


# -- model routes -------------------------------------------------------------------


class ModelRouteForm(forms.ModelForm):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text=_("Kept in the route's history."),
    )
    allow_unpriced = forms.BooleanField(
        label=_("Use a model with no price"),
        required=False,
        help_text=_("Its calls will be recorded with no cost until a price is added."),
    )

    class Meta:
        model = ModelRoute
        fields = ["feature", "model", "fallback_model"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "model" in data:
            try:
                routing.validate_route(
                    model=data.get("model") or "",
                    fallback_model=data.get("fallback_model") or "",
                    allow_unpriced=bool(data.get("allow_unpriced")),
                )
            except ValidationError as exc:
                self.add_error(None, exc)
        return data


class ModelRouteChangeInline(admin.TabularInline):
    """The route's history, read-only, newest first."""

    model = ModelRouteChange
    fk_name = "route"
    extra = 0
    can_delete = False
    ordering = ["-id"]
    fields = (
        "changed_at",
        "changed_by",
        "old_model",
        "new_model",
        "old_fallback_model",
        "new_fallback_model",
        "is_rollback",
        "rolled_back",
        "reason",
    )
    readonly_fields = fields
    verbose_name_plural = _("history")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_claude.view_modelroute")


def _percent(part: int, whole: int) -> str:
    return "—" if not whole else f"{100 * part / whole:.1f}%"


@admin.register(ModelRoute)
class ModelRouteAdmin(admin.ModelAdmin):
    """Change a feature's model (history and LogEntry kept) and roll it back."""

    form = ModelRouteForm
    change_form_template = "admin/django_claude/modelroute/change_form.html"
    inlines = [ModelRouteChangeInline]
    list_display = (
        "route_name",
        "model",
        "fallback_model",
        "updated_at",
        "updated_by",
        "calls_since_change",
        "fallback_rate",
        "degraded_rate",
        "smell_pass_rate",
    )
    list_select_related = ("updated_by",)
    search_fields = ("feature", "model", "fallback_model")
    actions = ["rollback_selected"]
    fields = ("feature", "model", "fallback_model", "reason", "allow_unpriced")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("feature",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history hangs off routes; point a route elsewhere instead

    def has_rollback_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_claude.rollback_modelroute")

    # -- evidence for a rollback decision, since the route's last change --

    def _health(self, obj: ModelRoute) -> dict[str, int]:
        cached: dict[str, int] | None = getattr(obj, "_health", None)
        if cached is None:
            records = CallRecord.objects.filter(created_at__gte=obj.updated_at)
            if obj.feature:
                records = records.filter(feature=obj.feature)
            else:
                records = records.exclude(
                    feature__in=ModelRoute.objects.exclude(feature="").values("feature")
                )
            cached = records.health()
            obj._health = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description=_("feature"), ordering="feature")
    def route_name(self, obj: ModelRoute) -> str:
        return str(obj)

    @admin.display(description=_("calls since change"))
    def calls_since_change(self, obj: ModelRoute) -> int:
        return self._health(obj)["calls"]

    @admin.display(description=_("fallback rate"))
    def fallback_rate(self, obj: ModelRoute) -> str:
        health = self._health(obj)
        return _percent(health["fallbacks"], health["calls"])

    @admin.display(description=_("degraded rate"))
    def degraded_rate(self, obj: ModelRoute) -> str:
        health = self._health(obj)
        return _percent(health["degraded"], health["calls"])

    @admin.display(description=_("smell-test pass rate"))
    def smell_pass_rate(self, obj: ModelRoute) -> str:
        health = self._health(obj)
        return _percent(health["smell_passed"], health["smell_judged"])

    # -- saving goes through routing.set_route: history, LogEntry, signal --

    def save_model(self, request: HttpRequest, obj: ModelRoute, form: Any, change: bool) -> None:
        data = form.cleaned_data
        change_row = routing.set_route(
            feature=obj.feature,
            model=data["model"],
            fallback_model=data.get("fallback_model") or "",
            user=request.user,
            reason=data.get("reason") or "",
            allow_unpriced=bool(data.get("allow_unpriced")),
        )
        obj.pk = change_row.route_id
        obj.refresh_from_db()

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None  # routing.set_route writes the LogEntry, with the reason

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None  # routing.set_route writes the LogEntry, with the reason

    # -- rollback: a confirmation page on GET, the rollback on POST --

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_rollback",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        route = self.get_object(request, object_id)
        if route is not None and self.has_rollback_permission(request):
            extra["rollback_to"] = routing.previous_route(route.feature)
            extra["rollback_url"] = reverse(
                "admin:django_claude_modelroute_rollback", args=[route.pk]
            )
        return super().change_view(request, object_id, form_url, extra)

    def rollback_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_rollback_permission(request):
            raise PermissionDenied
        route = get_object_or_404(ModelRoute, pk=object_id)
        change_url = reverse("admin:django_claude_modelroute_change", args=[route.pk])
        target = routing.previous_route(route.feature)
        if request.method == "POST":
            reason = request.POST.get("reason", "")[:500]
            try:
                routing.rollback(feature=route.feature, user=request.user, reason=reason)
            except routing.NothingToRollBack as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(
                    request,
                    format_html(
                        "Rolled {} back to {}.",
                        route,
                        target.model if target else "",
                    ),
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Roll back %(route)s?") % {"route": route},
            "opts": self.opts,
            "route": route,
            "target": target,
            "change_url": change_url,
        }
        return TemplateResponse(
            request, "admin/django_claude/modelroute/rollback_confirmation.html", context
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Django ignores an action the user may not run; a rollback without the
        # permission is refused outright, like the rollback view.
        if (
            request.method == "POST"
            and request.POST.get("action") == "rollback_selected"
            and not self.has_rollback_permission(request)
        ):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Roll back selected routes"), permissions=["rollback"])
    def rollback_selected(
        self, request: HttpRequest, queryset: QuerySet[ModelRoute]
    ) -> HttpResponse | None:
        routes = list(queryset)
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Roll back these routes?"),
                "opts": self.opts,
                "plans": [(route, routing.previous_route(route.feature)) for route in routes],
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/django_claude/modelroute/rollback_selected.html", context
            )
        reason = request.POST.get("reason", "")[:500]
        done = 0
        for route in routes:
            try:
                routing.rollback(feature=route.feature, user=request.user, reason=reason)
            except routing.NothingToRollBack as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext("Rolled back %d route.", "Rolled back %d routes.", done) % done,
                messages.SUCCESS,
            )
        return None


@admin.register(ModelRouteChange)
class ModelRouteChangeAdmin(ReadOnlyAdmin):
    """Every route change ever made: read-only."""

    list_display = (
        "changed_at",
        "feature",
        "old_model",
        "new_model",
        "is_rollback",
        "rolled_back",
        "changed_by",
        "reason",
    )
    list_filter = ("is_rollback", "feature")
    list_select_related = ("changed_by",)
    date_hierarchy = "changed_at"


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


@admin.register(SmellFailure)
class SmellFailureAdmin(ReadOnlyAdmin):
    """Answers the judge failed, redacted, for review (``view_smellfailure`` only)."""

    list_display = ("created_at", "feature", "model", "judge_answer", "call_link")
    list_filter = ("feature", "model")
    date_hierarchy = "created_at"
    search_fields = ("=call__id",)
    list_select_related = ("call",)
    readonly_fields = (
        "call",
        "feature",
        "model",
        "created_at",
        "judge_answer",
        "prompt",
        "response",
    )

    @admin.display(description=_("call"))
    def call_link(self, obj: SmellFailure) -> str:
        url = reverse("admin:django_claude_callrecord_change", args=[obj.call_id])
        return format_html('<a href="{}">{}</a>', url, obj.call_id)


@admin.register(SmellBaseline)
class SmellBaselineAdmin(ReadOnlyAdmin):
    """Each feature's baseline, and its pass rate now (last judged calls, 24 h)."""

    list_display = (
        "feature",
        "pass_rate_display",
        "sample_size",
        "recent_pass_rate",
        "recent_judged",
        "alert_open",
        "source",
        "computed_at",
    )
    list_filter = ("feature", "source")

    def _recent(self, obj: SmellBaseline) -> Any:
        from django_claude.smell import judge as evals

        cached = getattr(obj, "_recent", None)
        if cached is None:
            cached = evals.recent_pass_rate(obj.feature)
            obj._recent = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description=_("baseline"))
    def pass_rate_display(self, obj: SmellBaseline) -> str:
        return f"{obj.pass_rate:.1f}%"

    @admin.display(description=_("pass rate now"))
    def recent_pass_rate(self, obj: SmellBaseline) -> str:
        recent = self._recent(obj)
        return f"{recent.rate:.1f}%" if recent.judged else "—"

    @admin.display(description=_("judged (24 h)"))
    def recent_judged(self, obj: SmellBaseline) -> int:
        return int(self._recent(obj).judged)

    @admin.display(description=_("alert open"), boolean=True)
    def alert_open(self, obj: SmellBaseline) -> bool:
        return SmellAlert.objects.filter(feature=obj.feature, ended_at__isnull=True).exists()


@admin.register(SmellAlert)
class SmellAlertAdmin(ReadOnlyAdmin):
    list_display = (
        "feature",
        "started_at",
        "ended_at",
        "baseline_pass_rate",
        "recent_pass_rate",
        "judged",
    )
    list_filter = ("feature",)


def _dashboard_charts(data: dashboard.Dashboard) -> dict[str, Any]:
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
        "ok": [day.ok_calls for day in data.days],
        "cached": [day.cached_calls for day in data.days],
        "fallback": [day.fallback_calls for day in data.days],
        "degraded": [day.degraded_calls for day in data.days],
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
