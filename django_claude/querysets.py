"""Query logic for the app's models, attached with ``as_manager()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Count, IntegerField, Q, Subquery, Value
from django.db.models.functions import Coalesce

from django_claude.types import Outcome, SmellVerdict

if TYPE_CHECKING:
    from django_claude.models import (  # noqa: F401 (used in strings)
        CallRecord,
        ModelRouteChange,
        SmellBaseline,
    )

# Verdicts that count towards a pass rate (not pending, not a judge error).
JUDGED = (SmellVerdict.PASS, SmellVerdict.FAIL)

# Whether a model is doing its job: each count and the calls it counts.
HEALTH_COUNTS = {
    "calls": Q(),
    "fallbacks": Q(outcome=Outcome.FALLBACK),
    "degraded": Q(outcome=Outcome.DEGRADED),
    "smell_passed": Q(smell_verdict=SmellVerdict.PASS),
    "smell_judged": Q(smell_verdict__in=JUDGED),
}


def count_subquery(queryset: models.QuerySet[Any]) -> Coalesce:
    """How many rows ``queryset`` has, as one scalar subquery for ``annotate()``.

    ``queryset`` names the annotated row with ``OuterRef``. The constant it is
    grouped by adds no GROUP BY, so the subquery is one aggregate row, and 0
    when nothing matches.
    """
    counted = (
        queryset.order_by()
        .annotate(counted_in=Value(1))
        .values("counted_in")
        .annotate(row_count=Count("pk"))
        .values("row_count")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class CallRecordQuerySet(models.QuerySet["CallRecord"]):
    def judged(self) -> CallRecordQuerySet:
        """Calls the smell-test judge passed or failed."""
        return self.filter(smell_verdict__in=JUDGED)

    def newest(self, limit: int) -> CallRecordQuerySet:
        """Only the newest ``limit`` of these calls, still a queryset to count.

        The window is a subquery (``id IN (... ORDER BY created_at DESC LIMIT
        limit)``), so an ``OuterRef`` in this queryset is one level deeper:
        write ``OuterRef(OuterRef(name))`` for the row a subquery annotates.
        """
        window = self.order_by("-created_at").values("id")[:limit]
        return self.model.objects.filter(id__in=window)

    def health(self) -> dict[str, int]:
        """Counts that say whether a model is doing its job, in one query."""
        return self.aggregate(
            **{name: Count("id", filter=calls) for name, calls in HEALTH_COUNTS.items()}
        )

    def health_subqueries(self) -> dict[str, Coalesce]:
        """The counts of ``health()``, each a scalar subquery for ``annotate()``."""
        return {name: count_subquery(self.filter(calls)) for name, calls in HEALTH_COUNTS.items()}

    def unpriced(self) -> CallRecordQuerySet:
        """Calls a model answered whose model had no price."""
        return self.filter(cost_usd__isnull=True).exclude(model="")


class ModelRouteChangeQuerySet(models.QuerySet["ModelRouteChange"]):
    def undoable(self) -> ModelRouteChangeQuerySet:
        """Changes a rollback can still undo, newest first."""
        return (
            self.filter(rolled_back=False, is_rollback=False)
            .exclude(canary_action__in=["start", "percent", "stop"])
            .order_by("-id")
        )


class SmellBaselineQuerySet(models.QuerySet["SmellBaseline"]):
    def latest_per_feature(self) -> list[SmellBaseline]:
        """The baseline in force for each feature (its newest row)."""
        newest: dict[str, SmellBaseline] = {}
        for baseline in self.order_by("feature", "-computed_at", "-id"):
            newest.setdefault(baseline.feature, baseline)
        return list(newest.values())
