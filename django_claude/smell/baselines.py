"""A feature's baseline pass rate: what the alert compares recent traffic with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django_claude.models import CallRecord, SmellBaseline
from django_claude.smell.judge import judge
from django_claude.types import SmellVerdict


@dataclass(frozen=True)
class BaselineSample:
    passed: int
    judged: int
    undecided: int = 0  # pairs the judge gave no verdict on: left out of the rate


def sample_from_records(feature: str, *, size: int) -> BaselineSample:
    """The last ``size`` recorded verdicts of ``feature``."""
    verdicts = list(
        CallRecord.objects.filter(
            feature=feature, smell_verdict__in=(SmellVerdict.PASS, SmellVerdict.FAIL)
        )
        .order_by("-created_at")
        .values_list("smell_verdict", flat=True)[:size]
    )
    return BaselineSample(passed=verdicts.count(SmellVerdict.PASS), judged=len(verdicts))


def sample_from_pairs(
    pairs: Iterable[tuple[str, str]], *, progress: Callable[[int], None] | None = None
) -> BaselineSample:
    """Ask the judge about each (prompt, answer) pair; ``progress`` gets the
    number of pairs judged so far after each one."""
    passed = judged = undecided = 0
    for done, (prompt, answer) in enumerate(pairs, start=1):
        verdict, _ = judge(prompt, answer)
        if verdict == SmellVerdict.ERROR:
            undecided += 1
        else:
            judged += 1
            passed += verdict == SmellVerdict.PASS
        if progress is not None:
            progress(done)
    return BaselineSample(passed=passed, judged=judged, undecided=undecided)


def save_baseline(
    feature: str, sample: BaselineSample, *, source: SmellBaseline.Source
) -> SmellBaseline:
    """Store ``sample`` as the baseline in force for ``feature``.

    Raises ``ValueError`` when nothing in it was judged.
    """
    if not sample.judged:
        raise ValueError(f"no judged calls for {feature!r}")
    return SmellBaseline.objects.create(
        feature=feature,
        pass_rate=100.0 * sample.passed / sample.judged,
        sample_size=sample.judged,
        source=source,
    )
