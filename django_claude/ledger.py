"""The reconciliation ledger: our cost beside Anthropic's, per UTC day and model.

A model of the app (``django_claude.models`` imports it); kept apart so
``models.py`` stays readable.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Reconciliation(models.Model):
    """One UTC day and model of ``manage.py claude_reconcile``: what we recorded,
    what Anthropic's cost report says, and whether they agree within
    ``DJANGO_CLAUDE_RECONCILE_TOLERANCE``. A later run over the same days
    replaces their rows."""

    day = models.DateField(_("day (UTC)"))
    model = models.CharField(_("model"), max_length=100)
    our_cost_usd = models.DecimalField(_("our cost (USD)"), max_digits=18, decimal_places=10)
    their_cost_usd = models.DecimalField(
        _("Anthropic's cost (USD)"), max_digits=18, decimal_places=10
    )
    difference_usd = models.DecimalField(
        _("difference (USD)"),
        max_digits=18,
        decimal_places=10,
        help_text=_("Ours minus Anthropic's."),
    )
    unpriced_calls = models.PositiveIntegerField(_("unpriced calls"), default=0)
    within_tolerance = models.BooleanField(_("within tolerance"))
    checked_at = models.DateTimeField(_("checked at"), auto_now=True)

    class Meta:
        app_label = "django_claude"
        ordering = ["-day", "model"]
        verbose_name = _("reconciliation")
        verbose_name_plural = _("reconciliations")
        constraints = [
            models.UniqueConstraint(fields=["day", "model"], name="dc_reconcile_day_model")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model}"
