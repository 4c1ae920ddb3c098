"""The cost ledger: daily rollups, budget alerts, and our cost beside
Anthropic's per UTC day and model.

Models of the app (``django_claude.models`` imports them); kept apart so
``models.py`` stays readable.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DailyCost(models.Model):
    """One day's calls and cost for one feature and model (the site's time zone).

    Written by the rollup (``claude_cost_report --save``, the beat task):
    rerunning a day replaces its rows, never duplicates them.
    """

    day = models.DateField(_("day"))
    feature = models.CharField(_("feature"), max_length=100)
    model = models.CharField(_("model"), max_length=100, blank=True)
    calls = models.PositiveIntegerField(_("calls"), default=0)
    input_tokens = models.BigIntegerField(_("input tokens"), default=0)
    output_tokens = models.BigIntegerField(_("output tokens"), default=0)
    cache_read_input_tokens = models.BigIntegerField(_("cache read tokens"), default=0)
    cache_creation_input_tokens = models.BigIntegerField(_("cache write tokens"), default=0)
    cost_usd = models.DecimalField(_("cost (USD)"), max_digits=20, decimal_places=10, default=0)
    web_search_requests = models.PositiveIntegerField(_("web searches"), default=0)
    tool_cost_usd = models.DecimalField(
        _("tool fees (USD)"), max_digits=20, decimal_places=10, default=0
    )
    unpriced_calls = models.PositiveIntegerField(_("unpriced calls"), default=0)
    fallback_calls = models.PositiveIntegerField(_("fallback calls"), default=0)
    degraded_calls = models.PositiveIntegerField(_("degraded calls"), default=0)
    error_calls = models.PositiveIntegerField(_("error calls"), default=0)
    limited_calls = models.PositiveIntegerField(_("calls refused by a quota"), default=0)
    cached_calls = models.PositiveIntegerField(_("cached calls"), default=0)
    smell_passed = models.PositiveIntegerField(_("smell tests passed"), default=0)
    smell_judged = models.PositiveIntegerField(_("smell tests judged"), default=0)
    latency_p50_ms = models.FloatField(_("latency p50 (ms)"), null=True, blank=True)
    latency_p95_ms = models.FloatField(_("latency p95 (ms)"), null=True, blank=True)
    computed_at = models.DateTimeField(_("computed at"), auto_now=True)

    class Meta:
        ordering = ["-day", "feature", "model"]
        verbose_name = _("daily cost")
        verbose_name_plural = _("daily costs")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "feature", "model"], name="dc_dailycost_day_feature_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.feature} {self.model}: ${self.cost_usd}"


class BudgetAlert(models.Model):
    """A budget threshold crossed: one row per feature, day and threshold, so
    each alert goes out once whatever process checks."""

    day = models.DateField(_("day"))
    feature = models.CharField(_("feature"), max_length=100)
    threshold = models.PositiveSmallIntegerField(_("threshold (%)"))
    cost_usd = models.DecimalField(_("cost (USD)"), max_digits=20, decimal_places=10)
    budget_usd = models.DecimalField(_("budget (USD)"), max_digits=14, decimal_places=4)
    created_at = models.DateTimeField(_("sent at"), auto_now_add=True)

    class Meta:
        ordering = ["-day", "feature", "threshold"]
        verbose_name = _("budget alert")
        verbose_name_plural = _("budget alerts")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "feature", "threshold"], name="dc_budgetalert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.feature} {self.day}: {self.threshold}% of ${self.budget_usd}"


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
