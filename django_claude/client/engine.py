"""The attempt engine: one sans-IO plan that every entry point drives.

The plan owns the deadline, the retry decision, the primary-then-fallback
order and when the breaker is consulted or told; it performs no I/O. A driver
asks it for a step and does what the step says:

- ``Admit``: reserve the call's worst case against its quotas (first, and
  only when some quota applies; again before any attempt that follows one
  whose cost is unknown, such as a timeout, which Anthropic may still bill);
  the driver answers with the refusal, or None (or ``refused()`` it later);
- ``BreakerStep``: consult the model's breaker (``ALLOW``), or tell it how an
  attempt went (``SUCCEEDED``/``FAILED``);
- ``Attempt``: send one request to ``model`` with ``timeout`` seconds;
- ``Sleep``: back off before the next attempt;
- ``Done``: every run is final (``plan.answer`` is set, or nothing answered).

The driver reports with ``send(value)`` (``allowed`` for an ``ALLOW`` step,
``None`` after a sleep or a breaker report) or, after an ``Attempt``, with
``succeeded(answer)`` / ``failed(exc)``; each returns the next step.

``calls.py`` drives it for ``call``/``acall`` and ``streams.py`` for
``stream``/``astream`` (an attempt there is "connect and read to the first
token"), in the manner of tenacity's ``AttemptManager`` or h11's state
machines.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from dataclasses import dataclass, field
from typing import Any, cast

from django_claude.client.errors import (
    UPSTREAM_ERRORS,
    ErrorKind,
    classify,
    error_status,
    error_type,
    retry_after_of,
)

# An attempt needs at least this long to be worth starting.
MIN_ATTEMPT_SECONDS = 0.05
# A model out of rate limit is waited for this long at most when another
# model could answer; the last model is waited for as long as the deadline allows.
RATE_LIMIT_WAIT = 1.0


class Deadline:
    """The time left for a whole call, on the monotonic clock."""

    def __init__(self, seconds: float, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.ends = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.ends - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def attempt_timeout(self, per_attempt: float) -> float | None:
        """The timeout for an attempt starting now, or None if none can start."""
        left = self.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            return None
        return min(per_attempt, left)


def backoff_delay(
    retry_number: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retry_number)].

    ``retry_number`` is 0 before the first retry.
    """
    ceiling = min(cap, base * (2 ** min(retry_number, 32)))
    return (rng or random).uniform(0.0, max(0.0, ceiling))


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


def decide_retry(
    *,
    kind: ErrorKind,
    attempts_made: int,
    max_attempts: int,
    remaining: float,
    backoff: float,
    server_delay: float | None,
) -> RetryDecision:
    """Whether to try the same model again after a failed attempt, and when.

    A server's ``retry-after`` replaces our backoff when longer, but never
    pushes the next attempt past the deadline: then we stop and fall back.
    """
    if kind is not ErrorKind.TRANSIENT:
        return RetryDecision(False, reason=kind.value)
    if attempts_made >= max_attempts:
        return RetryDecision(False, reason="attempts exhausted")
    delay = max(backoff, server_delay or 0.0)
    if delay + MIN_ATTEMPT_SECONDS > remaining:
        return RetryDecision(False, reason="deadline")
    return RetryDecision(True, delay=delay)


def kind_of(exc: BaseException) -> ErrorKind:
    """An attempt's failure as an ``ErrorKind``; a non-API error (a TypeError
    the SDK raised on our arguments) is the caller's."""
    if isinstance(exc, UPSTREAM_ERRORS):
        return classify(exc)
    return ErrorKind.CALLER


# -- steps -------------------------------------------------------------------------


class BreakerEvent(enum.Enum):
    ALLOW = "allow"  # may the model take an attempt? (the driver answers with a bool)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class BreakerStep:
    model: str
    event: BreakerEvent


@dataclass(frozen=True)
class Attempt:
    model: str
    timeout: float


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Admit:
    pass


Step = Admit | BreakerStep | Attempt | Sleep | Done
DONE = Done()
ADMIT = Admit()


@dataclass
class ModelRun:
    """What happened on one model: its answer, or why it gave none."""

    model: str
    answer: Any = None
    error: BaseException | None = None
    kind: ErrorKind | None = None
    skipped: str = ""  # "breaker_open", "rate_limited" or "deadline": no (further) request
    attempts: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def note(self, started: float, exc: BaseException | None) -> None:
        """Add one attempt to the log: its model, latency and status or error."""
        entry: dict[str, Any] = {
            "model": self.model,
            "latency_ms": round((time.monotonic() - started) * 1000),
        }
        if exc is None:
            entry["status"] = 200
        else:
            entry["error"] = error_type(exc)
            status = error_status(exc)
            if status is not None:
                entry["status"] = status
        self.log.append(entry)

    def waits(self, delay: float) -> float:
        """Note on the last attempt the back-off before the next one; ``delay``."""
        self.log[-1]["wait_ms"] = round(delay * 1000)
        return delay

    @property
    def falls_back(self) -> bool:
        """Did this model fail in a way another model might not?"""
        return self.answer is None and (
            bool(self.skipped) or self.kind in (ErrorKind.TRANSIENT, ErrorKind.MODEL)
        )


def cost_unknown(exc: BaseException, kind: ErrorKind) -> bool:
    """Might a failed attempt still be billed? When it reached Anthropic and
    no status says otherwise: a timeout or a dropped connection."""
    return kind is ErrorKind.TRANSIENT and error_status(exc) is None


def waits_for(wait: float, deadline: Deadline, *, last: bool) -> bool:
    """Wait ``wait`` seconds for a model's rate limit to reset? When it fits
    the deadline, and is short or the ``last`` model (no fallback after it)."""
    fits = wait <= deadline.remaining() - MIN_ATTEMPT_SECONDS
    return fits and (wait <= RATE_LIMIT_WAIT or last)


@dataclass(frozen=True)
class Policy:
    """The limits a plan works within (from settings, as plain values)."""

    timeout: float
    max_attempts: int
    fallback_attempts: int
    backoff_base: float
    backoff_max: float

    def after_failure(
        self,
        run: ModelRun,
        exc: BaseException,
        *,
        max_attempts: int,
        deadline: Deadline,
        rng: random.Random | None,
    ) -> RetryDecision:
        """Whether ``run``'s model gets another attempt after ``exc``, and when."""
        assert run.kind is not None
        return decide_retry(
            kind=run.kind,
            attempts_made=run.attempts,
            max_attempts=max_attempts,
            remaining=deadline.remaining(),
            backoff=backoff_delay(
                run.attempts - 1, base=self.backoff_base, cap=self.backoff_max, rng=rng
            ),
            server_delay=retry_after_of(exc),
        )


class AttemptPlan:
    """Primary model, then its fallback, within one deadline: decides, never
    does. ``first()`` gives the first step (see the module for the rest)."""

    def __init__(
        self,
        *,
        model: str,
        fallback_model: str,
        deadline: Deadline,
        policy: Policy,
        rng: random.Random | None = None,
        admit: bool = False,
    ) -> None:
        self.deadline = deadline
        self.refusal: Any = None  # what refused the call at an ``Admit``
        self._admit, self._after_admit = admit, cast(Step | None, None)  # a later Admit's next
        self.policy = policy
        self.runs: list[ModelRun] = []
        self._models = [(model, policy.max_attempts)]
        if fallback_model:
            self._models.append((fallback_model, policy.fallback_attempts))
        self._rng = rng
        self._step: Step = DONE
        self._then: Step = DONE  # what follows a breaker report
        self._started = 0.0

    # -- what the driver reads ------------------------------------------------------

    @property
    def run(self) -> ModelRun:
        """The run in progress (or the last one)."""
        return self.runs[-1]

    @property
    def answer(self) -> Any:
        """The answer of the run that answered, or None."""
        return self.runs[-1].answer if self.runs else None

    @property
    def failed_run(self) -> ModelRun | None:
        """The last run that ended on an error (what a failed call reports)."""
        return next((run for run in reversed(self.runs) if run.error is not None), None)

    # -- the protocol -----------------------------------------------------------------

    def first(self) -> Step:
        return self._go(ADMIT if self._admit else self._start_run(self._models[0][0]))

    def send(self, value: Any = None) -> Step:
        """Report how an admission, a breaker step or a sleep went (a refusal
        or None, whether the breaker allows, None); returns the next step."""
        step = self._step
        if isinstance(step, Admit):
            then, self._after_admit = self._after_admit, None
            if value is not None:
                self.refusal = value
                return self._go(DONE)
            return self._go(then if then is not None else self._start_run(self._models[0][0]))
        if isinstance(step, BreakerStep) and step.event is BreakerEvent.ALLOW:
            # True/False, or the seconds until the model's rate limit resets
            return self._allowed(value if isinstance(value, float) else bool(value))
        if isinstance(step, BreakerStep):
            return self._go(self._then)
        if isinstance(step, Sleep):
            return self._gate()
        raise RuntimeError(f"send() after {step!r}: use succeeded() or failed()")

    def succeeded(self, answer: Any) -> Step:
        run = self.run
        run.note(self._started, None)
        run.answer, run.error, run.kind = answer, None, None
        return self._go(BreakerStep(run.model, BreakerEvent.SUCCEEDED), then=DONE)

    def failed(self, exc: BaseException) -> Step:
        run = self.run
        run.note(self._started, exc)
        run.error, run.kind = exc, kind_of(exc)
        decision = self.policy.after_failure(
            run, exc, max_attempts=self._max_attempts, deadline=self.deadline, rng=self._rng
        )
        after = Sleep(run.waits(decision.delay)) if decision.retry else self._next_model()
        if self._admit and not isinstance(after, Done) and cost_unknown(exc, run.kind):
            self._after_admit, after = after, ADMIT  # reserve the next attempt too
        if run.kind is ErrorKind.TRANSIENT:
            return self._go(BreakerStep(run.model, BreakerEvent.FAILED), then=after)
        return self._go(after)

    def refused(self, refusal: Any) -> Step:
        """A late refusal: as at the ``Admit`` (no run of it went out)."""
        self.refusal, self.runs = refusal, []
        return self._go(DONE)

    def cancelled(self) -> None:
        """The attempt in flight was cancelled (the client went away): log it."""
        if isinstance(self._step, Attempt):
            self.run.note(self._started, asyncio.CancelledError())
        self._step = DONE

    # -- inside -----------------------------------------------------------------------

    @property
    def _max_attempts(self) -> int:
        return self._models[len(self.runs) - 1][1]

    def _go(self, step: Step, *, then: Step | None = None) -> Step:
        if then is not None:
            self._then = then
        self._step = step
        return step

    def _start_run(self, model: str) -> Step:
        self.runs.append(ModelRun(model=model))
        return BreakerStep(model, BreakerEvent.ALLOW)

    def _allowed(self, allowed: bool | float) -> Step:
        run = self.run
        if not isinstance(allowed, bool):  # out of rate limit for ``allowed`` seconds
            return self._rate_limited(float(allowed))
        if not allowed:
            run.skipped = "breaker_open"
            run.log.append({"model": run.model, "error": "breaker_open"})
            return self._go(self._next_model())
        timeout = self.deadline.attempt_timeout(self.policy.timeout)
        if timeout is None:
            run.skipped = "deadline"
            if run.attempts == 0:
                run.log.append({"model": run.model, "error": "deadline"})
            return self._go(self._next_model())
        run.attempts += 1
        self._started = time.monotonic()
        return self._go(Attempt(run.model, timeout))

    def _rate_limited(self, wait: float) -> Step:
        """Wait for the model's rate limit to reset, or skip it (``waits_for``)."""
        run = self.run
        if waits_for(wait, self.deadline, last=len(self.runs) >= len(self._models)):
            return self._go(Sleep(wait))
        run.skipped = "rate_limited"
        run.log.append({"model": run.model, "error": "rate_limited"})
        return self._go(self._next_model())

    def _gate(self) -> Step:
        return self._go(BreakerStep(self.run.model, BreakerEvent.ALLOW))

    def _next_model(self) -> Step:
        """The fallback, when the primary's run calls for it; else done."""
        if len(self.runs) < len(self._models) and self.runs[0].falls_back:
            return self._start_run(self._models[len(self.runs)][0])
        return DONE
