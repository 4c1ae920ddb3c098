"""The canary guard: a worse canary is stopped by itself, once, with its
evidence; a canary no worse than its control is left alone."""

from __future__ import annotations

import json
import logging
import random
from decimal import Decimal

import anthropic
import pytest
from django.core import mail

import django_claude
from django_claude.models import Canary, ModelRouteChange
from django_claude.routing import guard, serving_route, set_route, start_canary
from django_claude.routing.evidence import ArmStats, Limits, Tally, compare, worse_p
from django_claude.signals import canary_stopped
from django_claude.testing import flush_pending
from django_claude.testing.faults import Fault

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


# -- the statistics --------------------------------------------------------------------


def _p(bad: int, n: int, control_bad: int, control_n: int) -> float:
    return worse_p(Tally.independent(bad, n), Tally.independent(control_bad, control_n))


def test_the_p_value_falls_as_the_evidence_grows():
    assert _p(0, 200, 0, 200) == 1.0
    assert _p(2, 200, 10, 200) == 1.0  # the canary does better: one-sided
    assert _p(5, 0, 1, 200) == 1.0
    weak, strong, overwhelming = _p(8, 200, 4, 200), _p(20, 200, 4, 200), _p(60, 200, 2, 1800)
    assert 1.0 >= weak > strong > overwhelming
    assert overwhelming < 1e-6
    # More calls with the same rates: stronger evidence.
    assert _p(40, 2000, 20, 2000) < _p(4, 200, 2, 200)


def test_one_users_burst_weighs_as_one_user():
    # 252 canary calls from 246 users, one of whom sent 7 (6 rejected),
    # against 2,154 clean control calls: as independent calls, damning; as
    # users, one bad user.
    burst = Tally(bad=6, total=252, units=246, bad_sq=36, total_sq=49 + 245, cross=42)
    control = Tally.independent(0, 2154)
    assert _p(6, 252, 0, 2154) < 0.01
    assert worse_p(burst, control) > 0.1
    # Many users each failing once is the same evidence either way.
    spread = Tally.independent(30, 252)
    assert worse_p(spread, control) < 1e-6


def _arm(rng: random.Random, calls: int, fail: float) -> ArmStats:
    failures = sum(rng.random() < fail for _ in range(calls))
    fallbacks = sum(rng.random() < fail for _ in range(calls))
    judged = calls // 5
    failed_judged = sum(rng.random() < fail for _ in range(judged))
    return ArmStats(
        calls=calls,
        failures=Tally.independent(failures, calls),
        fallbacks=Tally.independent(fallbacks, calls),
        upstream=Tally.independent(failures, calls),
        smell=Tally.independent(failed_judged, judged),
    )


def _add(total: ArmStats, more: ArmStats) -> ArmStats:
    return ArmStats(
        calls=total.calls + more.calls,
        failures=total.failures + more.failures,
        fallbacks=total.fallbacks + more.fallbacks,
        upstream=total.upstream + more.upstream,
        smell=total.smell + more.smell,
    )


def _looks(seed: int, canary_fail: float, control_fail: float, looks: int = 20) -> int | None:
    """The look at which the guard would stop a canary at 10% (None: never),
    the minimum sample reached at the first look."""
    rng = random.Random(seed)
    canary, control = _arm(rng, 200, canary_fail), _arm(rng, 1800, control_fail)
    for look in range(1, looks + 1):
        if any(f.worse for f in compare(canary, control, Limits())):
            return look
        canary = _add(canary, _arm(rng, 20, canary_fail))
        control = _add(control, _arm(rng, 180, control_fail))
    return None


@pytest.mark.parametrize("rate", [0.002, 0.01, 0.05, 0.2])
def test_twenty_looks_at_an_equal_canary_rarely_raise_a_false_alarm(rate):
    # Five measures, looked at 20 times each over 300 seeded canaries: a
    # fixed-sample test at alpha 0.01 would stop 15-20% of them.
    alarms = sum(_looks(seed, rate, rate) is not None for seed in range(300))
    assert alarms <= 6  # 2%


def test_a_canary_that_fails_thirty_percent_is_caught_at_the_first_look():
    assert {_looks(seed, 0.30, 0.01) for seed in range(100)} == {1}


def test_nothing_is_worse_before_the_minimum_sample():
    all_bad = Tally.independent(199, 199)
    broken = ArmStats(calls=199, failures=all_bad, fallbacks=all_bad, upstream=all_bad)
    healthy = ArmStats(calls=5000, upstream=Tally.independent(0, 5000))
    findings = compare(broken, healthy, Limits())
    assert not any(f.worse for f in findings)
    assert all("too few calls yet (199 of 200 per arm)" in f.words for f in findings)
    assert not any(f.worse for f in compare(ArmStats(), ArmStats(), Limits()))


def test_latency_and_cost_trip_on_their_ratios():
    control = ArmStats(calls=300, p95_ms=1000, cost_per_call=Decimal("0.01"))
    slow = ArmStats(calls=300, p95_ms=1600, cost_per_call=Decimal("0.01"))
    dear = ArmStats(calls=300, p95_ms=1000, cost_per_call=Decimal("0.021"))
    fine = ArmStats(calls=300, p95_ms=1400, cost_per_call=Decimal("0.019"))
    worse = {f.measure for f in compare(slow, control, Limits()) if f.worse}
    assert worse == {"p95 latency (ms)"}
    assert {f.measure for f in compare(dear, control, Limits()) if f.worse} == {
        "cost per call (USD)"
    }
    assert not any(f.worse for f in compare(fine, control, Limits()))
    # Milliseconds of noise in fast calls are not a regression.
    quick = ArmStats(calls=300, p95_ms=4)
    quicker = ArmStats(calls=300, p95_ms=2)
    assert not any(f.worse for f in compare(quick, quicker, Limits()))


# -- the guard on real calls -------------------------------------------------------------


def _calls(n: int, feature: str, rng: random.Random) -> None:
    for _ in range(n):
        django_claude.call("hi", feature=feature, user=f"user-{rng.randrange(100_000)}")
    flush_pending()


def _run_until_stopped(feature: str, canary: Canary, rng: random.Random, runs: int) -> list[int]:
    """Calls, then a guard run, ``runs`` times: the runs (1-based) at which
    both arms had the minimum sample, and the run that stopped the canary
    (appended last; absent if none did)."""
    ready_at: list[int] = []
    for run in range(1, runs + 1):
        _calls(60, feature, rng)
        arms = guard.arm_stats(canary)
        if not ready_at and min(a.calls for a in arms.values()) >= 200:
            ready_at.append(run)
        if guard.check_canaries():
            return ready_at + [run]
    return ready_at


@pytest.mark.parametrize("failing", ["calls", "attempts"])
def test_a_canary_failing_thirty_percent_is_stopped_within_two_runs(claude, settings, failing):
    rng = random.Random(30)
    if failing == "calls":  # no retry, no fallback: a failed request is a degraded call
        settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
        set_route(feature="f", model=SONNET)
    else:  # retries hide most of it from users, not from the guard
        set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    claude.script(OPUS, [500 if rng.random() < 0.3 else Fault() for _ in range(5000)])
    canary = start_canary(feature="f", model=OPUS, percent=50)
    runs = _run_until_stopped("f", canary, rng, runs=15)
    assert len(runs) == 2, "the guard never stopped the canary"
    ready, stopped = runs
    assert ready <= stopped <= ready + 1
    canary.refresh_from_db()
    assert canary.status == "tripped"
    assert serving_route("f", "user:anyone").model == SONNET


def test_a_canary_equal_to_its_control_is_not_stopped_in_twenty_runs(claude):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    # A little of the same trouble on both arms.
    script = random.Random(20)
    for model in (SONNET, OPUS):
        claude.script(model, [529 if script.random() < 0.05 else Fault() for _ in range(3000)])
    canary = start_canary(feature="f", model=OPUS, percent=50)
    runs = _run_until_stopped("f", canary, random.Random(21), runs=20)
    assert len(runs) == 1, "stopped a canary no worse than its control"
    canary.refresh_from_db()
    assert canary.running


def test_a_dearer_canary_is_stopped_on_cost(claude):
    set_route(feature="f", model=HAIKU)
    canary = start_canary(feature="f", model=OPUS, percent=50)
    runs = _run_until_stopped("f", canary, random.Random(5), runs=12)
    assert len(runs) == 2 and runs[1] - runs[0] <= 1
    canary.refresh_from_db()
    worse = [row["measure"] for row in canary.evidence["worse"]]
    assert worse == ["cost per call (USD)"]


def test_a_slower_canary_is_stopped_on_latency(claude, settings):
    settings.DJANGO_CLAUDE_CANARY_MIN_CALLS = 20
    set_route(feature="f", model=SONNET)
    claude.always(OPUS, Fault(delay=0.4))  # far over 1.5x and 100 ms, even on a busy machine
    canary = start_canary(feature="f", model=OPUS, percent=50, allow_unpriced=True)
    rng = random.Random(6)
    stopped = []
    for _ in range(6):
        _calls(25, "f", rng)
        stopped = guard.check_canaries()
        if stopped:
            break
    assert [c.pk for c in stopped] == [canary.pk]
    canary.refresh_from_db()
    assert [row["measure"] for row in canary.evidence["worse"]] == ["p95 latency (ms)"]


def test_an_automatic_stop_says_why_once_everywhere(
    claude, settings, caplog, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.DJANGO_CLAUDE_CANARY_MIN_CALLS = 30
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    set_route(feature="f", model=SONNET)
    claude.always(OPUS, 500)
    canary = start_canary(feature="f", model=OPUS, percent=50)
    _calls(120, "f", random.Random(1))
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    canary_stopped.connect(receiver)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="django_claude.canary"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            assert [c.pk for c in guard.check_canaries()] == [canary.pk]
            assert guard.check_canaries() == []  # once
    finally:
        canary_stopped.disconnect(receiver)
    canary.refresh_from_db()
    assert canary.status == "tripped" and canary.ended_by is None
    stop = ModelRouteChange.objects.get(canary=canary, canary_action="stop")
    assert stop.automatic and stop.changed_by is None
    assert "failure rate 100.0% vs 0.0%" in stop.reason and "worse, p = " in stop.reason
    assert stop.reason == canary.end_reason
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "django_claude.canary"]
    assert [line["event"] for line in lines] == ["claude.canary_stopped"]
    assert lines[0]["canary_id"] == canary.pk
    assert [s["automatic"] for s in seen] == [True]
    assert seen[0]["evidence"]["worse"][0]["measure"] == "failure rate"
    assert len(mail.outbox) == 1 and "Claude canary stopped: f" in mail.outbox[0].subject
    assert serving_route("f", "user:x").arm == ""


def test_a_canary_without_traffic_or_under_its_sample_never_trips(claude, settings):
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    set_route(feature="quiet", model=SONNET)
    set_route(feature="young", model=SONNET)
    claude.always(OPUS, 500)
    quiet = start_canary(feature="quiet", model=OPUS, percent=50)
    young = start_canary(feature="young", model=OPUS, percent=50)
    _calls(150, "young", random.Random(2))  # every canary call fails, but < 200 per arm
    for _ in range(5):
        assert guard.check_canaries() == []
    assert Canary.objects.filter(pk__in=[quiet.pk, young.pk], ended_at__isnull=True).count() == 2


def test_the_beat_task_runs_the_guard(claude, settings):
    from django_claude import tasks

    settings.DJANGO_CLAUDE_CANARY_MIN_CALLS = 20
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    set_route(feature="f", model=SONNET)
    claude.always(OPUS, 500)
    canary = start_canary(feature="f", model=OPUS, percent=50)
    _calls(80, "f", random.Random(3))
    assert tasks.check_canaries.delay().get() == [canary.pk]


def test_one_user_sending_bad_requests_cannot_stop_a_canary(claude, settings):
    # Sticky arms put all of one user's calls in one arm: six rejected
    # requests from one user are one user's problem, not the model's.
    settings.DJANGO_CLAUDE_CANARY_MIN_CALLS = 100
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    canary = start_canary(feature="f", model=OPUS, percent=10)
    mischief = next(
        f"user-{n}" for n in range(1000) if serving_route("f", f"user:user-{n}").arm == "canary"
    )
    claude.script(OPUS, [400] * 6)
    for _ in range(6):
        with pytest.raises(anthropic.BadRequestError):
            django_claude.call("hi", feature="f", user=mischief)
    _calls(1500, "f", random.Random(9))
    arms = guard.arm_stats(canary)
    assert arms["canary"].calls >= 100 and arms["canary"].failures.bad == 6
    assert guard.check_canaries() == []
    canary.refresh_from_db()
    assert canary.running
