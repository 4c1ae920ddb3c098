"""Which model serves a feature: routes, their append-only history, and
canaries (a share of a route's traffic sent to a candidate model).

Models of the app (``django_claude.models`` imports them); kept apart so
``models.py`` stays readable. ``django_claude.routing`` changes routes and
runs canaries; nothing else writes these rows.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_claude.querysets import ModelRouteChangeQuerySet

CANARY_ACTIONS = [
    ("start", _("canary started")),
    ("percent", _("canary share changed")),
    ("promote", _("canary promoted")),
    ("stop", _("canary stopped")),
]


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


class ModelRoute(models.Model):
    """Which model serves a feature. ``feature=""`` is the default route."""

    feature = models.CharField(
        _("feature"),
        max_length=100,
        unique=True,
        blank=True,
        help_text=_("Leave blank for the default route of features without their own."),
    )
    model = models.CharField(_("model"), max_length=100)
    fallback_model = models.CharField(
        _("fallback model"),
        max_length=100,
        blank=True,
        help_text=_("Used when the model fails; blank for none."),
    )
    updated_at = models.DateTimeField(_("changed at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["feature"]
        verbose_name = _("model route")
        verbose_name_plural = _("model routes")
        permissions = [
            ("rollback_modelroute", _("Can roll back a model route")),
            ("canary_modelroute", _("Can start, change, promote and stop a canary")),
        ]

    def __str__(self) -> str:
        return self.feature or str(_("(default route)"))


class ModelRouteChange(models.Model):
    """One change of a route: append-only, the audit trail and the undo stack."""

    # Null once the route is removed (its feature stays below); a route made
    # for the feature again takes its history back.
    route = models.ForeignKey(
        ModelRoute,
        verbose_name=_("route"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="changes",
    )
    feature = models.CharField(_("feature"), max_length=100, blank=True)
    old_model = models.CharField(_("old model"), max_length=100, blank=True)
    old_fallback_model = models.CharField(_("old fallback model"), max_length=100, blank=True)
    new_model = models.CharField(_("new model"), max_length=100)
    new_fallback_model = models.CharField(_("new fallback model"), max_length=100, blank=True)
    changed_at = models.DateTimeField(_("changed at"), auto_now_add=True, db_index=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    is_rollback = models.BooleanField(_("rollback"), default=False)
    is_removal = models.BooleanField(
        _("removal"),
        default=False,
        help_text=_(
            "The feature's own route was removed: the new model is the one it falls back to."
        ),
    )
    rolled_back = models.BooleanField(
        _("rolled back"), default=False, help_text=_("Undone by a later rollback.")
    )
    # A canary's start, share change, promotion or stop (promotion is also a
    # model change, which a rollback undoes; the others change no model).
    canary = models.ForeignKey(
        "django_claude.Canary",
        verbose_name=_("canary"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="changes",
    )
    canary_action = models.CharField(
        _("canary action"), max_length=16, blank=True, choices=CANARY_ACTIONS
    )
    old_percent = models.DecimalField(
        _("old share (%)"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    new_percent = models.DecimalField(
        _("new share (%)"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    automatic = models.BooleanField(
        _("by django-claude"),
        default=False,
        help_text=_("Made by the canary guard, not a person; the reason holds its evidence."),
    )

    objects = ModelRouteChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("model route change")
        verbose_name_plural = _("model route changes")
        indexes = [models.Index(fields=["route", "-id"], name="dc_routechange_route_id")]

    def __str__(self) -> str:
        name = self.feature or "(default)"
        if self.canary_action:
            return f"{name} canary {self.canary_action}: {self.new_model}"
        verb = "rollback" if self.is_rollback else "removal" if self.is_removal else "change"
        return f"{name} {verb}: {self.old_model} -> {self.new_model}"

    def summary(self) -> str:
        """What changed, in a few words: "claude-a -> claude-b (rollback)",
        "canary started: claude-b at 10.00%"..."""
        canary = self.canary.model if self.canary_id and self.canary else ""
        if self.canary_action == "start":
            return f"canary started: {canary} at {self.new_percent}%"
        if self.canary_action == "percent":
            return f"canary {canary}: {self.old_percent}% -> {self.new_percent}%"
        if self.canary_action == "promote":
            return f"canary promoted: {self.old_model} -> {self.new_model}"
        if self.canary_action == "stop":
            by = " by django-claude" if self.automatic else ""
            return f"canary stopped{by}: {canary}, everyone on {self.new_model}"
        suffix = (
            " (rollback)" if self.is_rollback else " (route removed)" if self.is_removal else ""
        )
        return f"{self.old_model} -> {self.new_model}{suffix}"
