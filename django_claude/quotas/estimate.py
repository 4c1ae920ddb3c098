"""A call's worst case, reserved against its quotas before it is sent.

Input tokens are bounded from above without a tokenizer: a token covers at
least one byte of text, so the UTF-8 length of every string in the request
(messages, system, tool definitions) bounds them, plus a margin per message
and for tool use. An image costs at most ``IMAGE_TOKENS`` (Anthropic
resizes larger ones); a base64 document counts one token per decoded byte.
Anthropic's token-counting endpoint may count them instead (``counting``).
Output is ``max_tokens`` (thinking included). The USD worst case prices
that usage on the dearer of the model and its fallback, input at the 1-hour
cache-write rate when the request caches anything, with its speed and
inference geo, plus ``max_uses`` web searches (``DEFAULT_SEARCHES`` when the
tool sets none), each with ``SEARCH_RESULT_TOKENS`` of results to read.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django_claude.recording.pricing import Usage, price_book, price_detail

IMAGE_TOKENS = 5_000
MESSAGE_MARGIN = 16  # tokens of role and framing per message
TOOLS_MARGIN = 1_000  # the tool-use system prompt Anthropic adds
DEFAULT_SEARCHES = 10  # a web search tool without max_uses
SEARCH_RESULT_TOKENS = 10_000  # input a search's results may add
MAX_CONTEXT = 1_000_000


@dataclass(frozen=True)
class WorstCase:
    input_tokens: int
    output_tokens: int
    usd: Decimal | None  # None: no model of the route has a price

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _text_tokens(value: Any) -> int:
    """An upper bound on the tokens of a request's content: the UTF-8 length
    of its text, and of its structure (keys, numbers, punctuation: a tool
    result of numbers is all structure), with images and documents apart."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if isinstance(value, (dict, Mapping)):  # (a dict: no ABC check)
        source = value.get("source")
        if isinstance(source, Mapping) and value.get("type") in ("image", "document"):
            if value.get("type") == "image":
                return IMAGE_TOKENS
            data = source.get("data")
            if isinstance(data, str) and source.get("type") == "base64":
                return len(data) * 3 // 4
            return _text_tokens(data) if data is not None else MAX_CONTEXT // 10
        return sum(
            _text_tokens(key) + _text_tokens(item) + 6  # "key": value,
            for key, item in value.items()
            if key != "cache_control"
        )
    if isinstance(value, (list, tuple)):
        return 2 + sum(_text_tokens(item) + 2 for item in value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return len(repr(value))
    try:  # an SDK object: its JSON
        return len(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return MAX_CONTEXT // 10


def _asks_to_cache(value: Any) -> bool:
    if isinstance(value, str):  # most of a request (no ABC check for them)
        return False
    if isinstance(value, (dict, Mapping)):
        return "cache_control" in value or any(_asks_to_cache(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_asks_to_cache(item) for item in value)
    return False


def _searches(tools: Any) -> int:
    total = 0
    for tool in tools if isinstance(tools, (list, tuple)) else ():
        kind = tool.get("type", "") if isinstance(tool, Mapping) else ""
        if isinstance(kind, str) and kind.startswith("web_search"):
            uses = tool.get("max_uses")
            total += uses if isinstance(uses, int) and uses > 0 else DEFAULT_SEARCHES
    return total


def _option(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    extra = params.get("extra_body")
    if value is None and isinstance(extra, Mapping):
        value = extra.get(name)
    return value if isinstance(value, str) else ""


def worst_case(
    params: Mapping[str, Any],
    models: list[str],
    *,
    on: datetime.date,
    counted: Mapping[str, int] | None = None,
) -> WorstCase:
    """The most a request with these ``messages.create`` arguments can cost
    on any of ``models`` (the route's model and its fallback). ``counted``:
    a model's input tokens as Anthropic's token-counting endpoint counted
    them (``counting``), instead of the byte bound."""
    messages = params.get("messages") or []
    tools = params.get("tools")
    bound = (
        _text_tokens(messages)
        + _text_tokens(params.get("system"))
        + MESSAGE_MARGIN * (len(messages) + 1)
    )
    if tools:
        bound += _text_tokens(tools) + TOOLS_MARGIN
    searches = _searches(tools)
    output_tokens = int(params.get("max_tokens") or 0)
    caches = _asks_to_cache(params)
    geo, speed = _option(params, "inference_geo"), _option(params, "speed")
    key = (tuple(models), bound, searches, output_tokens, caches, geo, speed, on)
    book = price_book()  # (read first: a price saved meanwhile drops what is priced now)
    if not counted:  # (a request like an earlier one: its worst case is known)
        known = _worst.get(key, book)
        if known is not None:
            return known
    costs = []
    most_input = 0
    for model in dict.fromkeys(m for m in models if m) or [""]:
        # A search's results are input the request does not hold yet.
        base = counted.get(model, bound) if counted else bound
        input_tokens = min(base + SEARCH_RESULT_TOKENS * searches, MAX_CONTEXT)
        most_input = max(most_input, input_tokens)
        if not model:
            continue
        usage = Usage(
            input_tokens=0 if caches else input_tokens,
            output_tokens=output_tokens,
            cache_creation_input_tokens=input_tokens if caches else 0,
            cache_creation_1h_input_tokens=input_tokens if caches else 0,
            web_search_requests=searches,
            inference_geo=geo,
            speed=speed,
        )
        costs.append(_cost(model, usage, on))
    usd = None if not costs or None in costs else max(c for c in costs if c is not None)
    worst = WorstCase(most_input, output_tokens, usd)
    if not counted:
        _worst.put(key, worst, book)
    return worst


class _Costs:
    """What a usage costs on a model and day, remembered while the site's
    prices stay the same object (``price_book`` replaces it when it reloads):
    a feature's calls ask about the same few worst cases again and again."""

    KEPT = 4096

    def __init__(self) -> None:
        self.book: object = None
        self.known: dict[tuple[str, Usage, datetime.date], Decimal | None] = {}

    def get(self, model: str, usage: Usage, on: datetime.date) -> Decimal | None:
        book = price_book()
        if book is not self.book:
            self.book, self.known = book, {}
        key = (model, usage, on)
        try:
            return self.known[key]
        except KeyError:
            pass
        priced = price_detail(model, usage, on=on, itemize=False)
        cost = None if priced is None else priced.cost
        if len(self.known) >= self.KEPT:
            self.known = {}
        self.known[key] = cost
        return cost


_cost = _Costs().get


class _Known:
    """Worst cases by their request's measure, while the prices stay the same
    object (a feature's calls are alike: one walk of the request, no pricing).
    The book and its worst cases change together, as one attribute."""

    def __init__(self) -> None:
        self.state: tuple[object, dict[tuple[Any, ...], WorstCase]] = (None, {})

    def get(self, key: tuple[Any, ...], book: object) -> WorstCase | None:
        kept_for, known = self.state
        return known.get(key) if kept_for is book else None

    def put(self, key: tuple[Any, ...], worst: WorstCase, book: object) -> None:
        """Keep ``worst``, priced on ``book`` (read before the pricing began)."""
        kept_for, known = self.state
        if kept_for is not book or len(known) >= _Costs.KEPT:
            if price_book() is not book:
                return  # the prices changed while this one was priced
            known = {}
            self.state = (book, known)
        known[key] = worst


_worst = _Known()
