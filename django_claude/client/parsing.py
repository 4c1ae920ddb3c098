"""An answer made from a raw Messages API response, faster than the SDK does.

The SDK makes its ``Message`` in Python (``construct_type``, lenient: it
checks nothing), ~0.3 ms of CPU for a short answer, a quarter of what a
call added to a served request (``benchmarks/site_load.py``).
pydantic-core (Rust) validates the same body in ~0.03 ms. So answers are
asked for raw, and a plain one (text and thinking blocks, no citations) is
validated here: strictly (nothing coerced: a count sent as "26" is not
plain) and without fields this SDK does not know, so that it is exactly the
``Message`` the SDK would have made, ``_request_id`` included. Everything
else goes to the SDK's own parse, as it always did: tool use, server tools
and citations are unions pydantic tries member by member, converting the
whole block for each, which for a large tool input is ten times slower
than the SDK; and an unknown block type or stop reason is the SDK's to
keep. With pydantic 1 every body does.

While the call's span records, the SDK's own span reads the answer it
parsed, so the request is made the SDK's way (``raw=False``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pydantic
from anthropic import APIResponse
from anthropic.types import Message

from django_claude.client.errors import BadResponse
from django_claude.client.sdk import async_direct_lane, direct_lane, sdk_request

_VALIDATES = hasattr(Message, "model_validate")
_KEEPS_WORKSPACE = hasattr(APIResponse, "workspace_id")  # (this SDK's parse() sets it)
_PLAIN_BLOCKS = frozenset({"text", "thinking", "redacted_thinking"})
# What only an answer that is not plain holds: a tool's input, a tool's
# result, citations. Inside a JSON string a quote is escaped, so text that
# quotes these words does not hold them; a text that is exactly one of them
# only goes to the SDK's parse, as any body that is not plain does.
_NOT_PLAIN = (b'"input"', b'_tool_result"', b'"citations": [', b'"citations":[')


def create_message(client: Any, *, raw: bool, **kwargs: Any) -> Message:
    """``client.messages.create(**kwargs)``, asked for raw when ``raw`` (by
    the client's direct lane when it has one and the request is plain).
    Raises ``BadResponse`` for a 200 that is not a Message."""
    if raw:
        lane = direct_lane(client)
        response = None if lane is None else lane.send_plain(kwargs)
        if lane is not None and response is not None:
            message = validated_response(response)
            if message is None:
                message = _parsed(functools.partial(lane.parse, response))
            return checked(message)
        return checked(message_of(sdk_request(client.messages.with_raw_response.create, **kwargs)))
    try:
        answer = sdk_request(client.messages.create, **kwargs)
    except (ValueError, RecursionError) as exc:
        if _unreadable(exc):
            raise unreadable_body() from None
        raise
    return checked(answer)


async def acreate_message(client: Any, *, raw: bool, **kwargs: Any) -> Message:
    """``create_message`` with an ``AsyncAnthropic`` client."""
    if raw:
        alane = async_direct_lane(client)
        sent = None if alane is None else await alane.send_plain(kwargs)
        if alane is not None and sent is not None:
            message = validated_response(sent)
            if message is None:
                message = await _aparsed(functools.partial(alane.parse, sent))
            return checked(message)
        response = await sdk_request(client.messages.with_raw_response.create, **kwargs)
        message = validated(response)
        if message is None:
            message = await _aparsed(response.parse)
        return checked(message)
    try:
        answer = await sdk_request(client.messages.create, **kwargs)
    except (ValueError, RecursionError) as exc:
        if _unreadable(exc):
            raise unreadable_body() from None
        raise
    return checked(answer)


def _parsed(parse: Any) -> Any:
    """The SDK's parse of a raw response; ``BadResponse`` for a body it cannot
    read (not JSON, nested too deep, a number beyond Python's digit limit)."""
    try:
        return parse()
    except (ValueError, RecursionError):
        raise unreadable_body() from None


async def _aparsed(parse: Any) -> Any:
    """``_parsed`` of an async parse."""
    try:
        return await parse()
    except (ValueError, RecursionError):
        raise unreadable_body() from None


def unreadable_body() -> BadResponse:
    """The error for a 200 whose body is not JSON this process can read."""
    return BadResponse(None, what="a body that cannot be read as JSON")


def _unreadable(exc: BaseException) -> bool:
    """Did the SDK's own parse fail on the body? (A ``ValueError`` raised
    before the request, such as its refusal of a non-streaming request that
    may take over 10 minutes, is the caller's.)"""
    return isinstance(
        exc, (json.JSONDecodeError, RecursionError)
    ) or "integer string conversion" in str(exc)


def checked(answer: Any) -> Message:
    """``answer`` if it is a Message with content; else ``BadResponse``: a
    proxy's page, or JSON of another shape (of which the SDK's lenient parse
    still makes a Message, without content)."""
    if not isinstance(answer, Message):
        raise BadResponse(answer)
    if not isinstance(answer.content, list):
        content = type(answer.content).__name__
        raise BadResponse(answer, what=f"a message whose content is a {content}")
    return answer


def message_of(raw: Any) -> Any:
    """The answer of a sync raw response: validated here when it is plain,
    else whatever the SDK's ``parse()`` makes of it."""
    message = validated(raw)
    return _parsed(raw.parse) if message is None else message


def validated(raw: Any) -> Message | None:
    """A plain answer's ``Message``, as the SDK's ``parse()`` would make it;
    None for any other body (``message_of`` then asks the SDK)."""
    return validated_response(raw.http_response)


def validated_response(response: Any) -> Message | None:
    """``validated`` of the httpx response itself."""
    if not _VALIDATES:
        return None
    body = response.content
    if any(mark in body for mark in _NOT_PLAIN):  # not read twice: straight to the SDK
        return None
    try:
        data = json.loads(body)  # as the SDK reads it
    except (ValueError, RecursionError):  # not JSON, too deep, a number too long: the SDK's
        return None
    if not _plain(data):
        return None
    try:
        message = Message.model_validate(data, strict=True)
    except pydantic.ValidationError:
        return None
    if _unknown_fields(message):  # kept by both, but counted as set only by validation
        return None
    headers = response.headers  # as the SDK's parse() sets them
    message._request_id = headers.get("request-id")
    if _KEEPS_WORKSPACE:
        message._workspace_id = headers.get("anthropic-workspace-id")
    return message


def _plain(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    content = data.get("content")
    return isinstance(content, list) and all(
        isinstance(block, dict)
        and isinstance(kind := block.get("type"), str)
        and kind in _PLAIN_BLOCKS
        and not block.get("citations")
        for block in content
    )


def _unknown_fields(model: pydantic.BaseModel) -> bool:
    if model.__pydantic_extra__:
        return True
    for value in model.__dict__.values():  # (plain loops: this runs on every answer)
        if isinstance(value, pydantic.BaseModel):
            if _unknown_fields(value):
                return True
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, pydantic.BaseModel) and _unknown_fields(item):
                    return True
    return False
