"""The direct lane (``client/direct.py``) sends a plain request exactly as the
SDK would: the fake API receives the same headers and body both ways, a
failure is the SDK's own exception, and whatever the SDK would convert first
still goes through the SDK."""

from __future__ import annotations

import asyncio
import collections
import datetime
import gc
import json
import logging
import sys
import threading
import warnings
import weakref
from typing import Any

import anthropic
import pytest

import django_claude
from django_claude.client import direct
from django_claude.client.direct import async_lane_for, lane_for
from django_claude.client.sdk import QUIET_TELEMETRY, direct_lane, forget_clients, get_client
from django_claude.testing import Fault

MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-test-fake-key-0000"
HELLO = [{"role": "user", "content": "hi"}]

PLAIN: dict[str, dict[str, Any]] = {
    "least": {},
    "system-text": {"system": "You are terse."},
    "system-blocks-cached": {
        "system": [
            {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ]
    },
    "blocks": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Seen."}]},
            {"role": "user", "content": "And?"},
        ]
    },
    "tools": {
        "tools": [
            {
                "name": "lookup",
                "description": "Find a thing.",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "find it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}],
            },
        ],
    },
    "options": {
        "metadata": {"user_id": "u-17"},
        "stop_sequences": ("END", "STOP"),  # a tuple: a list both ways
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "service_tier": "auto",
    },
    "every-script": {
        "messages": [
            {
                "role": "user",
                "content": 'naïve café ✓ 東京 مرحبا 🙂 \u2028 \x00 \\ " \t end',
            }
        ]
    },
    "a-whole-number-timeout": {"timeout": 30},
    "mappings-and-numbers": {
        "metadata": collections.OrderedDict(user_id="x"),
        "max_tokens": 2**31,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "0.1", "x": 0.1}]}],
    },
}


def _kwargs(shape: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 50, "messages": HELLO, "timeout": 30.0, **shape}


@pytest.fixture
def sent() -> list[Any]:
    """Every request the ``quiet`` client sends, as httpx made it."""
    return []


@pytest.fixture
def quiet(fake_anthropic, sent):
    base = anthropic.Anthropic(
        api_key=KEY,
        base_url=fake_anthropic.url,
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(event_hooks={"request": [sent.append]}),
    )
    client = base.with_options(open_telemetry=QUIET_TELEMETRY)
    yield client
    base.close()


def _received(fake) -> tuple[dict[str, Any], dict[str, str]]:
    request = fake.requests[-1]
    return request.body, request.headers


@pytest.mark.parametrize("name", list(PLAIN))
def test_a_plain_request_is_sent_as_the_sdk_sends_it(fake_anthropic, quiet, sent, name):
    lane = lane_for(quiet)
    assert lane is not None
    assert lane.send_plain(_kwargs({})) is not None  # its template for 30.0 made
    kwargs = _kwargs(PLAIN[name])
    quiet.messages.create(**kwargs)  # (``with_raw_response`` adds a header of its own)
    sdk_body, sdk_headers = _received(fake_anthropic)
    sdk_bytes = sent[-1].content
    response = lane.send_plain(kwargs)
    assert response is not None and response.status_code == 200  # sent by the lane
    body, headers = _received(fake_anthropic)
    assert body == sdk_body
    assert sent[-1].content == sdk_bytes  # byte for byte: the SDK's key order and encoding
    assert headers == sdk_headers  # content-length, the SDK's x-stainless-* and all
    names = [name.lower() for name, _ in response.request.headers.raw]
    assert len(names) == len(set(names))  # (the fake keeps one of a repeated header)
    assert fake_anthropic.count() == 3


def test_an_async_plain_request_is_sent_as_the_sdk_sends_it(fake_anthropic):
    async def both() -> None:
        base = anthropic.AsyncAnthropic(api_key=KEY, base_url=fake_anthropic.url, max_retries=0)
        client = base.with_options(open_telemetry=QUIET_TELEMETRY)
        for shape in PLAIN.values():
            kwargs = _kwargs(shape)
            await client.messages.create(**kwargs)
            expected = _received(fake_anthropic)
            lane = async_lane_for(client)
            assert lane is not None
            assert await lane.send_plain(kwargs) is not None
            assert _received(fake_anthropic) == expected
        await base.close()

    asyncio.run(both())


def _generator():
    yield {"role": "user", "content": "hi"}


class _PathText(str):
    """A path that is also text (as ``path.Path`` is): the SDK reads the file."""

    def __fspath__(self) -> str:
        return str(self)


CONVERTED_BY_THE_SDK: dict[str, dict[str, Any]] = {
    "a-file-path-as-text": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": _PathText("/tmp/picture.png"),
                        },
                    }
                ],
            }
        ]
    },
    "no-model": {"model": None},  # (taken out below: the SDK's TypeError, nothing sent)
    "a-generator": {"messages": _generator()},
    "a-date": {"metadata": {"user_id": datetime.date(2026, 11, 28)}},
    "extra-headers": {"extra_headers": {"x-team": "blue"}},
    "extra-body": {"extra_body": {"future_field": 1}},
    "an-unknown-argument": {"workspace_id": "wrkspc_1"},
    "no-timeout": {"timeout": None},
    "bytes": {"system": b"bytes"},
}


@pytest.mark.parametrize("name", list(CONVERTED_BY_THE_SDK))
def test_what_the_sdk_converts_is_not_the_lanes(fake_anthropic, quiet, name):
    lane = lane_for(quiet)
    assert lane is not None
    kwargs = _kwargs(CONVERTED_BY_THE_SDK[name])
    if kwargs["model"] is None:
        del kwargs["model"]
    assert lane.send_plain(kwargs) is None
    assert fake_anthropic.count() == 0  # nothing sent: the SDK sends it


def test_cookies_the_client_was_given_are_sent_by_the_sdk(fake_anthropic, quiet, sent):
    lane = lane_for(quiet)
    assert lane is not None
    assert lane.send_plain(_kwargs({})) is not None  # its template made without cookies
    quiet._client.cookies.set("lb", "v3", domain="127.0.0.1")
    assert lane.send_plain(_kwargs({})) is None
    quiet.messages.create(**_kwargs({}))
    assert sent[-1].headers["cookie"] == "lb=v3"


def test_with_the_sdks_debug_log_on_the_sdk_sends_and_logs(fake_anthropic, quiet, caplog):
    lane = lane_for(quiet)
    assert lane is not None
    with caplog.at_level(logging.DEBUG, logger="anthropic"):
        assert lane.send_plain(_kwargs({})) is None
    assert lane.send_plain(_kwargs({})) is not None


def test_templates_replaced_under_many_threads_never_fail_a_request(
    fake_anthropic, quiet, monkeypatch
):
    monkeypatch.setattr(direct, "_TEMPLATES_KEPT", 2)  # replaced all the time
    lane = lane_for(quiet)
    assert lane is not None
    failures: list[BaseException] = []

    def send(thread: int) -> None:
        for n in range(50):
            try:
                lane.send_plain(_kwargs({"timeout": 10.0 + thread + n / 1000}))
            except BaseException as exc:  # noqa: BLE001 (what reached the caller)
                failures.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between any two steps
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert failures == []
    assert fake_anthropic.count() == 400


def test_a_lane_lets_its_client_go(fake_anthropic, settings):
    twins = []

    async def one_loop() -> None:
        from django_claude.client.sdk import get_async_client

        twins.append(weakref.ref(get_async_client(quiet=True)))

    for _ in range(3):
        asyncio.run(one_loop())
    twins.append(weakref.ref(get_client(quiet=True)))
    forget_clients()
    gc.collect()
    assert [twin() for twin in twins] == [None] * 4


def test_a_model_the_sdk_warns_about_still_warns(claude, settings):
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    old = next(iter(DEPRECATED_MODELS))
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = old
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert django_claude.call("hi", feature="old").outcome == "ok"
    assert any(w.category is DeprecationWarning and old in str(w.message) for w in caught)


def test_a_call_keeps_what_the_sdk_converts(claude):
    result = django_claude.call(
        "hi", feature="extras", extra_headers={"x-team": "blue"}, metadata={"user_id": "u-1"}
    )
    assert result.outcome == "ok"
    body, headers = _received(claude)
    assert headers["x-team"] == "blue"
    assert body["metadata"] == {"user_id": "u-1"}


FAILURES = [400, 401, 403, 404, 413, 429, 500, 529]


@pytest.mark.parametrize("status", FAILURES)
def test_a_failure_status_is_the_sdks_own_exception(fake_anthropic, quiet, status):
    fake_anthropic.script(MODEL, [Fault(status=status, retry_after="3"), Fault(status=status)])
    with pytest.raises(anthropic.APIStatusError) as by_sdk:
        quiet.messages.create(**_kwargs({}))
    lane = lane_for(quiet)
    assert lane is not None
    with pytest.raises(anthropic.APIStatusError) as by_lane:
        lane.send_plain(_kwargs({}))
    assert type(by_lane.value) is type(by_sdk.value)
    assert by_lane.value.status_code == status
    assert by_lane.value.body == by_sdk.value.body
    assert str(by_lane.value) == str(by_sdk.value)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(delay=2.0), anthropic.APITimeoutError),
        (Fault(drop=True), anthropic.APIConnectionError),
    ],
    ids=["slow", "dropped"],
)
def test_a_lost_answer_is_the_sdks_own_exception(fake_anthropic, quiet, fault, error):
    fake_anthropic.script(MODEL, [fault, fault])
    kwargs = _kwargs({"timeout": 0.3})
    with pytest.raises(error) as by_sdk:
        quiet.messages.create(**kwargs)
    lane = lane_for(quiet)
    assert lane is not None
    with pytest.raises(error) as by_lane:
        lane.send_plain(kwargs)
    assert type(by_lane.value) is type(by_sdk.value)
    assert type(by_lane.value.__cause__) is type(by_sdk.value.__cause__)


def test_an_answer_that_is_not_plain_is_the_sdks_to_parse(fake_anthropic, quiet):
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    fake_anthropic.script(MODEL, [Fault(body=json.dumps(body))] * 2)
    expected = quiet.messages.create(**_kwargs({}))
    lane = lane_for(quiet)
    assert lane is not None
    response = lane.send_plain(_kwargs({}))
    assert response is not None
    assert lane.parse(response).model_dump() == expected.model_dump()


class _SignsItsRequests(anthropic.Anthropic):
    def _prepare_request(self, request: Any) -> None:
        request.headers["x-signature"] = "signed"


def test_a_client_that_changes_its_requests_has_no_lane(fake_anthropic):
    client = _SignsItsRequests(api_key=KEY, base_url=fake_anthropic.url, max_retries=0)
    assert lane_for(client) is None
    client.close()


def test_calls_use_the_lane_of_the_quiet_client(claude):
    assert direct_lane(get_client(quiet=True)) is not None
    assert direct_lane(get_client(quiet=False)) is None  # its SDK span sees the request
    result = django_claude.call("hi", feature="lane")
    assert result.outcome == "ok"
    assert result.message is not None and result.message._request_id
