"""Query logic for the app's models, attached with ``as_manager()``."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    _CallRecordBase = models.QuerySet[Any]
    _ModelPriceBase = models.QuerySet[Any]
else:
    _CallRecordBase = _ModelPriceBase = models.QuerySet


class CallRecordQuerySet(_CallRecordBase):
    def for_feature(self, feature: str) -> CallRecordQuerySet:
        return self.filter(feature=feature)

    def unpriced(self) -> CallRecordQuerySet:
        return self.filter(cost_usd__isnull=True).exclude(model="")


class ModelPriceQuerySet(_ModelPriceBase):
    def in_force(self, on: datetime.date) -> ModelPriceQuerySet:
        """The newest price row of each model that is effective on ``on``."""
        return self.filter(effective_from__lte=on).order_by("model", "-effective_from")
