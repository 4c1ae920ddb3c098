"""Answers are asked for raw and validated by pydantic-core (``sdk.message_of``):
whatever the body, the caller gets the very ``Message`` the SDK's own parse
would have made, or the SDK's parse itself when validation refuses it."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import anthropic
import pytest

import django_claude
from django_claude.client.parsing import message_of, validated
from django_claude.models import CallRecord
from django_claude.testing import Fault

MODEL = "claude-sonnet-4-6"  # DJANGO_CLAUDE_DEFAULT_MODEL: every feature's route
USAGE = {
    "input_tokens": 26,
    "output_tokens": 6,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


def _message(content: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "id": "msg_answers_test",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": dict(USAGE),
        **more,
    }


TEXT = {"type": "text", "text": "Hello."}
BODIES = {
    "text": _message([TEXT]),
    "thinking-then-text": _message(
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Paris. " * 2000, "citations": None},
        ],
        usage={
            **USAGE,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": None,
            "service_tier": "standard",
        },
        container=None,
    ),
    "tool-use": _message(
        [
            {"type": "text", "text": "Looking it up."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "lookup",
                "input": {"query": "printer", "floors": [3, 4], "deep": {"a": None}},
            },
        ],
        stop_reason="tool_use",
    ),
    "thinking-and-citations": _message(
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {
                "type": "text",
                "text": "Paris.",
                "citations": [
                    {
                        "type": "char_location",
                        "cited_text": "Paris is the capital",
                        "document_index": 0,
                        "document_title": "Atlas",
                        "start_char_index": 0,
                        "end_char_index": 20,
                    }
                ],
            },
        ]
    ),
    "server-tools": _message(
        [
            {
                "type": "server_tool_use",
                "id": "srvtoolu_01",
                "name": "web_search",
                "input": {"query": "django"},
            },
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_01",
                "content": [
                    {
                        "type": "web_search_result",
                        "url": "https://www.djangoproject.com/",
                        "title": "Django",
                        "encrypted_content": "abc",
                        "page_age": None,
                    }
                ],
            },
            TEXT,
        ],
        usage={
            **USAGE,
            "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0},
            "service_tier": "standard",
        },
    ),
    "fields-the-sdk-does-not-know": _message(
        [{**TEXT, "shade": "blue"}], mood="cheerful", usage={**USAGE, "future_tokens": 3}
    ),
    # Refused by validation, so the SDK's own lenient parse makes these:
    "a-block-type-from-the-future": _message([TEXT, {"type": "hologram", "depth": 3}]),
    "a-stop-reason-from-the-future": _message([TEXT], stop_reason="ran_out_of_moon"),
    "a-count-sent-as-text": _message([TEXT], usage={**USAGE, "output_tokens": "6"}),
    "a-count-sent-as-a-float": _message([TEXT], usage={**USAGE, "output_tokens": 6.0}),
}


def _sdk_parse(url: str, body: str) -> Any:
    """What the bare SDK makes of ``body`` (served the same way)."""
    client = anthropic.Anthropic(api_key="sk-ant-test-fake-key-0000", base_url=url, max_retries=0)
    try:
        return client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        client.close()


def _same_message(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs) is anthropic.types.Message
    assert [type(b) for b in ours.content] == [type(b) for b in theirs.content]
    assert type(ours.usage) is type(theirs.usage)
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.usage.model_fields_set == theirs.usage.model_fields_set
    # (warnings: the SDK's lenient parse of an unknown block makes a TextBlock
    # of another type, which pydantic warns about when dumping it.)
    assert ours.model_dump(warnings=False) == theirs.model_dump(warnings=False)
    assert ours.model_dump_json(warnings=False) == theirs.model_dump_json(warnings=False)
    assert ours.model_dump(exclude_unset=True, warnings=False) == theirs.model_dump(
        exclude_unset=True, warnings=False
    )


@pytest.mark.parametrize("name", list(BODIES))
def test_the_answer_is_the_message_the_sdk_would_make(claude, name):
    body = json.dumps(BODIES[name])
    claude.script(MODEL, [Fault(body=body), Fault(body=body)])
    result = django_claude.call("hi", feature="answers")
    assert result.outcome == "ok"
    _same_message(result.message, _sdk_parse(claude.url, body))
    # The request id the SDK puts on its answers, from this response's header.
    record = CallRecord.objects.get(id=result.request_id)
    assert result.message._request_id == record.upstream_request_id
    assert result.message._request_id.startswith("req_fake_")


# acall records from a thread, outside the test's transaction.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("name", ["server-tools", "a-block-type-from-the-future"])
def test_acall_answers_as_call_does(fake_anthropic, call_lines, name):
    body = json.dumps(BODIES[name])
    fake_anthropic.script(MODEL, [Fault(body=body), Fault(body=body)])
    result = asyncio.run(django_claude.acall("hi", feature="answers"))
    assert result.outcome == "ok"
    _same_message(result.message, _sdk_parse(fake_anthropic.url, body))
    assert result.message._request_id.startswith("req_fake_")


def test_usage_and_text_come_from_the_validated_answer(claude):
    body = copy.deepcopy(BODIES["server-tools"])
    body["usage"]["input_tokens"] = 1234
    claude.script(MODEL, [Fault(body=json.dumps(body))])
    result = django_claude.call("hi", feature="answers")
    record = CallRecord.objects.get(id=result.request_id)
    assert result.text == "Hello."
    assert (record.input_tokens, record.web_search_requests) == (1234, 1)


@pytest.mark.parametrize(
    "body",
    [
        {"hello": "proxy"},
        {"type": "message", "content": None},
        {"type": "message", "content": "Hello."},
        {"type": "message", "content": {"type": "text", "text": "Hello."}},
        [TEXT],
    ],
    ids=["another-shape", "no-content", "content-a-string", "content-an-object", "a-list"],
)
def test_a_200_that_is_not_a_message_is_a_bad_response(claude, body):
    # Valid JSON of another shape: the SDK's lenient parse makes a Message
    # without content of some; the call retries, falls back, then degrades.
    claude.always(MODEL, Fault(body=json.dumps(body)))
    claude.always("claude-haiku-4-5-20251001", Fault(body=json.dumps(body)))
    result = django_claude.call("hi", feature="answers")
    assert result.outcome == "degraded"
    record = CallRecord.objects.get(id=result.request_id)
    assert record.error_type == "BadResponse"


# Plain answers (text and thinking, no citations, no field this SDK does not
# know); the rest are the SDK's to parse (see django_claude/client/parsing.py).
VALIDATED = ["text", "thinking-then-text"]


@pytest.mark.parametrize("name", list(BODIES))
def test_only_what_validation_refuses_goes_to_the_sdks_slower_parse(fake_anthropic, name):
    fake_anthropic.script(MODEL, [Fault(body=json.dumps(BODIES[name]))])
    client = anthropic.Anthropic(
        api_key="sk-ant-test-fake-key-0000", base_url=fake_anthropic.url, max_retries=0
    )
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    made = validated(raw)
    assert (made is not None) == (name in VALIDATED)
    _same_message(message_of(raw), raw.parse())


UNREADABLE = {
    "empty": "",
    "cut-short": '{"type": "message", "content": [',
    "bom": "\ufeff{}",
    "a-number-beyond-the-digit-limit": '{"id": ' + "9" * 5000 + "}",
    "nested-too-deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_a_json_body_that_cannot_be_read_is_a_bad_response(claude, name):
    # Served as application/json: the SDK's parse raised JSONDecodeError,
    # ValueError or RecursionError out of call().
    claude.always(MODEL, Fault(body=UNREADABLE[name]))
    claude.always("claude-haiku-4-5-20251001", Fault(body=UNREADABLE[name]))
    result = django_claude.call("hi", feature="answers")
    assert result.outcome == "degraded"
    record = CallRecord.objects.get(id=result.request_id)
    assert record.error_type == "BadResponse"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("name", ["cut-short", "a-number-beyond-the-digit-limit"])
def test_acall_too(fake_anthropic, call_lines, name):
    fake_anthropic.always(MODEL, Fault(body=UNREADABLE[name]))
    fake_anthropic.always("claude-haiku-4-5-20251001", Fault(body=UNREADABLE[name]))
    result = asyncio.run(django_claude.acall("hi", feature="answers"))
    assert result.outcome == "degraded"


@pytest.mark.parametrize("kind", [{}, [], 3, None])
def test_a_block_whose_type_is_not_a_string_goes_to_the_sdks_parse(claude, kind):
    body = json.dumps(_message([TEXT, {"type": kind, "text": "odd"}]))
    claude.script(MODEL, [Fault(body=body), Fault(body=body)])
    result = django_claude.call("hi", feature="answers")
    assert result.outcome == "ok"  # as before: the SDK's lenient parse keeps it
    _same_message(result.message, _sdk_parse(claude.url, body))
