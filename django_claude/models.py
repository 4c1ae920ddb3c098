"""The app's tables: one row per call, and the prices calls are billed at."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_claude.indexes import CoveringIndex
from django_claude.querysets import CallRecordQuerySet, SmellBaselineQuerySet
from django_claude.types import Outcome, SmellVerdict

OUTCOME_LABELS = {
    Outcome.OK: _("ok"),
    Outcome.FALLBACK: _("fallback"),
    Outcome.CACHED: _("cached"),
    Outcome.DEGRADED: _("degraded"),
    Outcome.ERROR: _("caller error"),
    Outcome.INTERRUPTED: _("interrupted"),
    Outcome.LIMITED: _("limited by a quota"),
}
VERDICT_LABELS = {
    SmellVerdict.NOT_SAMPLED: _("not sampled"),
    SmellVerdict.PENDING: _("pending"),
    SmellVerdict.PASS: _("pass"),
    SmellVerdict.FAIL: _("fail"),
    SmellVerdict.ERROR: _("error"),
}
ARM_CHOICES = [("", _("no canary")), ("control", _("control")), ("canary", _("canary"))]
OUTCOME_CHOICES = [(outcome.value, label) for outcome, label in OUTCOME_LABELS.items()]
VERDICT_CHOICES = [(verdict.value, label) for verdict, label in VERDICT_LABELS.items()]


class CallRecord(models.Model):
    """One call to ``django_claude.call``: never the prompt or the answer."""

    id = models.UUIDField(_("request id"), primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(_("created at"), db_index=True)
    feature = models.CharField(_("feature"), max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,  # a record must never fail because a user was deleted
    )
    user_ref = models.CharField(_("user reference"), max_length=150, blank=True)
    tenant = models.CharField(_("tenant"), max_length=200, blank=True)
    model_requested = models.CharField(_("model requested"), max_length=100)
    model = models.CharField(_("model"), max_length=100, blank=True)
    outcome = models.CharField(
        _("outcome"),
        max_length=16,
        choices=[(o.value, label) for o, label in OUTCOME_LABELS.items()],
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    attempt_log = models.JSONField(_("attempts detail"), default=list, blank=True)
    fallback_used = models.BooleanField(_("fallback used"), default=False)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), default=0)
    input_tokens = models.PositiveIntegerField(_("input tokens"), default=0)
    output_tokens = models.PositiveIntegerField(_("output tokens"), default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(_("cache write tokens"), default=0)
    cache_creation_1h_input_tokens = models.PositiveIntegerField(
        _("1-hour cache write tokens"), default=0
    )
    cache_read_input_tokens = models.PositiveIntegerField(_("cache read tokens"), default=0)
    # What else the bill depends on, as Anthropic reported it in the usage.
    web_search_requests = models.PositiveIntegerField(_("web searches"), default=0)
    web_fetch_requests = models.PositiveIntegerField(_("web fetches"), default=0)
    inference_geo = models.CharField(_("inference geo"), max_length=16, blank=True)
    speed = models.CharField(_("speed"), max_length=16, blank=True)
    service_tier = models.CharField(_("service tier"), max_length=16, blank=True)
    # Code execution: the tool's runs and the container they ran in. Its
    # hours are billed per day: claude_reconcile shares the day's fee out, and
    # a call's share is also in its cost_usd and tool_cost_usd once it is priced.
    code_execution_requests = models.PositiveIntegerField(_("code executions"), default=0)
    container_id = models.CharField(_("container"), max_length=100, blank=True)
    code_execution_usd = models.DecimalField(
        _("code execution fee (USD)"), max_digits=18, decimal_places=10, default=Decimal(0)
    )
    stop_reason = models.CharField(_("stop reason"), max_length=32, blank=True)
    cost_usd = models.DecimalField(
        _("cost (USD)"), max_digits=18, decimal_places=10, null=True, blank=True
    )
    # Server-tool fees (web search) in cost_usd: a column of its own, so the
    # daily report sums it from the covering index.
    tool_cost_usd = models.DecimalField(
        _("tool fees (USD)"), max_digits=18, decimal_places=10, default=Decimal(0)
    )
    # USD of input, output, cache reads, 5-minute and 1-hour writes, tools.
    cost_breakdown = models.JSONField(_("cost breakdown (USD)"), default=dict, blank=True)
    prompt_prefix = models.CharField(_("prompt prefix (redacted)"), max_length=100, blank=True)
    error_type = models.CharField(_("error type"), max_length=64, blank=True)
    error_status = models.PositiveSmallIntegerField(_("error status"), null=True, blank=True)
    upstream_request_id = models.CharField(_("upstream request id"), max_length=64, blank=True)
    smell_verdict = models.CharField(
        _("smell-test verdict"),
        max_length=16,
        choices=VERDICT_CHOICES,
        default=SmellVerdict.NOT_SAMPLED.value,
    )
    judged_at = models.DateTimeField(_("judged at"), null=True, blank=True)
    tags = models.JSONField(_("tags"), default=dict, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    # Which arm of a canary served the call ("" when its route had none).
    arm = models.CharField(_("arm"), max_length=8, blank=True, choices=ARM_CHOICES)
    canary_id = models.PositiveIntegerField(_("canary"), null=True, blank=True)
    # The call's OpenTelemetry span, when one was recorded (hex).
    trace_id = models.CharField(_("trace id"), max_length=32, blank=True)
    span_id = models.CharField(_("span id"), max_length=16, blank=True)

    objects = CallRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("call record")
        verbose_name_plural = _("call records")
        indexes = [
            # Covering (PostgreSQL): the daily report and the budget check are
            # index-only scans, already in feature order for the GROUP BY.
            CoveringIndex(
                fields=["feature", "created_at"],
                name="dc_call_feature_created",
                covering=[
                    "model",
                    "outcome",
                    "cost_usd",
                    "latency_ms",
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "web_search_requests",
                    "tool_cost_usd",
                ],
            ),
            models.Index(fields=["model", "created_at"], name="dc_call_model_created"),
            # The canary guard's per-arm counts and latency percentiles; only
            # calls of a canary's route are in it.
            models.Index(
                fields=["canary_id", "arm", "latency_ms"],
                name="dc_call_canary_arm",
                condition=models.Q(canary_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature} {self.outcome} {self.id}"

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None


class ModelPrice(models.Model):
    """A site's own price for a model, in USD per million tokens, from a day on.

    It overrides Anthropic's list price (from genai-prices) for that model:
    a negotiated rate, or a model the installed genai-prices does not know.
    A new price is a new row: the cost already stored on past calls never changes.
    """

    model = models.CharField(_("model id"), max_length=100)
    effective_from = models.DateField(_("effective from"))
    input_per_mtok = models.DecimalField(_("input"), max_digits=12, decimal_places=4)
    output_per_mtok = models.DecimalField(_("output"), max_digits=12, decimal_places=4)
    cache_write_5m_per_mtok = models.DecimalField(
        _("5-minute cache write"), max_digits=12, decimal_places=4
    )
    cache_write_1h_per_mtok = models.DecimalField(
        _("1-hour cache write"), max_digits=12, decimal_places=4
    )
    cache_read_per_mtok = models.DecimalField(_("cache read"), max_digits=12, decimal_places=4)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"], name="dc_price_model_effective_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from}"


class SmellFailure(models.Model):
    """A call the judge failed: its full request and answer, redacted, for review.

    Only people with ``view_smellfailure`` see these; they are purged after
    ``DJANGO_CLAUDE_FAILURE_RETENTION_DAYS``.
    """

    call = models.ForeignKey(
        CallRecord, verbose_name=_("call"), on_delete=models.CASCADE, related_name="+"
    )
    feature = models.CharField(_("feature"), max_length=100, db_index=True)
    model = models.CharField(_("model"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("failed at"), auto_now_add=True, db_index=True)
    prompt = models.TextField(_("prompt (redacted)"))
    response = models.TextField(_("response (redacted)"))
    judge_answer = models.CharField(_("judge's answer"), max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("smell-test failure")
        verbose_name_plural = _("smell-test failures")

    def __str__(self) -> str:
        return f"{self.feature} {self.call_id}"


class SmellBaseline(models.Model):
    """A feature's expected pass rate; the newest row of a feature is in force."""

    class Source(models.TextChoices):
        FILE = "file", _("judged from a history file")
        RECORDS = "records", _("recorded verdicts")

    feature = models.CharField(_("feature"), max_length=100)
    pass_rate = models.FloatField(_("pass rate (%)"))
    sample_size = models.PositiveIntegerField(_("sample size"))
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    computed_at = models.DateTimeField(_("computed at"), auto_now_add=True)

    objects = SmellBaselineQuerySet.as_manager()

    class Meta:
        ordering = ["feature", "-computed_at"]
        verbose_name = _("smell-test baseline")
        verbose_name_plural = _("smell-test baselines")
        indexes = [models.Index(fields=["feature", "-computed_at"], name="dc_baseline_feature")]

    def __str__(self) -> str:
        return f"{self.feature}: {self.pass_rate:.1f}% of {self.sample_size}"


class SmellAlert(models.Model):
    """An episode of a pass rate under its baseline: opened once, closed on recovery."""

    feature = models.CharField(_("feature"), max_length=100)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    ended_at = models.DateTimeField(_("recovered at"), null=True, blank=True)
    baseline_pass_rate = models.FloatField(_("baseline (%)"))
    recent_pass_rate = models.FloatField(_("pass rate at alert (%)"))
    judged = models.PositiveIntegerField(_("judged calls"))

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("smell-test alert")
        verbose_name_plural = _("smell-test alerts")
        constraints = [
            models.UniqueConstraint(
                fields=["feature"],
                condition=models.Q(ended_at__isnull=True),
                name="dc_smellalert_one_open_per_feature",
            )
        ]

    def __str__(self) -> str:
        return f"{self.feature} since {self.started_at:%Y-%m-%d %H:%M}"


# In modules of their own: the cost ledger (rollups, budget alerts,
# reconciliations), and model routes with their history and canaries.
from django_claude.ledger import BudgetAlert, DailyCost, Reconciliation  # noqa: E402, F401
from django_claude.rollouts import (  # noqa: E402, F401
    Canary,
    CanaryStatus,
    ModelRoute,
    ModelRouteChange,
)
