"""Two weeks of plausible past traffic for the demo, so every dashboard chart has a shape.

The calls are written straight to the database (no upstream, no log lines),
marked as demo data: ``tags={"demo": "seeded"}``, a prompt prefix starting
``[demo history]`` and ``user_ref="demo-history"``. Past days are then rolled
up with the app's own ``rollup_days``, as the nightly task would. A week ago
``search-answer`` moved from Sonnet to Haiku (a real route change, dated back):
its cost falls, and so does its smell-test pass rate, under the baseline
measured before the change. A day that already has calls is never seeded, so
a second run adds nothing.
"""

from __future__ import annotations

import datetime
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Avg
from django.db.models.functions import TruncDate
from django.utils import timezone

from django_claude import routing
from django_claude.conf import conf
from django_claude.costs import rollups
from django_claude.costs.totals import database_has_percentiles
from django_claude.models import CallRecord, DailyCost, ModelRouteChange, SmellBaseline
from django_claude.recording.pricing import Usage, price_call
from django_claude.smell.baselines import BaselineSample, save_baseline
from django_claude.types import Outcome, SmellVerdict

DAYS = 14
TAGS = {"demo": "seeded"}
PREFIX = "[demo history] "
USER_REF = "demo-history"
CHANGED_FEATURE = "search-answer"
CHANGED_TO = "claude-haiku-4-5-20251001"  # the default fallback model
CHANGE_DAYS_AGO = 7
CHANGE_REASON = "demo history: Haiku is cheaper for search answers"
INCIDENT_DAYS_AGO = 10  # an afternoon of overloads: fallbacks, a few degraded answers
JUDGE_FEATURE = "django_claude.smell_test"
SAMPLE_RATE = 0.3  # a busy demo judge, so a day's pass rate is not mostly noise


@dataclass(frozen=True)
class Traffic:
    """One feature's typical day."""

    calls: int  # on a weekday
    prompt: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    pass_rate: float  # smell test, on the route's usual model


TRAFFIC = {
    "support-summary": Traffic(140, "Summarise ticket 40", 700, 180, 1800, 0.94),
    "search-answer": Traffic(120, "How do I change my delivery address", 1500, 160, 0, 0.93),
    "example-ask": Traffic(60, "What is Django's ORM good at", 90, 260, 0, 0.96),
}
# What a model does to a feature's answers and speed, against the default model.
LATENCY_MS = {"claude-sonnet-4-6": 1900, "claude-haiku-4-5": 750, "claude-haiku-4-5-20251001": 700}
HAIKU_PASS_PENALTY = 0.14


@dataclass
class Seeded:
    days: int = 0
    calls: int = 0
    route_change: bool = False
    baselines: int = 0


def _when(day: datetime.date, rng: random.Random, tz: Any) -> datetime.datetime:
    """A moment of ``day`` (site time), mostly in working hours."""
    hour = min(23, max(0, round(rng.gauss(13.5, 3.5))))
    seconds = hour * 3600 + rng.randrange(3600)
    midnight = datetime.datetime.combine(day, datetime.time(), tzinfo=tz)
    return midnight + datetime.timedelta(seconds=seconds)


def _usage(traffic: Traffic, rng: random.Random) -> Usage:
    def jitter(mean: int) -> int:
        return max(1, round(rng.lognormvariate(0, 0.35) * mean)) if mean else 0

    return Usage(
        input_tokens=jitter(traffic.input_tokens),
        output_tokens=jitter(traffic.output_tokens),
        cache_read_input_tokens=traffic.cache_read_tokens,
    )


def _outcome(rng: random.Random, *, incident: bool) -> Outcome:
    roll = rng.random()
    fallback, degraded, cached, error = (
        (0.22, 0.05, 0.03, 0.003) if incident else (0.025, 0.004, 0.035, 0.003)
    )
    for outcome, share in (
        (Outcome.FALLBACK, fallback),
        (Outcome.DEGRADED, degraded),
        (Outcome.CACHED, cached),
        (Outcome.ERROR, error),
    ):
        if roll < share:
            return outcome
        roll -= share
    return Outcome.OK


def _record(
    *,
    feature: str,
    traffic: Traffic,
    primary: str,
    fallback: str,
    at: datetime.datetime,
    rng: random.Random,
    incident: bool,
) -> CallRecord:
    outcome = _outcome(rng, incident=incident and at.hour >= 12)
    usage = _usage(traffic, rng)
    model = {Outcome.FALLBACK: fallback, Outcome.DEGRADED: ""}.get(outcome, primary)
    latency = round(rng.lognormvariate(0, 0.3) * LATENCY_MS.get(model, 1500))
    attempt_log: list[dict[str, Any]] = [{"model": primary, "latency_ms": latency, "status": 200}]
    error_type, error_status, cost = "", None, Decimal(0)
    if outcome == Outcome.FALLBACK:
        attempt_log = [
            {"model": primary, "latency_ms": 300, "error": "OverloadedError", "status": 529},
            {"model": fallback, "latency_ms": latency, "status": 200},
        ]
        latency += 900  # the failed attempts and the backoff
    elif outcome == Outcome.DEGRADED:
        attempt_log = [
            {"model": m, "latency_ms": 300, "error": "OverloadedError", "status": 529}
            for m in (primary, primary, fallback)
        ]
        error_type, error_status, latency = "OverloadedError", 529, 4000 + latency // 4
    elif outcome == Outcome.ERROR:
        attempt_log[0].update(status=400, error="BadRequestError")
        error_type, error_status, latency = "BadRequestError", 400, latency // 10
    elif outcome == Outcome.CACHED:
        attempt_log, latency = [], rng.randint(2, 9)
    answered = outcome in (Outcome.OK, Outcome.FALLBACK)
    if answered:
        cost = price_call(model, usage, on=at.date()) or Decimal(0)
    else:
        usage = Usage()
    verdict = SmellVerdict.NOT_SAMPLED
    if answered and rng.random() < SAMPLE_RATE:
        pass_rate = traffic.pass_rate - (HAIKU_PASS_PENALTY if "haiku" in model else 0.0)
        verdict = SmellVerdict.PASS if rng.random() < pass_rate else SmellVerdict.FAIL
    return CallRecord(
        id=uuid.UUID(int=rng.getrandbits(128), version=4),
        created_at=at,
        feature=feature,
        user_ref=USER_REF,
        model_requested=primary,
        model=model,
        outcome=outcome.value,
        attempts=len(attempt_log),
        attempt_log=attempt_log,
        fallback_used=outcome in (Outcome.FALLBACK, Outcome.DEGRADED),
        latency_ms=latency,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        stop_reason="end_turn" if answered else "",
        cost_usd=cost,
        prompt_prefix=f"{PREFIX}{traffic.prompt} #{rng.randrange(1000, 9999)}",
        error_type=error_type,
        error_status=error_status,
        upstream_request_id=f"req_demo_{rng.getrandbits(64):016x}" if attempt_log else "",
        smell_verdict=verdict.value,
        judged_at=None
        if verdict == SmellVerdict.NOT_SAMPLED
        else at + datetime.timedelta(seconds=5),
        tags=dict(TAGS),
    )


def _judge_record(judged: CallRecord, rng: random.Random) -> CallRecord:
    """The smell-test judge's own call: it is billed too."""
    model = conf.SMELL_TEST_MODEL
    usage = Usage(input_tokens=rng.randint(300, 900), output_tokens=1)
    at = judged.created_at + datetime.timedelta(seconds=4)
    return CallRecord(
        id=uuid.UUID(int=rng.getrandbits(128), version=4),
        created_at=at,
        feature=JUDGE_FEATURE,
        user_ref=USER_REF,
        model_requested=model,
        model=model,
        outcome=Outcome.OK.value,
        attempts=1,
        attempt_log=[{"model": model, "latency_ms": 400, "status": 200}],
        latency_ms=round(rng.lognormvariate(0, 0.3) * 450),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        stop_reason="end_turn",
        cost_usd=price_call(model, usage, on=at.date()) or Decimal(0),
        prompt_prefix=f"{PREFIX}judge: PASS or FAIL",
        upstream_request_id=f"req_demo_{rng.getrandbits(64):016x}",
        tags=dict(TAGS),
    )


def _day_records(day: datetime.date, today: datetime.date, tz: Any) -> list[CallRecord]:
    rng = random.Random(f"django-claude demo history {day.isoformat()}")
    days_ago = (today - day).days
    weekend = day.weekday() >= 5
    growth = 1.0 + 0.02 * (DAYS - days_ago)  # traffic grows a little week on week
    records: list[CallRecord] = []
    for feature, traffic in TRAFFIC.items():
        primary, fallback = conf.DEFAULT_MODEL, conf.FALLBACK_MODEL
        if feature == CHANGED_FEATURE and days_ago <= CHANGE_DAYS_AGO:
            primary, fallback = CHANGED_TO, conf.DEFAULT_MODEL
        count = round(traffic.calls * growth * (0.35 if weekend else 1.0) * rng.uniform(0.9, 1.1))
        for _ in range(count):
            at = _when(day, rng, tz)
            if feature == CHANGED_FEATURE and days_ago == CHANGE_DAYS_AGO:
                # The change happened at 10:30: earlier calls went to the old model.
                before = at.time() < datetime.time(10, 30)
                primary, fallback = (
                    (conf.DEFAULT_MODEL, conf.FALLBACK_MODEL)
                    if before
                    else (CHANGED_TO, conf.DEFAULT_MODEL)
                )
            record = _record(
                feature=feature,
                traffic=traffic,
                primary=primary,
                fallback=fallback,
                at=at,
                rng=rng,
                incident=days_ago == INCIDENT_DAYS_AGO,
            )
            records.append(record)
            if record.smell_verdict != SmellVerdict.NOT_SAMPLED.value:
                records.append(_judge_record(record, rng))
    return records


def _change_time(today: datetime.date, tz: Any) -> datetime.datetime:
    day = today - datetime.timedelta(days=CHANGE_DAYS_AGO)
    return datetime.datetime.combine(day, datetime.time(10, 30), tzinfo=tz)


def _seed_route_change(user: Any, changed_at: datetime.datetime) -> bool:
    if ModelRouteChange.objects.filter(reason=CHANGE_REASON).exists():
        return False
    change = routing.set_route(
        feature=CHANGED_FEATURE,
        model=CHANGED_TO,
        fallback_model=conf.DEFAULT_MODEL,
        user=user,
        reason=CHANGE_REASON,
    )
    ModelRouteChange.objects.filter(pk=change.pk).update(changed_at=changed_at)
    return True


def _seed_baselines(changed_at: datetime.datetime) -> int:
    """Each feature's pass rate before the change, from the seeded verdicts."""
    saved = 0
    for feature in TRAFFIC:
        if SmellBaseline.objects.filter(feature=feature).exists():
            continue
        verdicts = list(
            CallRecord.objects.filter(
                feature=feature,
                user_ref=USER_REF,
                created_at__lt=changed_at,
                smell_verdict__in=(SmellVerdict.PASS, SmellVerdict.FAIL),
            ).values_list("smell_verdict", flat=True)
        )
        sample = BaselineSample(passed=verdicts.count(SmellVerdict.PASS), judged=len(verdicts))
        if not sample.judged:
            continue
        baseline = save_baseline(feature, sample, source=SmellBaseline.Source.RECORDS)
        SmellBaseline.objects.filter(pk=baseline.pk).update(
            computed_at=changed_at - datetime.timedelta(hours=1)
        )
        saved += 1
    return saved


def _average_latency(start: datetime.datetime, end: datetime.datetime, tz: Any) -> None:
    """Without percentiles (SQLite) the rollup stores no latency, while the
    dashboard charts today's average: give past rows that average too, so the
    latency chart has its two weeks. A no-op where the rollup filled them."""
    averages = (
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(local_day=TruncDate("created_at", tzinfo=tz))
        .values("local_day", "feature", "model")
        .annotate(average=Avg("latency_ms"))
        .order_by()
    )
    for row in averages:
        DailyCost.objects.filter(
            day=row["local_day"],
            feature=row["feature"],
            model=row["model"],
            latency_p50_ms__isnull=True,
        ).update(latency_p50_ms=row["average"])


def seed_history(*, user: Any, today: datetime.date | None = None) -> Seeded:
    """Seed the ``DAYS`` days before ``today`` (site time) that have no calls yet,
    roll them up, and add the route change and the baselines if missing."""
    tz = timezone.get_default_timezone()
    today = today or timezone.localdate()
    since = today - datetime.timedelta(days=DAYS)
    until = today - datetime.timedelta(days=1)
    start = datetime.datetime.combine(since, datetime.time(), tzinfo=tz)
    end = datetime.datetime.combine(today, datetime.time(), tzinfo=tz)
    busy = set(
        CallRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(local_day=TruncDate("created_at", tzinfo=tz))
        .values_list("local_day", flat=True)
        .order_by()
        .distinct()
    )
    seeded = Seeded()
    day = since
    while day <= until:
        if day not in busy:
            records = _day_records(day, today, tz)
            CallRecord.objects.bulk_create(records, batch_size=500)
            seeded.days += 1
            seeded.calls += len(records)
        day += datetime.timedelta(days=1)
    rollups.rollup_days(since=since, until=until)
    if not database_has_percentiles():
        _average_latency(start, end, tz)
    changed_at = _change_time(today, tz)
    seeded.route_change = _seed_route_change(user, changed_at)
    seeded.baselines = _seed_baselines(changed_at)
    return seeded
