"""Anthropic's token-counting endpoint as the input part of a call's worst case.

Off by default: the byte bound of ``estimate`` needs no request. With
``DJANGO_CLAUDE_QUOTA_COUNT_TOKENS = True``, a call charged to a token or USD
quota first asks ``POST /v1/messages/count_tokens`` (the SDK's
``messages.count_tokens``, with the client, key and base URL the call
itself uses) how many input tokens its messages, system prompt and tools
are, once per model of its route (models do not all tokenize alike), and
reserves that (plus ``COUNT_MARGIN``: Anthropic calls the count an
estimate) instead of the byte bound, which for PDFs and images is coarse.

Counting never fails a call: a count that fails, is slow (``COUNT_TIMEOUT``,
and at most a quarter of what is left of the call's deadline) or is not a
believable number is left out, and that model's input is the byte bound
again. A count that is answered is trusted as Anthropic's: a gateway at
``BASE_URL`` answering low counts makes reservations low (settling then
charges what the call really used).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from django_claude.conf import conf
from django_claude.quotas.config import Quota

logger = logging.getLogger(__name__)

COUNT_TIMEOUT = 1.0  # seconds for all of a call's counts at most
MIN_COUNT_TIMEOUT = 0.05  # less left than this: no count, the byte bound
COUNT_MARGIN = 0.05  # a count is an estimate: reserve 5% more, and MARGIN_TOKENS
MARGIN_TOKENS = 16
MAX_COUNT = 10_000_000  # more than any context window: not a count
# What ``messages.create`` takes that makes input tokens, and count_tokens takes too.
COUNTED = (
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
    "speed",
    "extra_headers",
)
# What a request's extra_body may hold that count_tokens refuses (and that adds no input).
NOT_COUNTED = frozenset(
    {"max_tokens", "stream", "metadata", "stop_sequences", "service_tier", "inference_geo"}
    | {"container", "temperature", "top_p", "top_k", "diagnostics"}
)

Send = Callable[[str, dict[str, Any], float], Any]
AsyncSend = Callable[[str, dict[str, Any], float], Awaitable[Any]]


def counts_tokens(found: Iterable[tuple[Quota, str]]) -> bool:
    """Should this call's input be counted: the site enabled it and a quota
    that applies is in tokens or USD (a calls quota needs no count)?"""
    return conf.QUOTA_COUNT_TOKENS and any(quota.unit != "calls" for quota, _ in found)


def count_timeout(remaining: float) -> float | None:
    """Seconds the counts may take, with ``remaining`` left of the call's
    deadline; None: too little left to count."""
    timeout = min(COUNT_TIMEOUT, remaining / 4)
    return timeout if timeout >= MIN_COUNT_TIMEOUT else None


def count_request(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``count_tokens`` arguments (but the model) of a call's ``messages.create`` ones."""
    request = {name: params[name] for name in COUNTED if params.get(name) is not None}
    extra = params.get("extra_body")
    if isinstance(extra, Mapping):
        kept = {key: value for key, value in extra.items() if key not in NOT_COUNTED}
        if kept:
            request["extra_body"] = kept
    request.setdefault("messages", [])
    return request


def counted_tokens(answer: Any) -> int | None:
    """The input tokens to reserve for a count's answer (with the margin),
    or None if it is not a believable count."""
    value = getattr(answer, "input_tokens", None)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_COUNT:
        return None
    return math.ceil(value * (1 + COUNT_MARGIN)) + MARGIN_TOKENS


def _models(models: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(model for model in models if model))


def _failed(model: str, error: BaseException | str) -> None:
    logger.info(
        "claude quotas: counting tokens on %s failed (%s); reserving the byte bound",
        model,
        error if isinstance(error, str) else type(error).__name__,
    )


def count_input(
    send: Send, params: Mapping[str, Any], models: Iterable[str], *, timeout: float
) -> dict[str, int]:
    """Each model's input tokens to reserve, counted by ``send(model, request,
    timeout)`` (the SDK's ``count_tokens``), one after the other within
    ``timeout`` seconds in all; a model whose count failed is left out."""
    request = count_request(params)
    found: dict[str, int] = {}
    ends = time.monotonic() + timeout
    for model in _models(models):
        left = ends - time.monotonic()
        if left < MIN_COUNT_TIMEOUT:
            _failed(model, "no time left")
            continue
        try:
            tokens = counted_tokens(send(model, request, left))
        except Exception as exc:  # an API error, a timeout, a missing key...
            _failed(model, exc)
            continue
        if tokens is None:
            _failed(model, "not a count")
        else:
            found[model] = tokens
    return found


async def acount_input(
    send: AsyncSend, params: Mapping[str, Any], models: Iterable[str], *, timeout: float
) -> dict[str, int]:
    """``count_input`` on the event loop: the models' counts at once."""
    request = count_request(params)
    chosen = _models(models)

    async def one(model: str) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                tokens = counted_tokens(await send(model, request, timeout))
        except Exception as exc:  # an API error, TimeoutError, a missing key...
            _failed(model, exc)
            return None
        if tokens is None:
            _failed(model, "not a count")
        return tokens

    answers = await asyncio.gather(*(one(model) for model in chosen))
    return {model: tokens for model, tokens in zip(chosen, answers, strict=True) if tokens}
