"""Query logic for the app's models, attached with ``as_manager()``."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django_claude.models import (  # noqa: F401 (used in strings)
        CallRecord,
        ModelPrice,
        ModelRouteChange,
        SmellBaseline,
    )


class CallRecordQuerySet(models.QuerySet["CallRecord"]):
    def for_feature(self, feature: str) -> CallRecordQuerySet:
        return self.filter(feature=feature)

    def health(self) -> dict[str, int]:
        """Counts that say whether a model is doing its job, in one query."""
        from django.db.models import Count, Q

        return self.aggregate(
            calls=Count("id"),
            fallbacks=Count("id", filter=Q(outcome="fallback")),
            degraded=Count("id", filter=Q(outcome="degraded")),
            smell_passed=Count("id", filter=Q(smell_verdict="pass")),
            smell_judged=Count("id", filter=Q(smell_verdict__in=["pass", "fail"])),
        )

    def unpriced(self) -> CallRecordQuerySet:
        """Calls a model answered whose model had no price."""
        return self.filter(cost_usd__isnull=True).exclude(model="")


class ModelPriceQuerySet(models.QuerySet["ModelPrice"]):
    def in_force(self, on: datetime.date) -> ModelPriceQuerySet:
        """Price rows effective on ``on``, newest first for each model."""
        return self.filter(effective_from__lte=on).order_by("model", "-effective_from")


class ModelRouteChangeQuerySet(models.QuerySet["ModelRouteChange"]):
    def undoable(self) -> ModelRouteChangeQuerySet:
        """Changes a rollback can still undo, newest first."""
        return self.filter(rolled_back=False, is_rollback=False).order_by("-id")


class SmellBaselineQuerySet(models.QuerySet["SmellBaseline"]):
    def latest_per_feature(self) -> list[SmellBaseline]:
        """The baseline in force for each feature (its newest row)."""
        newest: dict[str, SmellBaseline] = {}
        for baseline in self.order_by("feature", "-computed_at", "-id"):
            newest.setdefault(baseline.feature, baseline)
        return list(newest.values())
