"""The model-route switch: change a feature's model with a reason, see the
evidence since its last change, roll it back or remove it (the history of
changes is in ``route_history``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, OuterRef, QuerySet, Subquery, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_claude import routing
from django_claude.admin.base import ClaudeAdmin, admin_url, percent
from django_claude.admin.canaries import RouteCanaryAdmin
from django_claude.admin.route_history import ModelRouteChangeInline, change_moment
from django_claude.models import CallRecord, Canary, ModelRoute

ROLLBACK_ACTION = "rollback_selected"


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


def health_since_change() -> dict[str, Case]:
    """Per route, the ``CallRecordQuerySet.health()`` counts of its calls since
    its last change, as annotations named ``health_<count>``.

    The default route (``feature=""``) serves every feature without a route
    of its own.
    """
    since_change = CallRecord.objects.filter(created_at__gte=OuterRef("updated_at"))
    own = since_change.filter(feature=OuterRef("feature")).health_subqueries()
    unrouted = since_change.exclude(
        feature__in=ModelRoute.objects.exclude(feature="").values("feature")
    ).health_subqueries()
    return {
        f"health_{name}": Case(When(feature="", then=unrouted[name]), default=own[name])
        for name in own
    }


class RouteRollbackAdmin(ClaudeAdmin):
    """Rolling routes back: a confirmation page on GET and the rollback on
    POST, for one route (its change page links here) or a selection (an action)."""

    actions = [ROLLBACK_ACTION]

    def has_rollback_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_claude.rollback_modelroute")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_rollback",
            ),
            *super().get_urls(),
        ]

    def _route_for(self, request: HttpRequest, object_id: str, *, allowed: bool) -> ModelRoute:
        """The route of a rollback or removal page (403, or 404 for no such route)."""
        if not allowed:
            raise PermissionDenied
        route = self.get_object(request, unquote(object_id))
        if route is None:
            raise Http404(_("No such model route."))
        return route

    def rollback_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        route = self._route_for(request, object_id, allowed=self.has_rollback_permission(request))
        change_url = admin_url(self.admin_site, ModelRoute, "change", route.pk)
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
                    format_html("Rolled {} back to {}.", route, target.model if target else ""),
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
            "canary": routing.running_canary(route.feature),
            "stop_canary_url": admin_url(self.admin_site, ModelRoute, "canary", route.pk, "stop"),
        }
        request.current_app = self.admin_site.name
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
            and request.POST.get("action") == ROLLBACK_ACTION
            and not self.has_rollback_permission(request)
        ):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Roll back selected routes"), permissions=["rollback"])
    def rollback_selected(
        self, request: HttpRequest, queryset: QuerySet[ModelRoute]
    ) -> HttpResponse | None:
        plans = [(route, routing.previous_route(route.feature)) for route in queryset]
        changing = [(route, target) for route, target in plans if target is not None]
        unchanged = [route for route, target in plans if target is None]
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Roll back these routes?") if changing else _("Nothing to roll back"),
                "opts": self.opts,
                "plans": changing,
                "unchanged": unchanged,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(
                request, "admin/django_claude/modelroute/rollback_selected.html", context
            )
        reason = request.POST.get("reason", "")[:500]
        done = 0
        for route, _target in changing:
            try:
                routing.rollback(feature=route.feature, user=request.user, reason=reason)
            except routing.NothingToRollBack as exc:  # undone by someone else meanwhile
                self.message_user(request, str(exc), messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext("Rolled back %d route.", "Rolled back %d routes.", done) % done,
                messages.SUCCESS,
            )
        if unchanged:
            self.message_user(
                request,
                _("Nothing to roll back, left as they are: %(routes)s")
                % {"routes": ", ".join(str(route) for route in unchanged)},
                messages.INFO,
            )
        return None


class RouteRemovalAdmin(RouteRollbackAdmin):
    """Removing a route (its feature follows the default route again): a confirmation
    page on GET, the removal on POST, kept in the history; a rollback restores it."""

    def has_remove_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Not has_delete_permission: Django's delete view would not keep the history.
        return request.user.has_perm("django_claude.delete_modelroute")

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_remove"
        view = self.admin_site.admin_view(self.remove_view)
        return [path("<path:object_id>/remove/", view, name=name), *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The change page, with its buttons: roll back, remove."""
        extra = dict(extra_context or {})
        route = self.get_object(request, unquote(object_id))
        if route is not None and self.has_rollback_permission(request):
            extra["rollback_to"] = routing.previous_route(route.feature)
            extra["rollback_url"] = admin_url(self.admin_site, ModelRoute, "rollback", route.pk)
        if route is not None and self.has_remove_permission(request):
            extra["remove_url"] = admin_url(self.admin_site, ModelRoute, "remove", route.pk)
        return super().change_view(request, object_id, form_url, extra)

    def remove_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        route = self._route_for(request, object_id, allowed=self.has_remove_permission(request))
        after = routing.active_route_from_db(route.feature, own=False)
        if request.method == "POST":
            reason = request.POST.get("reason", "")[:500]
            try:
                routing.remove_route(feature=route.feature, user=request.user, reason=reason)
            except routing.NoRouteToRemove as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                message = "Removed the route of {}: it uses {} now. Restore it with: {}"
                restore = f"manage.py claude_route rollback --feature '{route.feature}' --reason …"
                self.message_user(request, format_html(message, route, after.model, restore))
            return HttpResponseRedirect(admin_url(self.admin_site, ModelRoute, "changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Remove the route of %(route)s?") % {"route": route},
            "opts": self.opts,
            "route": route,
            "after": after,
            "from_default_route": route.feature and ModelRoute.objects.filter(feature="").exists(),
            "change_url": admin_url(self.admin_site, ModelRoute, "change", route.pk),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_claude/modelroute/remove_confirmation.html", context
        )


@admin.register(ModelRoute)
class ModelRouteAdmin(RouteCanaryAdmin, RouteRemovalAdmin):
    """Change a feature's model (history and LogEntry kept), roll it back, run
    a canary."""

    form = ModelRouteForm
    change_form_template = "admin/django_claude/modelroute/change_form.html"
    inlines = [ModelRouteChangeInline]
    list_display = (
        "route_name",
        "model",
        "fallback_model",
        "updated",
        "calls_since_change",
        "fallback_rate",
        "degraded_rate",
        "smell_pass_rate",
        "canary",
    )
    list_select_related = ("updated_by",)
    search_fields = ("feature", "model", "fallback_model")
    fields = ("feature", "model", "fallback_model", "reason", "allow_unpriced")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("feature",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history hangs off routes; point a route elsewhere instead

    # -- evidence for a rollback decision, since the route's last change --

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelRoute]:
        running = Canary.objects.filter(feature=OuterRef("feature"), ended_at__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(**health_since_change())
            .annotate(
                canary_model=Subquery(running.values("model")[:1]),
                canary_percent=Subquery(running.values("percent")[:1]),
            )
        )

    @admin.display(description=_("canary"))
    def canary(self, obj: Any) -> str:
        if not obj.canary_model:
            return "—"
        # SQLite hands a subquery's decimal back as a float: the same two places.
        return f"{obj.canary_model} ({Decimal(str(obj.canary_percent)):.2f}%)"

    @admin.display(description=_("feature"), ordering="feature")
    def route_name(self, obj: ModelRoute) -> str:
        return str(obj)

    @admin.display(description=_("changed"), ordering="updated_at")
    def updated(self, obj: ModelRoute) -> str:
        return change_moment(obj.updated_at, obj.updated_by)

    @admin.display(description=_("calls since change"), ordering="health_calls")
    def calls_since_change(self, obj: Any) -> int:
        return int(obj.health_calls)

    @admin.display(description=_("fallback rate"))
    def fallback_rate(self, obj: Any) -> str:
        return percent(obj.health_fallbacks, obj.health_calls)

    @admin.display(description=_("degraded rate"))
    def degraded_rate(self, obj: Any) -> str:
        return percent(obj.health_degraded, obj.health_calls)

    @admin.display(description=_("smell-test pass rate"))
    def smell_pass_rate(self, obj: Any) -> str:
        return percent(obj.health_smell_passed, obj.health_smell_judged)

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
