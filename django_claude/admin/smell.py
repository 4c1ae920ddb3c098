"""The smell test: failed answers kept for review, each feature's baseline
next to its pass rate now, and the alerts."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_claude.admin.base import ReadOnlyAdmin, admin_link, percent
from django_claude.models import CallRecord, SmellAlert, SmellBaseline, SmellFailure
from django_claude.querysets import count_subquery
from django_claude.smell.alerts import LOOKBACK, WINDOW
from django_claude.types import SmellVerdict


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
        return admin_link(self.admin_site, CallRecord, obj.call_id, obj.call_id)


def recent_verdicts(now: datetime.datetime) -> dict[str, Any]:
    """Per baseline row, its feature's pass rate now, as annotations:
    ``window_passed`` and ``window_judged`` count the newest ``WINDOW`` judged
    calls of the ``LOOKBACK`` before ``now`` (what the alert compares), and
    ``alert_is_open`` says whether the feature has an alert not yet recovered.
    """
    window = (
        CallRecord.objects.judged()
        .filter(feature=OuterRef(OuterRef("feature")), created_at__gte=now - LOOKBACK)
        .newest(WINDOW)
    )
    return {
        "window_passed": count_subquery(window.filter(smell_verdict=SmellVerdict.PASS)),
        "window_judged": count_subquery(window),
        "alert_is_open": Exists(
            SmellAlert.objects.filter(feature=OuterRef("feature"), ended_at__isnull=True)
        ),
    }


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[SmellBaseline]:
        return super().get_queryset(request).annotate(**recent_verdicts(timezone.now()))

    @admin.display(description=_("baseline"), ordering="pass_rate")
    def pass_rate_display(self, obj: SmellBaseline) -> str:
        return f"{obj.pass_rate:.1f}%"

    @admin.display(description=_("pass rate now"))
    def recent_pass_rate(self, obj: Any) -> str:
        return percent(obj.window_passed, obj.window_judged)

    @admin.display(description=_("judged (24 h)"), ordering="window_judged")
    def recent_judged(self, obj: Any) -> int:
        return int(obj.window_judged)

    @admin.display(description=_("alert open"), boolean=True, ordering="alert_is_open")
    def alert_open(self, obj: Any) -> bool:
        return bool(obj.alert_is_open)


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
