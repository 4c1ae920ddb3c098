"""Canary rollouts: a share of a route's traffic sent to a candidate model.

A model of the app (``django_claude.models`` imports it); kept apart so
``models.py`` stays readable. ``django_claude.routing`` starts, changes,
promotes and stops canaries; nothing else writes these rows.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class CanaryStatus(models.TextChoices):
    RUNNING = "running", _("running")
    PROMOTED = "promoted", _("promoted")
    STOPPED = "stopped", _("stopped")
    TRIPPED = "tripped", _("stopped by its guard")


class Canary(models.Model):
    """One canary of one route, from its start to its promotion or stop.

    At most one canary of a feature runs at a time (a partial unique
    constraint, so even two processes starting one at once cannot both win).
    The rows stay after the canary ends: its calls keep its id
    (``CallRecord.canary_id``), and its evidence stays readable.
    """

    feature = models.CharField(_("feature"), max_length=100, blank=True)
    model = models.CharField(_("canary model"), max_length=100)
    fallback_model = models.CharField(
        _("canary fallback model"),
        max_length=100,
        blank=True,
        help_text=_("Blank: the route's fallback serves the canary's calls too."),
    )
    percent = models.DecimalField(
        _("share of traffic (%)"),
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal(100))],
    )
    # What the canary is compared with: the route as it was at the start. A
    # change of the route itself stops the canary (the comparison is over).
    control_model = models.CharField(_("control model"), max_length=100)
    control_fallback_model = models.CharField(
        _("control fallback model"), max_length=100, blank=True
    )
    status = models.CharField(
        _("status"), max_length=16, choices=CanaryStatus.choices, default=CanaryStatus.RUNNING
    )
    started_at = models.DateTimeField(_("started at"))
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("ended by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    end_reason = models.CharField(_("why it ended"), max_length=500, blank=True)
    # The guard's numbers when it stopped the canary (routing.evidence).
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("canary")
        verbose_name_plural = _("canaries")
        constraints = [
            models.UniqueConstraint(
                fields=["feature"],
                condition=models.Q(ended_at__isnull=True),
                name="dc_canary_one_running_per_route",
            ),
            models.CheckConstraint(
                condition=models.Q(percent__gt=0, percent__lte=100),
                name="dc_canary_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature or '(default)'}: {self.model} at {self.percent}%"

    @property
    def running(self) -> bool:
        return self.ended_at is None
