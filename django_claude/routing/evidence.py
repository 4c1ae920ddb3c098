"""Is a canary worse than its control? The guard's statistics, pure.

Rates (failed calls, fallbacks, failed upstream requests, smell-test
passes) are compared with a
one-sided two-proportion test. The guard looks every minute for as long as
a canary runs, and a fixed-sample test looked at that often raises false
alarms far above its alpha (simulated: 14-21% over 20 looks at alpha 0.01,
for a canary no different from its control). So the p-value here is an
always-valid one: a mixture sequential probability ratio test (Johari,
Pekelis and Walsh, "Always Valid Inference", 2017) on the difference of the
two rates, with the pooled variance of the null hypothesis. Stopping the
first time it is under alpha keeps the chance of ever stopping a canary
that is no worse under alpha, however often and however long one looks
(simulated: 0.4-1.4% over 20 looks at alpha 0.01), and a canary that fails
30% of its calls against 1% is caught at the first look after the
minimum sample.

Latency and cost are compared as ratios (p95 latency, mean cost per call)
against fixed limits, once both arms have the minimum sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

# The mixing variance of the mSPRT: a prior on the size of a difference of
# rates; 0.01 (a standard deviation of 10 points) fits the differences a
# model change makes (a few points to tens of points).
TAU2 = 0.01
MIN_JUDGED = 30  # judged calls per arm before pass rates are compared
MIN_BAD = 5  # bad calls in the canary before a rate can trip the guard
MIN_LATENCY_GAP_MS = 100  # a p95 ratio over the limit trips only with this gap too


@dataclass(frozen=True)
class Limits:
    alpha: float = 0.01
    min_calls: int = 200
    max_latency_ratio: float = 1.5
    max_cost_ratio: float = 2.0


@dataclass(frozen=True)
class Tally:
    """Bad events out of a total, with sums over the arm's units.

    A unit is whom the canary assigns: a user, else a tenant, else (an
    anonymous call) the call. Calls of one user are not independent (they
    share the user's arm and the user's habits): the rate's variance is
    taken over units, so one user's burst of bad requests weighs as one
    user, not as many independent failures."""

    bad: int = 0
    total: int = 0
    units: int = 0
    bad_sq: float = 0.0  # sum over units of (bad events)^2
    total_sq: float = 0.0  # sum over units of (events)^2
    cross: float = 0.0  # sum over units of bad events * events

    @classmethod
    def independent(cls, bad: int, total: int) -> Tally:
        """``bad`` of ``total`` events, each of a unit of its own."""
        return cls(bad, total, total, float(bad), float(total), float(bad))

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            *(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__)
        )

    @property
    def rate(self) -> float | None:
        return self.bad / self.total if self.total else None

    def design_effect(self) -> float:
        """How much more the rate varies than if every event were a unit of
        its own (1.0: as much; one user's burst of failures: far more)."""
        if not self.total or not 0 < self.bad < self.total:
            return 1.0
        rate = self.bad / self.total
        spread = self.bad_sq - 2 * rate * self.cross + rate * rate * self.total_sq
        return max(1.0, spread / (rate * (1 - rate) * self.total))


@dataclass
class ArmStats:
    """What one arm of a canary did since the canary started."""

    calls: int = 0  # calls that reached a model (not cached, not refused by a quota)
    failures: Tally = Tally()  # degraded and caller-error calls, of calls
    fallbacks: Tally = Tally()  # calls the fallback answered, of calls
    upstream: Tally = Tally()  # failed upstream requests (retried or given up), of requests
    smell: Tally = Tally()  # smell-test fails, of judged calls
    p50_ms: int | None = None
    p95_ms: int | None = None
    cost_per_call: Decimal | None = None  # mean over priced calls


@dataclass
class Finding:
    """One row of the comparison: a measure of both arms and what it says."""

    measure: str  # "failure rate", "fallback rate", "upstream error rate", ...
    canary: float | None
    control: float | None
    worse: bool = False  # the guard trips on this row
    p: float | None = None  # the always-valid one-sided p-value (rates)
    ratio: float | None = None  # canary / control (latency, cost)
    words: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def as_evidence(self) -> dict[str, object]:
        return {
            "measure": self.measure,
            "canary": self.canary,
            "control": self.control,
            "p": self.p,
            "ratio": self.ratio,
            "worse": self.worse,
            "words": self.words,
            **self.extra,
        }


def worse_p(canary: Tally, control: Tally, *, tau2: float = TAU2) -> float:
    """The always-valid one-sided p-value of "the canary's rate is above the
    control's" (1.0 when it is not above, or either arm is empty).

    The variance of the difference is the pooled one of independent events,
    times the larger arm's design effect: events of one unit (a user's
    calls) that go together count for less than independent ones."""
    n, control_n = canary.total, control.total
    if n <= 0 or control_n <= 0:
        return 1.0
    difference = canary.bad / n - control.bad / control_n
    pooled = (canary.bad + control.bad) / (n + control_n)
    if difference <= 0 or pooled <= 0.0 or pooled >= 1.0:
        return 1.0
    variance = (
        pooled
        * (1 - pooled)
        * (1 / n + 1 / control_n)
        * max(canary.design_effect(), control.design_effect())
    )
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + (
        tau2 * difference * difference / (2 * variance * (variance + tau2))
    )
    return 1.0 if log_ratio <= 0 else math.exp(-log_ratio)


def _words(worse: bool, p: float | None, *, better: bool = False) -> str:
    if worse:
        return f"worse, p = {p:.2g}" if p is not None else "worse"
    if better:
        return "no evidence it is worse (the canary does better)"
    return "no evidence of a difference"


def _rate_row(
    measure: str,
    canary: Tally,
    control: Tally,
    limits: Limits,
    *,
    enough: bool,
    waiting: str,
) -> Finding:
    """A rate of what counts against an arm (failures; for the pass rate:
    fails), compared."""
    rate, control_rate = canary.rate, control.rate
    if not enough:
        return Finding(measure, rate, control_rate, words=waiting)
    p = worse_p(canary, control)
    worse = p < limits.alpha and canary.bad >= MIN_BAD
    better = rate is not None and control_rate is not None and rate < control_rate
    return Finding(
        measure, rate, control_rate, worse=worse, p=p, words=_words(worse, p, better=better)
    )


def _ratio_row(
    measure: str,
    canary: float | None,
    control: float | None,
    limit: float,
    *,
    enough: bool,
    waiting: str,
    gap: float = 0.0,
) -> Finding:
    if canary is None or control is None or not enough:
        return Finding(measure, canary, control, words=waiting if not enough else "not measured")
    ratio = canary / control if control > 0 else None
    worse = ratio is not None and ratio > limit and canary - control >= gap
    if worse:
        words = f"worse, {ratio:.2f}x the control (limit {limit:g}x)"
    elif ratio is None:
        words = "no evidence of a difference"
    else:
        words = f"{ratio:.2f}x the control, within {limit:g}x"
    return Finding(measure, canary, control, worse=worse, ratio=ratio, words=words)


def compare(canary: ArmStats, control: ArmStats, limits: Limits) -> list[Finding]:
    """Each measure of the two arms, with whether the canary is worse on it.

    Nothing is worse before both arms have ``limits.min_calls`` calls; pass
    rates also wait for ``MIN_JUDGED`` judged calls per arm."""
    fewest = min(canary.calls, control.calls)
    enough = fewest >= limits.min_calls
    waiting = f"too few calls yet ({fewest} of {limits.min_calls} per arm)"
    judged = min(canary.smell.total, control.smell.total)
    judged_enough = enough and judged >= MIN_JUDGED
    judged_waiting = (
        waiting if not enough else f"too few judged calls yet ({judged} of {MIN_JUDGED} per arm)"
    )
    passes = _rate_row(
        "smell-test pass rate",
        canary.smell,
        control.smell,
        limits,
        enough=judged_enough,
        waiting=judged_waiting,
    )
    # Tested on fails (a rise is worse), shown as pass rates.
    passes.canary = None if passes.canary is None else 1 - passes.canary
    passes.control = None if passes.control is None else 1 - passes.control
    return [
        _rate_row(
            "failure rate",
            canary.failures,
            control.failures,
            limits,
            enough=enough,
            waiting=waiting,
        ),
        _rate_row(
            "fallback rate",
            canary.fallbacks,
            control.fallbacks,
            limits,
            enough=enough,
            waiting=waiting,
        ),
        # Retries hide a model that fails one request in three from users,
        # not from the bill or the latency: compared per upstream request.
        _rate_row(
            "upstream error rate",
            canary.upstream,
            control.upstream,
            limits,
            enough=enough,
            waiting=waiting,
        ),
        passes,
        _ratio_row(
            "p95 latency (ms)",
            None if canary.p95_ms is None else float(canary.p95_ms),
            None if control.p95_ms is None else float(control.p95_ms),
            limits.max_latency_ratio,
            enough=enough,
            waiting=waiting,
            gap=MIN_LATENCY_GAP_MS,
        ),
        _ratio_row(
            "cost per call (USD)",
            None if canary.cost_per_call is None else float(canary.cost_per_call),
            None if control.cost_per_call is None else float(control.cost_per_call),
            limits.max_cost_ratio,
            enough=enough,
            waiting=waiting,
        ),
    ]
