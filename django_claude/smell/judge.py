"""The online smell test: a cheap LLM judge on a sample of real traffic.

A sampled call is recorded with ``smell_verdict="pending"``; its prompt and
answer wait in a short-lived cache entry (never in the broker, never in a
row) until a Celery task hands them to the judge, stores the verdict, and
keeps a redacted copy of the pair only when the verdict is FAIL.

The pass rate of the last judged calls is compared with a stored baseline;
a significant drop raises one alert per episode, and recovery is logged.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.mail import mail_admins
from django.db.models import Count, Q
from django.utils import timezone

from django_claude.conf import conf
from django_claude.recording.sampling import JUDGE_FEATURE, stash_key

logger = logging.getLogger(__name__)
alert_logger = logging.getLogger("django_claude.smell")

JUDGE_MAX_TOKENS = 10
JUDGE_SYSTEM = (
    "You are a quality gate for answers given by an AI assistant. "
    "Reply with one word: PASS or FAIL.\n"
    "FAIL if the response is empty, refuses a benign request, contradicts itself, "
    "or does not address the prompt at all. Otherwise PASS."
)
STALE_AFTER = datetime.timedelta(hours=1)

# The alert compares the last WINDOW judged calls (within LOOKBACK) with the
# baseline. Below MIN_SAMPLE judged calls nothing is concluded; see should_alert.
WINDOW = 200
LOOKBACK = datetime.timedelta(hours=24)
MIN_SAMPLE = 30
Z_ONE_SIDED_99 = 2.326


# -- the judge ----------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z]+")


def parse_verdict(text: str | None) -> str:
    """``"pass"``, ``"fail"`` or ``"error"`` from the judge's answer.

    Takes the first word (after an optional ``Verdict:``), whatever its case,
    punctuation or markdown; anything else, or an answer naming both, is an
    ``"error"``: never a pass by default.
    """
    words = [w.upper() for w in _WORD.findall(text or "")]
    if words[:1] == ["VERDICT"]:
        words = words[1:]
    if not words:
        return "error"
    first = words[0]
    if first not in ("PASS", "FAIL", "PASSED", "FAILED"):
        return "error"
    verdict = "pass" if first.startswith("PASS") else "fail"
    other = "FAIL" if verdict == "pass" else "PASS"
    if any(w.startswith(other) for w in words[1:4]):
        return "error"  # "PASS or FAIL", "PASS/FAIL": no decision
    return verdict


def judge_prompt(prompt: str, answer: str) -> str:
    return f"PROMPT:\n{prompt}\n\nRESPONSE:\n{answer}\n\nVerdict:"


def judge(prompt: str, answer: str) -> tuple[str, str]:
    """Ask the judge model; returns (verdict, the judge's own answer text).

    The judge is called through the same resilient path as any call and is
    recorded as feature ``django_claude.smell_test``; when it cannot answer
    the verdict is ``"error"``.
    """
    from django_claude.client import calls as service
    from django_claude.routing import Route
    from django_claude.types import ClaudeUnavailable

    model = conf.SMELL_TEST_MODEL
    try:
        result = service.call_with_route(
            judge_prompt(prompt, answer),
            route=Route(feature=JUDGE_FEATURE, model=model, fallback_model=""),
            feature=JUDGE_FEATURE,
            system=JUDGE_SYSTEM,
            max_tokens=JUDGE_MAX_TOKENS,
            smell_test=False,
        )
    except (ClaudeUnavailable, Exception) as exc:  # the judge must never break anything
        logger.warning("claude smell test: the judge failed (%s)", type(exc).__name__)
        return "error", ""
    if result.outcome == "degraded":
        return "error", ""
    return parse_verdict(result.text), result.text


# -- handing a sampled call to the judge ------------------------------------------------


def queue_judge(sender: object, *, request_id: uuid.UUID, **kwargs: object) -> None:
    """Receiver of ``call_sampled``: send the judge task. When it cannot be
    queued (no Celery, no broker) the stash is dropped and the verdict is
    ``"error"``: user text never waits where nothing will read it."""
    try:
        from django_claude.tasks import smell_test

        smell_test.delay(str(request_id))
    except Exception as exc:
        logger.warning(
            "claude smell test: could not queue the judge for %s (%s)",
            request_id,
            type(exc).__name__,
        )
        with contextlib.suppress(Exception):
            caches[conf.CACHE].delete(stash_key(request_id))
        set_verdict(request_id, "error")


def set_verdict(request_id: uuid.UUID | str, verdict: str) -> int:
    from django_claude.models import CallRecord

    return CallRecord.objects.filter(id=request_id, smell_verdict="pending").update(
        smell_verdict=verdict, judged_at=timezone.now()
    )


def run_smell_test(request_id: uuid.UUID | str) -> str:
    """Judge one sampled call: what the Celery task does. Returns the verdict."""
    from django_claude.models import CallRecord, SmellFailure
    from django_claude.recording.facts import redactor

    cache = caches[conf.CACHE]
    key = stash_key(request_id)
    try:
        payload = cache.get(key)
    except Exception:
        payload = None
    if not isinstance(payload, dict):
        set_verdict(request_id, "error")
        return "error"
    verdict, judge_text = judge(payload["prompt"], payload["answer"])
    updated = set_verdict(request_id, verdict)
    if verdict == "fail" and updated:
        record = CallRecord.objects.filter(id=request_id).first()
        if record is not None:
            redact = redactor()
            SmellFailure.objects.create(
                call=record,
                feature=record.feature,
                model=record.model,
                prompt=redact(payload["prompt"]),
                response=redact(payload["answer"]),
                judge_answer=redact(judge_text)[:200],
            )
    with contextlib.suppress(Exception):  # it expires within the hour anyway
        cache.delete(key)
    return verdict


def close_stale_verdicts(*, now: datetime.datetime | None = None) -> int:
    """Mark verdicts pending for over an hour as ``"error"`` (a worker died)."""
    from django_claude.models import CallRecord

    cutoff = (now or timezone.now()) - STALE_AFTER
    return CallRecord.objects.filter(smell_verdict="pending", created_at__lt=cutoff).update(
        smell_verdict="error", judged_at=now or timezone.now()
    )


# -- baseline and alert -------------------------------------------------------------------


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
    from django_claude.models import CallRecord

    since = (now or timezone.now()) - LOOKBACK
    ids = (
        CallRecord.objects.filter(
            feature=feature, created_at__gte=since, smell_verdict__in=["pass", "fail"]
        )
        .order_by("-created_at")
        .values("id")[:WINDOW]
    )
    counts = CallRecord.objects.filter(id__in=ids).aggregate(
        judged=Count("id"), passed=Count("id", filter=Q(smell_verdict="pass"))
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
    """Compare each feature with its baseline; open or close alert episodes.

    Returns what happened, e.g. ``["alert:support", "recovered:chat"]``.
    """
    from django_claude.models import SmellAlert, SmellBaseline
    from django_claude.signals import smell_pass_rate_dropped

    now = now or timezone.now()
    close_stale_verdicts(now=now)
    events: list[str] = []
    drop = conf.SMELL_ALERT_DROP
    for baseline in SmellBaseline.objects.latest_per_feature():
        recent = recent_pass_rate(baseline.feature, now=now)
        episode = SmellAlert.objects.filter(feature=baseline.feature, ended_at__isnull=True).first()
        line: dict[str, Any] = {
            "feature": baseline.feature,
            "baseline_pass_rate": round(baseline.pass_rate, 2),
            "recent_pass_rate": round(recent.rate, 2),
            "judged": recent.judged,
        }
        if episode is None and should_alert(baseline=baseline.pass_rate, recent=recent, drop=drop):
            SmellAlert.objects.create(
                feature=baseline.feature,
                baseline_pass_rate=baseline.pass_rate,
                recent_pass_rate=recent.rate,
                judged=recent.judged,
            )
            alert_logger.error(json.dumps({"event": "claude.smell_alert", **line}))
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
            events.append(f"alert:{baseline.feature}")
        elif episode is not None and has_recovered(
            baseline=baseline.pass_rate, recent=recent, drop=drop
        ):
            episode.ended_at = now
            episode.save(update_fields=["ended_at"])
            alert_logger.info(json.dumps({"event": "claude.smell_recovered", **line}))
            events.append(f"recovered:{baseline.feature}")
    return events
