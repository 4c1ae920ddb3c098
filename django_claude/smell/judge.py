"""The judge: a cheap model asked whether one answer to one prompt is acceptable.

It is called through the same resilient path as any call, recorded as feature
``django_claude.smell_test`` (never sampled itself), and its answer is read
strictly: anything but a clear PASS or FAIL is an ``error``, never a pass.
"""

from __future__ import annotations

import logging
import re

from django_claude.client.calls import call_with_route
from django_claude.conf import conf
from django_claude.recording.sampling import JUDGE_FEATURE
from django_claude.routing import Route
from django_claude.types import Outcome, SmellVerdict

logger = logging.getLogger(__name__)

JUDGE_MAX_TOKENS = 10
JUDGE_SYSTEM = (
    "You are a quality gate for answers given by an AI assistant. "
    "Reply with one word: PASS or FAIL.\n"
    "FAIL if the response is empty, refuses a benign request, contradicts itself, "
    "or does not address the prompt at all. Otherwise PASS."
)

_WORD = re.compile(r"[A-Za-z]+")


def parse_verdict(text: str | None) -> SmellVerdict:
    """``PASS``, ``FAIL`` or ``ERROR`` from the judge's answer.

    Takes the first word (after an optional ``Verdict:``), whatever its case,
    punctuation or markdown; anything else, or an answer naming both, is an
    ``ERROR``: never a pass by default.
    """
    words = [w.upper() for w in _WORD.findall(text or "")]
    if words[:1] == ["VERDICT"]:
        words = words[1:]
    if not words or words[0] not in ("PASS", "FAIL", "PASSED", "FAILED"):
        return SmellVerdict.ERROR
    verdict = SmellVerdict.PASS if words[0].startswith("PASS") else SmellVerdict.FAIL
    other = "FAIL" if verdict == SmellVerdict.PASS else "PASS"
    if any(w.startswith(other) for w in words[1:4]):
        return SmellVerdict.ERROR  # "PASS or FAIL", "PASS/FAIL": no decision
    return verdict


def judge_prompt(prompt: str, answer: str) -> str:
    return f"PROMPT:\n{prompt}\n\nRESPONSE:\n{answer}\n\nVerdict:"


def judge(prompt: str, answer: str) -> tuple[SmellVerdict, str]:
    """Ask the judge model; returns (verdict, the judge's own answer text).

    Never raises: when the judge cannot answer, the verdict is ``ERROR`` and
    the text is empty.
    """
    try:
        result = call_with_route(
            judge_prompt(prompt, answer),
            route=Route(feature=JUDGE_FEATURE, model=conf.SMELL_TEST_MODEL, fallback_model=""),
            feature=JUDGE_FEATURE,
            system=JUDGE_SYSTEM,
            max_tokens=JUDGE_MAX_TOKENS,
            smell_test=False,
        )
    except Exception as exc:  # ClaudeUnavailable included: the judge must never break anything
        logger.warning("claude smell test: the judge failed (%s)", type(exc).__name__)
        return SmellVerdict.ERROR, ""
    if result.outcome == Outcome.DEGRADED:
        return SmellVerdict.ERROR, ""
    return parse_verdict(result.text), result.text
