"""The pass-rate alert: each feature's recent pass rate against its baseline.

A significant drop opens one alert episode (a log line, a signal, a mail to
the admins); getting back within half the drop closes it.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from django.core.mail import mail_admins
from django.db.models import Count, Q
from django.utils import timezone

from django_claude.conf import conf
from django_claude.models import CallRecord, SmellAlert, SmellBaseline
from django_claude.querysets import JUDGED
from django_claude.signals import smell_pass_rate_dropped
from django_claude.smell.verdicts import close_stale_verdicts
from django_claude.types import SmellVerdict

# The README names this logger for the alert lines.
logger = logging.getLogger("django_claude.smell")

# The alert compares the last WINDOW judged calls (within LOOKBACK) with the
# baseline. Below MIN_SAMPLE judged calls nothing is concluded; see should_alert.
WINDOW = 200
LOOKBACK = datetime.timedelta(hours=24)
MIN_SAMPLE = 30
Z_ONE_SIDED_99 = 2.326


@dataclass(frozen=True)
class PassRate:
    passed: int
    judged: int

    @property
    def rate(self) -> float:
        """Percent of judged calls that passed."""
        return 100.0 * self.passed / self.judged if self.judged else 0.0


def recent_pass_rate(feature: str, *, now: datetime.datetime | None = None) -> PassRate:
    """The pass rate of the last ``WINDOW`` judged calls of the last 24 hours."""
    since = (now or timezone.now()) - LOOKBACK
    ids = (
        CallRecord.objects.filter(feature=feature, created_at__gte=since, smell_verdict__in=JUDGED)
        .order_by("-created_at")
        .values("id")[:WINDOW]
    )
    counts = CallRecord.objects.filter(id__in=ids).aggregate(
        judged=Count("id"), passed=Count("id", filter=Q(smell_verdict=SmellVerdict.PASS))
    )
    return PassRate(passed=counts["passed"] or 0, judged=counts["judged"] or 0)


def should_alert(*, baseline: float, recent: PassRate, drop: float) -> bool:
    """Alert when the recent rate is ``drop`` points or more under the baseline
    and the drop is unlikely to be noise.

    Noise guard: at least ``MIN_SAMPLE`` judged calls, and the shortfall must
    exceed a one-sided 99% binomial margin around the baseline,
    ``2.326 * sqrt(p(1-p)/n)``. With 200 calls at a 90% baseline that margin is
    4.9 points, so a real 5-point drop alerts while the ordinary wobble of a
    small sample does not.
    """
    if recent.judged < MIN_SAMPLE:
        return False
    shortfall = baseline - recent.rate
    if shortfall < drop:
        return False
    p = min(max(baseline / 100.0, 0.0), 1.0)
    margin = 100.0 * Z_ONE_SIDED_99 * math.sqrt(p * (1 - p) / recent.judged)
    return shortfall > margin


def has_recovered(*, baseline: float, recent: PassRate, drop: float) -> bool:
    """Half the alert drop, so an episode does not flap open and shut."""
    return recent.judged >= MIN_SAMPLE and baseline - recent.rate < drop / 2


def check_pass_rates(*, now: datetime.datetime | None = None) -> list[str]:
    """Close stale pending verdicts, then compare each feature with its
    baseline, opening or closing alert episodes.

    Returns what happened, e.g. ``["alert:support", "recovered:chat"]``.
    """
    now = now or timezone.now()
    close_stale_verdicts(now=now)
    events: list[str] = []
    drop = conf.SMELL_ALERT_DROP
    for baseline in SmellBaseline.objects.latest_per_feature():
        recent = recent_pass_rate(baseline.feature, now=now)
        episode = SmellAlert.objects.filter(feature=baseline.feature, ended_at__isnull=True).first()
        if episode is None and should_alert(baseline=baseline.pass_rate, recent=recent, drop=drop):
            _open_episode(baseline, recent)
            events.append(f"alert:{baseline.feature}")
        elif episode is not None and has_recovered(
            baseline=baseline.pass_rate, recent=recent, drop=drop
        ):
            episode.ended_at = now
            episode.save(update_fields=["ended_at"])
            logger.info(json.dumps({"event": "claude.smell_recovered", **_line(baseline, recent)}))
            events.append(f"recovered:{baseline.feature}")
    return events


def _line(baseline: SmellBaseline, recent: PassRate) -> dict[str, Any]:
    return {
        "feature": baseline.feature,
        "baseline_pass_rate": round(baseline.pass_rate, 2),
        "recent_pass_rate": round(recent.rate, 2),
        "judged": recent.judged,
    }


def _open_episode(baseline: SmellBaseline, recent: PassRate) -> None:
    """Record the alert, then tell the log, the signal's receivers and the admins."""
    SmellAlert.objects.create(
        feature=baseline.feature,
        baseline_pass_rate=baseline.pass_rate,
        recent_pass_rate=recent.rate,
        judged=recent.judged,
    )
    logger.error(json.dumps({"event": "claude.smell_alert", **_line(baseline, recent)}))
    smell_pass_rate_dropped.send(
        sender=SmellAlert,
        feature=baseline.feature,
        baseline=baseline.pass_rate,
        recent=recent.rate,
        judged=recent.judged,
    )
    mail_admins(
        f"Claude smell test: {baseline.feature} pass rate dropped",
        f"The smell-test pass rate of {baseline.feature} is {recent.rate:.1f}% over "
        f"the last {recent.judged} judged calls, against a baseline of "
        f"{baseline.pass_rate:.1f}%. Failed answers are in the admin under "
        "Claude > Smell-test failures; a model rollback is under Model routes.",
        fail_silently=True,
    )
