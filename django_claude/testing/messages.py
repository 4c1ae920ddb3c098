"""The fake's answers: message bodies and the SSE events a stream sends."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from django_claude.testing.faults import Fault


def answer(body: dict[str, Any], text: str, *, usage: dict[str, Any]) -> dict[str, Any]:
    """The message answering ``body`` with ``text``; ``usage`` overrides the
    counts the fake works out (``ephemeral_5m/1h_input_tokens`` split the
    cache writes)."""
    counts: dict[str, Any] = {
        "input_tokens": prompt_tokens(body),
        "output_tokens": max(1, len(text) // 4),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        # What the request asked for comes back in the usage, as Anthropic's does.
        "service_tier": "standard",
        "inference_geo": body.get("inference_geo") or "global",
        "speed": body.get("speed") or "standard",
    }
    counts.update(usage)
    five = counts.pop("ephemeral_5m_input_tokens", None)
    hour = counts.pop("ephemeral_1h_input_tokens", None)
    if five is not None or hour is not None:
        counts["cache_creation"] = {
            "ephemeral_5m_input_tokens": five or 0,
            "ephemeral_1h_input_tokens": hour or 0,
        }
        counts["cache_creation_input_tokens"] = (five or 0) + (hour or 0)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": counts,
    }


def with_code_execution(message: dict[str, Any], runs: int, container: str) -> None:
    """Add ``runs`` code execution runs in ``container`` to ``message``."""
    message["content"] += code_execution_blocks(runs)
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=30)
    message["container"] = {
        "id": container,
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }


def code_execution_blocks(runs: int) -> list[dict[str, Any]]:
    """What an answer holds for each run of the code execution tool: the
    server tool's use and its result (after the text, here, for brevity)."""
    blocks: list[dict[str, Any]] = []
    for run in range(runs):
        use_id = f"srvtoolu_{uuid.uuid4().hex[:20]}"
        name = "code_execution" if run % 2 == 0 else "bash_code_execution"
        blocks.append(
            {"type": "server_tool_use", "id": use_id, "name": name, "input": {"code": "1 + 1"}}
        )
        result = {"type": "code_execution_result", "stdout": "2", "stderr": "", "return_code": 0}
        blocks.append(
            {
                "type": "code_execution_tool_result",
                "tool_use_id": use_id,
                "content": {**result, "content": []},
            }
        )
    return blocks


def prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's input token count of a request: a token per 4 characters."""
    prompt_chars = len(json.dumps(body.get("messages", []))) + len(str(body.get("system", "")))
    return max(1, prompt_chars // 4)


def stream_events(message: dict[str, Any], fault: Fault) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of ``message`` as ``fault`` would send them (cut short, stalled...)."""
    text = message["content"][0]["text"]
    usage = dict(message["usage"])
    start = dict(message, content=[], stop_reason=None)
    start.pop("container", None)  # it comes in message_delta
    early = usage.pop("_start", {})
    start["usage"] = {**usage, **early, "output_tokens": 1}
    # message_delta carries the cumulative totals, as Anthropic's does.
    late = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    delta_usage = {k: usage[k] for k in (*late, "server_tool_use", "output_tokens") if k in usage}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *[("ping", {"type": "ping"})] * max(1, fault.pings),
    ]
    for i in range(0, len(text), 8):
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text[i : i + 8]},
                },
            )
        )
    if fault.stall_after is not None:
        first_delta = next(i for i, (name, _) in enumerate(events) if name.endswith("delta"))
        events[first_delta + fault.stall_after :] = [("ping", {"type": "ping"})] * 100_000
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    for index, block in enumerate(message["content"][1:], start=1):
        opened = dict(block, input={}) if block["type"] == "server_tool_use" else block
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            )
        )
        if block["type"] == "server_tool_use":
            partial = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": partial},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta: dict[str, Any] = {"stop_reason": "end_turn", "stop_sequence": None}
    if "container" in message:
        delta["container"] = message["container"]
    events += [
        (
            "message_delta",
            {"type": "message_delta", "delta": delta, "usage": delta_usage},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    stop_at = None  # index of the first event not sent
    if fault.cut_after is not None or fault.error_event is not None:
        deltas = 0
        stop_at = len(events)
        for i, (name, _) in enumerate(events):
            if name == "content_block_delta":
                if deltas == (fault.cut_after or 0):
                    stop_at = i
                    break
                deltas += 1
    return events[:stop_at]
