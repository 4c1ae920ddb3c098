"""Which calls the smell test judges, and where their text waits for the judge.

A sampled call's prompt and answer go into ``DJANGO_CLAUDE_CACHE`` for at most
an hour under its request id (never into a row or a task argument); once its
record exists, the ``call_sampled`` signal tells the smell test to judge it.
The write path only samples and stashes: it never imports the judge.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable

from django.core.cache import BaseCache

from django_claude.conf import conf
from django_claude.shared_cache import cache_op
from django_claude.signals import call_sampled

logger = logging.getLogger(__name__)

JUDGE_FEATURE = "django_claude.smell_test"  # the judge's own calls: never sampled
STASH_PREFIX = "django_claude:smell:"
STASH_TTL = 3600  # a verdict still pending after this is closed as "error"


def sample_rate(feature: str) -> float:
    return float(conf.SMELL_TEST_RATES.get(feature, conf.SMELL_TEST_RATE))


def should_sample(
    feature: str, forced: bool | None = None, *, rng: random.Random | None = None
) -> bool:
    """Is this call judged? Never the judge's own calls; ``forced`` wins."""
    if feature == JUDGE_FEATURE:
        return False
    if forced is not None:
        return bool(forced)
    rate = sample_rate(feature)
    if rate <= 0:
        return False
    # Not a secret, so not os.urandom on every call: the random module's own
    # generator, which Python reseeds in a fork()-ed child (workers differ).
    return (rng.random() if rng is not None else random.random()) < rate


def stash_key(request_id: uuid.UUID | str) -> str:
    return f"{STASH_PREFIX}{request_id}"


def stash(request_id: uuid.UUID, *, prompt: str, answer: str) -> bool:
    """Keep the pair for the judge in the cache for an hour; False if it can't."""
    payload = {"prompt": prompt, "answer": answer}
    key = stash_key(request_id)

    def put(cache: BaseCache) -> bool:
        cache.set(key, payload, timeout=STASH_TTL)
        return True

    stored = cache_op("smell stash", put, default=False)
    if not stored:
        logger.warning("claude smell test: cache unavailable, call %s not judged", request_id)
    return bool(stored)


def judge_after_write(request_id: uuid.UUID) -> Callable[[], None]:
    """A callback for the record writer: announce the sampled call once its row exists."""

    def announce() -> None:
        call_sampled.send(sender=CallSampled, request_id=request_id)

    return announce


class CallSampled:
    """The sender of ``call_sampled`` (receivers may filter on it)."""
