"""A route's canary in the admin: the two arms side by side on the route's
page, and a confirmation page for each action (start, share, promote, stop).

Every action needs the ``django_claude.canary_modelroute`` permission (403
without), is a POST with a CSRF token from its confirmation page, and goes
through ``django_claude.routing`` (history, ``LogEntry``, signal).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from django_claude import routing
from django_claude.admin.base import ClaudeAdmin, admin_url, percent
from django_claude.models import Canary, ModelRoute
from django_claude.routing import guard
from django_claude.routing.evidence import ArmStats, Finding

ACTIONS = ("start", "percent", "promote", "stop")


class CanaryForm(forms.Form):
    """The fields of a canary action: which of them a page shows depends on it."""

    model = forms.CharField(label=_("Canary model"), max_length=100)
    fallback_model = forms.CharField(
        label=_("Canary fallback model"),
        max_length=100,
        required=False,
        help_text=_("Blank: the route's fallback serves the canary's calls too."),
    )
    percent = forms.DecimalField(
        label=_("Share of calls (%)"),
        min_value=Decimal("0.01"),
        max_value=Decimal(100),
        decimal_places=2,
    )
    reason = forms.CharField(
        label=_("Reason (kept in the history)"),
        max_length=500,
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
    )
    allow_unpriced = forms.BooleanField(label=_("Use a model with no price"), required=False)
    # The canary the page showed: an action never lands on another one
    # started meanwhile.
    canary_id = forms.IntegerField(widget=forms.HiddenInput)

    FIELDS = {
        "start": ("model", "fallback_model", "percent", "reason", "allow_unpriced"),
        "percent": ("percent", "reason", "canary_id"),
        "promote": ("reason", "canary_id"),
        "stop": ("reason", "canary_id"),
    }

    def __init__(self, action: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in list(self.fields):
            if name not in self.FIELDS[action]:
                del self.fields[name]


def _value(finding: Finding | None, number: float | None, kind: str) -> str:
    if number is None:
        return "—"
    if kind == "rate":
        return f"{number * 100:.1f}%"
    if kind == "usd":
        return f"${number:.6f}"
    return f"{number:.0f} ms"


def arm_rows(arms: dict[str, ArmStats], findings: list[Finding]) -> list[dict[str, str]]:
    """The side-by-side table: a row per measure, each arm's value, and what
    the guard's test says of it in words."""
    by_measure = {finding.measure: finding for finding in findings}
    control, canary = arms[routing.table.CONTROL], arms[routing.table.CANARY]

    def judged(stats: ArmStats) -> str:
        judged = stats.smell.total
        return f"{percent(judged - stats.smell.bad, judged)} of {judged}" if judged else "—"

    def measured(measure: str, kind: str) -> dict[str, str]:
        finding = by_measure[measure]
        return {
            "measure": measure,
            "control": _value(finding, finding.control, kind),
            "canary": _value(finding, finding.canary, kind),
            "words": finding.words,
            "worse": "worse" if finding.worse else "",
        }

    rows = [
        {"measure": "calls", "control": str(control.calls), "canary": str(canary.calls)},
        measured("failure rate", "rate"),
        measured("fallback rate", "rate"),
        measured("upstream error rate", "rate"),
        {
            **measured("smell-test pass rate", "rate"),
            "control": judged(control),
            "canary": judged(canary),
        },
        {
            "measure": "p50 latency",
            "control": _value(None, control.p50_ms, "ms"),
            "canary": _value(None, canary.p50_ms, "ms"),
        },
        measured("p95 latency (ms)", "ms"),
        measured("cost per call (USD)", "usd"),
    ]
    for row in rows:
        row.setdefault("words", "")
        row.setdefault("worse", "")
    return rows


class RouteCanaryAdmin(ClaudeAdmin):
    """The canary's panel on the route's page, and its four action pages."""

    def has_canary_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_claude.canary_modelroute")

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_canary"
        view = self.admin_site.admin_view(self.canary_view)
        return [
            path("<path:object_id>/canary/<str:action>/", view, name=name),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The route's page, with its canary panel."""
        extra = dict(extra_context or {})
        route = self.get_object(request, unquote(object_id))
        if route is not None:
            extra.update(self.canary_context(request, route))
        return super().change_view(request, object_id, form_url, extra)

    def canary_context(self, request: HttpRequest, route: ModelRoute) -> dict[str, Any]:
        """What the route's page shows of its canary: the running one with its
        arms compared, the last ones that ended, and the action links."""
        running = routing.running_canary(route.feature)
        context: dict[str, Any] = {
            "canary": running,
            "past_canaries": Canary.objects.filter(
                feature=route.feature, ended_at__isnull=False
            ).select_related("started_by", "ended_by")[:5],
            "can_run_canary": self.has_canary_permission(request),
        }
        if running is not None:
            comparison = guard.compare_arms(running)
            context["canary_rows"] = arm_rows(comparison.arms, comparison.findings)
        context["canary_urls"] = {
            action: admin_url(self.admin_site, ModelRoute, "canary", route.pk, action)
            for action in ACTIONS
        }
        return context

    def canary_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if action not in ACTIONS:
            raise Http404(_("No such canary action."))
        if not self.has_canary_permission(request):
            raise PermissionDenied
        route = self.get_object(request, unquote(object_id))
        if route is None:
            raise Http404(_("No such model route."))
        change_url = admin_url(self.admin_site, ModelRoute, "change", route.pk)
        running = routing.running_canary(route.feature)
        if action != "start" and running is None:
            self.message_user(request, _("This route has no canary running."), messages.WARNING)
            return HttpResponseRedirect(change_url)
        initial = {"percent": running.percent if running else 5}
        if running is not None:
            initial["canary_id"] = running.pk
        form = CanaryForm(action, request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                done = self._act(action, route, request, form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            except (routing.CanaryAlreadyRunning, routing.NoCanaryRunning) as exc:
                self.message_user(request, str(exc), messages.WARNING)
                return HttpResponseRedirect(change_url)
            else:
                self.message_user(request, done, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": TITLES[action] % {"route": route},
            "opts": self.opts,
            "route": route,
            "canary": running,
            "action": action,
            "form": form,
            "change_url": change_url,
        }
        if running is not None:
            comparison = guard.compare_arms(running)
            context["canary_rows"] = arm_rows(comparison.arms, comparison.findings)
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_claude/modelroute/canary_confirmation.html", context
        )

    def _act(self, action: str, route: ModelRoute, request: HttpRequest, data: Any) -> str:
        """Run ``action`` on ``route``'s canary; what to tell the user."""
        feature, user, reason = route.feature, request.user, data.get("reason") or ""
        shown = data.get("canary_id")
        act: dict[str, Callable[[], Canary]] = {
            "start": lambda: routing.start_canary(
                feature=feature,
                model=data["model"].strip(),
                fallback_model=(data.get("fallback_model") or "").strip(),
                percent=data["percent"],
                user=user,
                reason=reason,
                allow_unpriced=bool(data.get("allow_unpriced")),
            ),
            "percent": lambda: routing.set_canary_percent(
                feature=feature, percent=data["percent"], user=user, reason=reason, canary_id=shown
            ),
            "promote": lambda: routing.promote_canary(
                feature=feature, user=user, reason=reason, canary_id=shown
            ),
            "stop": lambda: routing.stop_canary(
                feature=feature, user=user, reason=reason, canary_id=shown
            ),
        }
        canary = act[action]()
        return str(
            DONE[action] % {"route": route, "model": canary.model, "percent": canary.percent}
        )


TITLES = {
    "start": _("Start a canary on %(route)s"),
    "percent": _("Change the canary's share on %(route)s?"),
    "promote": _("Promote the canary of %(route)s?"),
    "stop": _("Stop the canary of %(route)s?"),
}
DONE = {
    "start": _("Started a canary on %(route)s: %(model)s for %(percent)s%% of calls."),
    "percent": _("The canary %(model)s on %(route)s now gets %(percent)s%% of calls."),
    "promote": _("Promoted %(model)s: it serves every call of %(route)s now."),
    "stop": _("Stopped the canary %(model)s: every call of %(route)s is back on the route."),
}
