"""Query logic for the app's models, attached with ``as_manager()``."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django_claude.models import CallRecord, ModelPrice  # noqa: F401 (used in strings)


class CallRecordQuerySet(models.QuerySet["CallRecord"]):
    def for_feature(self, feature: str) -> CallRecordQuerySet:
        return self.filter(feature=feature)

    def unpriced(self) -> CallRecordQuerySet:
        """Calls a model answered whose model had no price."""
        return self.filter(cost_usd__isnull=True).exclude(model="")


class ModelPriceQuerySet(models.QuerySet["ModelPrice"]):
    def in_force(self, on: datetime.date) -> ModelPriceQuerySet:
        """Price rows effective on ``on``, newest first for each model."""
        return self.filter(effective_from__lte=on).order_by("model", "-effective_from")
