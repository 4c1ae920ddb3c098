"""What one call used, as Anthropic reported it: the counts its bill depends on.

Read from the SDK's ``Message`` (or a dict of the same shape) and made safe:
a count that is not one is 0, a label that is not a short word is "other",
so nothing upstream sends reaches a log line or a row as it came.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

# The server tools that run in a code execution container (Anthropic bills
# container time, not uses: see costs/containers.py).
CODE_EXECUTION_TOOLS = frozenset(
    {"code_execution", "bash_code_execution", "text_editor_code_execution"}
)


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. ``input_tokens`` excludes every cache token."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0  # 5-minute and 1-hour writes together
    cache_creation_1h_input_tokens: int = 0  # the 1-hour share of the above
    web_search_requests: int = 0  # server tools (usage.server_tool_use)
    web_fetch_requests: int = 0
    inference_geo: str = ""  # "us": US-only inference, 1.1x on every token
    speed: str = ""  # "fast": fast mode's own rates
    service_tier: str = ""  # "batch": the Message Batches API, half price
    # Code execution: the tool's runs in the answer and the container they ran
    # in. Anthropic bills the container's hours, not the runs: the day's fee
    # is shared out over the calls that used containers (costs/containers.py).
    code_execution_requests: int = 0
    container_id: str = ""

    @classmethod
    def from_message(
        cls, message: Any, *, late_write_ttl: Callable[[], str] | None = None
    ) -> Usage:
        """``from_api`` of a ``Message``'s usage, with its code execution runs
        (server tool uses in the content) and container."""
        usage = cls.from_api(getattr(message, "usage", None), late_write_ttl=late_write_ttl)
        try:  # what upstream sent is not validated: any shape, never an exception
            content = getattr(message, "content", None)
            runs = sum(
                1
                for block in (content if isinstance(content, (list, tuple)) else ())
                if _getter(block)("type") == "server_tool_use"
                and isinstance(name := _getter(block)("name"), str)
                and name in CODE_EXECUTION_TOOLS
            )
            container = getattr(message, "container", None)
            container_id = container_ref(_getter(container)("id")) if container else ""
        except Exception:
            return usage
        if not runs and not container_id:
            return usage
        return replace(
            usage, code_execution_requests=min(runs, MAX_COUNT), container_id=container_id
        )

    @classmethod
    def from_api(cls, usage: Any, *, late_write_ttl: Callable[[], str] | None = None) -> Usage:
        """Read the SDK's ``Usage`` (or a dict of the same shape).

        Cache writes counted in ``cache_creation_input_tokens`` beyond its
        5-minute/1-hour split (a stream's later writes, whose total comes in
        ``message_delta`` while the SDK keeps the first split) are priced at
        the TTL ``late_write_ttl()`` says the request asked for (asked only
        when there are such writes); 5 minutes without it."""
        if usage is None:
            return cls()
        get = _getter(usage)
        creation = get("cache_creation")
        one_hour = 0
        five_min = None
        if creation is not None:
            cget = _getter(creation)
            one_hour = _count(cget("ephemeral_1h_input_tokens"))
            five_min = _count(cget("ephemeral_5m_input_tokens"))
        total_creation = _count(get("cache_creation_input_tokens"))
        if five_min is not None:
            late = total_creation > five_min + one_hour
            if late and late_write_ttl is not None and late_write_ttl() == "1h":
                one_hour = total_creation - five_min
            total_creation = max(total_creation, five_min + one_hour)
        tools = get("server_tool_use")
        tget = _getter(tools) if tools is not None else lambda k: None
        return cls(
            input_tokens=_count(get("input_tokens")),
            output_tokens=_count(get("output_tokens")),
            cache_read_input_tokens=_count(get("cache_read_input_tokens")),
            cache_creation_input_tokens=total_creation,
            cache_creation_1h_input_tokens=one_hour,
            web_search_requests=_count(tget("web_search_requests")),
            web_fetch_requests=_count(tget("web_fetch_requests")),
            inference_geo=_label(get("inference_geo")),
            speed=_label(get("speed")),
            service_tier=_label(get("service_tier")),
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_creation_1h_input_tokens": self.cache_creation_1h_input_tokens,
            "web_search_requests": self.web_search_requests,
            "web_fetch_requests": self.web_fetch_requests,
            "code_execution_requests": self.code_execution_requests,
        }


MAX_COUNT = 2_147_483_647  # what a record's counter column holds


def _count(value: Any) -> int:
    """A count as upstream reported it, made a count: a number that is not
    one, negative or beyond the column is 0 or clamped, never an exception."""
    if isinstance(value, bool):
        return 0
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(number, MAX_COUNT))


def _getter(value: Any) -> Any:
    """``value.get`` for a dict, attribute access for the SDK's models."""
    return value.get if isinstance(value, Mapping) else lambda k: getattr(value, k, None)


_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,15}")


_CONTAINER = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _as_sent(value: Any, shape: re.Pattern[str]) -> str:
    """``value`` as upstream sent it if it has ``shape``, else "other" (never
    stored or logged as it came); "" for none."""
    if value is None or value == "":
        return ""
    return value if isinstance(value, str) and shape.fullmatch(value) else "other"


def _label(value: Any) -> str:
    """A usage label ("us", "fast", "batch"): a short lower-case word."""
    return _as_sent(value, _LABEL)


def container_ref(value: Any) -> str:
    """A container id: letters, digits, ``_`` and ``-``, at most 100."""
    return _as_sent(value, _CONTAINER)
