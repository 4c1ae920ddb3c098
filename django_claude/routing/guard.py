"""The canary guard: compare a canary's arms, and stop a worse canary.

``check_canaries`` (the ``django_claude.tasks.check_canaries`` beat task,
every minute) reads each running canary's calls by arm, compares them
(``routing.evidence``), and stops a canary that is worse, once, by
"django-claude": the evidence goes in the route's history, a WARNING log
line, the ``canary_stopped`` signal and, when ``ADMINS`` is set, a mail.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from decimal import Decimal

from django.core.mail import mail_admins
from django.db import connections, router
from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, Greatest

from django_claude.conf import conf
from django_claude.models import CallRecord, Canary
from django_claude.routing.canaries import NoCanaryRunning, stop_canary
from django_claude.routing.evidence import ArmStats, Finding, Limits, Tally, compare
from django_claude.routing.table import CANARY, CONTROL
from django_claude.types import Outcome, SmellVerdict

logger = logging.getLogger("django_claude.canary")

# What a canary is judged on: calls that reached a model. A reused answer or
# a call a quota refused says nothing about the model.
NOT_SERVED = (Outcome.CACHED, Outcome.LIMITED)
FAILED = (Outcome.DEGRADED, Outcome.ERROR)
# Calls whose last request was answered: every other request they made failed.
ANSWERED = (Outcome.OK, Outcome.FALLBACK, Outcome.INTERRUPTED)
JUDGED = (SmellVerdict.PASS, SmellVerdict.FAIL)


def limits() -> Limits:
    return Limits(
        alpha=conf.CANARY_ALPHA,
        min_calls=conf.CANARY_MIN_CALLS,
        max_latency_ratio=conf.CANARY_MAX_LATENCY_RATIO,
        max_cost_ratio=conf.CANARY_MAX_COST_RATIO,
    )


def _percentile(rows: QuerySet[CallRecord], n: int, share: float) -> int | None:
    """The nearest-rank percentile of ``rows``' latency (``n`` rows)."""
    if n == 0:
        return None
    rank = max(0, math.ceil(share * n) - 1)
    return rows.order_by("latency_ms").values_list("latency_ms", flat=True)[rank]


# Per unit (whom the canary assigns: a user, else a tenant, else the call),
# the events of each rate and the bad ones among them.
RATES = {
    "failures": ("calls", "failed"),
    "fallbacks": ("calls", "fell_back"),
    "upstream": ("requests", "failed_requests"),
    "smell": ("judged", "judged_failed"),
}


def _unit() -> Case:
    return Case(
        When(~Q(user_ref=""), then=Concat(Value("u:"), "user_ref")),
        When(~Q(tenant=""), then=Concat(Value("t:"), "tenant")),
        default=Concat(Value("c:"), Cast("id", CharField())),
        output_field=CharField(),
    )


def _tallies(served: QuerySet[CallRecord]) -> dict[str, dict[str, Tally]]:
    """Per arm, a ``Tally`` of each rate, summed over units in the database."""
    per_unit = (
        served.annotate(unit=_unit())
        .values("arm", "unit")
        .annotate(
            calls=Count("pk"),
            failed=Count("pk", filter=Q(outcome__in=FAILED)),
            fell_back=Count("pk", filter=Q(fallback_used=True)),
            requests=Sum("attempts"),
            # A call whose last request was answered failed all its others.
            failed_requests=Sum(
                Case(
                    When(outcome__in=ANSWERED, then=Greatest(F("attempts") - 1, Value(0))),
                    default=F("attempts"),
                    output_field=IntegerField(),
                )
            ),
            judged=Count("pk", filter=Q(smell_verdict__in=JUDGED)),
            judged_failed=Count("pk", filter=Q(smell_verdict=SmellVerdict.FAIL)),
        )
        .order_by()
    )
    inner, params = per_unit.query.sql_with_params()
    sums = ", ".join(
        f"SUM({bad}), SUM({total}), SUM({bad} * {bad}), SUM({total} * {total}), "
        f"SUM({bad} * {total})"
        for total, bad in RATES.values()
    )
    database = router.db_for_read(CallRecord)
    with connections[database].cursor() as cursor:
        cursor.execute(
            f"SELECT arm, COUNT(*), {sums} FROM ({inner}) per_unit GROUP BY arm",  # noqa: S608
            params,
        )
        rows = cursor.fetchall()
    tallies: dict[str, dict[str, Tally]] = {}
    for arm, units, *numbers in rows:
        tallies[arm] = {}
        for index, name in enumerate(RATES):
            bad, total, bad_sq, total_sq, cross = (
                n or 0 for n in numbers[5 * index : 5 * index + 5]
            )
            tallies[arm][name] = Tally(
                int(bad), int(total), int(units), float(bad_sq), float(total_sq), float(cross)
            )
    return tallies


def arm_stats(canary: Canary) -> dict[str, ArmStats]:
    """Each arm's rates, latency percentiles and mean cost per call."""
    served = CallRecord.objects.filter(canary_id=canary.pk).exclude(outcome__in=NOT_SERVED)
    stats = {CONTROL: ArmStats(), CANARY: ArmStats()}
    tallies = _tallies(served)
    costs = served.values("arm").annotate(
        timed=Count("pk", filter=~Q(outcome=Outcome.INTERRUPTED)),
        with_cost=Count("cost_usd"),
        cost=Sum("cost_usd"),
    )
    for row in costs:
        arm = row["arm"]
        if arm not in stats or arm not in tallies:
            continue
        # A stream cut off early says nothing of how long a whole answer takes.
        timed = served.filter(arm=arm).exclude(outcome=Outcome.INTERRUPTED)
        stats[arm] = ArmStats(
            calls=tallies[arm]["failures"].total,
            **tallies[arm],
            p50_ms=_percentile(timed, row["timed"], 0.50),
            p95_ms=_percentile(timed, row["timed"], 0.95),
            cost_per_call=(
                Decimal(row["cost"]) / row["with_cost"]
                if row["with_cost"] and row["cost"]
                else None
            ),
        )
    return stats


@dataclass
class Comparison:
    canary: Canary
    arms: dict[str, ArmStats]
    findings: list[Finding]

    @property
    def worse(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.worse]

    def evidence(self) -> dict[str, object]:
        return {
            "canary_id": self.canary.pk,
            "model": self.canary.model,
            "control_model": self.canary.control_model,
            "calls": {arm: stats.calls for arm, stats in self.arms.items()},
            "worse": [finding.as_evidence() for finding in self.worse],
            "findings": [finding.as_evidence() for finding in self.findings],
        }

    def reason(self) -> str:
        """What the history says of an automatic stop, in words."""
        parts = []
        for finding in self.worse:
            shown = _shown(finding)
            parts.append(f"{finding.measure} {shown} ({finding.words})")
        calls = self.arms[CANARY].calls, self.arms[CONTROL].calls
        return (
            f"The canary {self.canary.model} is worse than {self.canary.control_model}: "
            + "; ".join(parts)
            + f"; over {calls[0]} canary and {calls[1]} control calls."
        )


def _shown(finding: Finding) -> str:
    def value(number: float | None) -> str:
        if number is None:
            return "-"
        if "rate" in finding.measure:
            return f"{number * 100:.1f}%"
        if "cost" in finding.measure:
            return f"${number:.6f}"
        return f"{number:.0f}"

    return f"{value(finding.canary)} vs {value(finding.control)}"


def compare_arms(canary: Canary) -> Comparison:
    arms = arm_stats(canary)
    return Comparison(canary, arms, compare(arms[CANARY], arms[CONTROL], limits()))


def check_canaries() -> list[Canary]:
    """Compare every running canary with its control; stop each that is
    worse. Returns the canaries stopped."""
    stopped = []
    for canary in Canary.objects.filter(ended_at__isnull=True):
        comparison = compare_arms(canary)
        if not comparison.worse:
            continue
        reason = comparison.reason()
        evidence = comparison.evidence()
        try:
            stop_canary(
                feature=canary.feature,
                canary_id=canary.pk,
                reason=reason,
                automatic=True,
                evidence=evidence,
            )
        except NoCanaryRunning:
            continue  # stopped or promoted meanwhile, by a person or another worker
        _announce(canary, reason, evidence)
        stopped.append(canary)
    return stopped


def _announce(canary: Canary, reason: str, evidence: dict[str, object]) -> None:
    line = {
        "event": "claude.canary_stopped",
        "feature": canary.feature,
        "canary_id": canary.pk,
        "model": canary.model,
        "control_model": canary.control_model,
        "reason": reason,
        "worse": evidence["worse"],
    }
    logger.warning(json.dumps(line, default=str))
    mail_admins(
        f"Claude canary stopped: {canary.feature or '(default route)'} is back on "
        f"{canary.control_model}",
        f"django-claude stopped the canary of {canary.feature or '(default route)'} "
        f"({canary.model} at {canary.percent}% of calls).\n\n{reason}\n",
        fail_silently=True,
    )
