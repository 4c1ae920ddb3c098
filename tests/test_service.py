"""call() end to end: the real SDK against the fake Messages API."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import anthropic
import pytest

import django_claude
from django_claude import ClaudeUnavailable
from django_claude.models import CallRecord
from django_claude.testing import OK, Fault

PRIMARY = "claude-sonnet-4-6"
FALLBACK = "claude-haiku-4-5-20251001"
DEADLINE = 5.0  # tests/settings.py


def ask(**kwargs):
    return django_claude.call("Summarise: the printer is on fire.", feature="support", **kwargs)


# fault script for the primary, for the fallback -> requests to each, outcome
FAULT_MATRIX = [
    pytest.param([], [], 1, 0, "ok", id="plain-ok"),
    pytest.param([429, 529, OK], [], 3, 0, "ok", id="retry-then-ok"),
    pytest.param([408, 409, 500, OK], [], 4, 0, "ok", id="408-409-500-transient"),
    pytest.param([502, 503, 504, 529], [], 4, 1, "fallback", id="primary-exhausted"),
    pytest.param([404], [], 1, 1, "fallback", id="unknown-model-straight-to-fallback"),
    pytest.param([403], [], 1, 1, "fallback", id="forbidden-model-straight-to-fallback"),
    pytest.param([529] * 4, [529, 529], 4, 2, "degraded", id="everything-down"),
    pytest.param([529] * 4, [404], 4, 1, "degraded", id="fallback-unknown-too"),
    pytest.param([401], [], 1, 0, "degraded", id="auth-no-retry-no-fallback"),
    pytest.param([402], [], 1, 0, "degraded", id="billing-no-retry"),
    pytest.param([Fault(drop=True)] * 4, [], 4, 1, "fallback", id="dropped-connections"),
    pytest.param(
        [Fault(body="<html>bad gateway</html>", content_type="text/html"), OK],
        [],
        2,
        0,
        "ok",
        id="html-200-is-transient",
    ),
    pytest.param([Fault(delay=2.5), OK], [], 2, 0, "ok", id="timeout-then-ok"),
]


@pytest.mark.parametrize(
    ("primary", "fallback", "n_primary", "n_fallback", "outcome"), FAULT_MATRIX
)
def test_fault_matrix(claude, call_lines, primary, fallback, n_primary, n_fallback, outcome):
    claude.script(PRIMARY, primary)
    claude.script(FALLBACK, fallback)
    started = time.monotonic()
    result = ask()
    elapsed = time.monotonic() - started

    assert claude.count(PRIMARY) == n_primary
    assert claude.count(FALLBACK) == n_fallback
    assert claude.count() == n_primary + n_fallback
    assert result.outcome == outcome
    assert result.attempts == n_primary + n_fallback
    assert elapsed < DEADLINE

    record = CallRecord.objects.get()
    assert record.id == result.request_id
    assert record.outcome == outcome
    assert record.attempts == n_primary + n_fallback
    assert len(record.attempt_log) == n_primary + n_fallback
    assert record.model_requested == PRIMARY
    assert record.fallback_used == (n_fallback > 0)
    [line] = call_lines.lines
    assert line["request_id"] == str(result.request_id)
    assert line["outcome"] == outcome
    assert line["attempts"] == n_primary + n_fallback
    if outcome == "degraded":
        assert result.text == "Sorry, that didn't work. Please try again."
        assert result.model == ""
        assert line["event"] == "claude.error"
        assert record.error_type
        assert record.cost_usd == Decimal(0)
    else:
        served = FALLBACK if outcome == "fallback" else PRIMARY
        assert result.text == "Hello from the fake Claude."
        assert result.model == served == record.model
        assert line["event"] == "claude.call"
        assert record.cost_usd is not None and record.cost_usd > 0
        assert record.upstream_request_id.startswith("req_fake_")


@pytest.mark.parametrize("status", [400, 413, 422])
def test_caller_errors_are_recorded_then_raised(claude, call_lines, status):
    claude.script(PRIMARY, [status])
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        ask()
    assert excinfo.value.status_code == status
    assert claude.count() == 1  # no retry, no fallback: it is the caller's bug
    record = CallRecord.objects.get()
    assert record.outcome == "error"
    assert record.error_status == status
    assert call_lines.lines[0]["event"] == "claude.error"


def test_unknown_create_kwarg_is_the_callers_bug(claude):
    with pytest.raises(TypeError):
        ask(temperature=0.2)  # SDK 2.x has no temperature
    assert CallRecord.objects.get().outcome == "error"


def test_create_kwargs_reach_the_api(claude):
    ask(stop_sequences=["END"], metadata={"user_id": "u-1"}, system="Be brief.", max_tokens=50)
    body = claude.requests[0].body
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 50


def test_auth_failure_logged_at_error(claude, caplog):
    claude.script(PRIMARY, [401])
    with caplog.at_level(logging.INFO):
        result = ask()
    assert result.outcome == "degraded"
    call_line = [r for r in caplog.records if r.name == "django_claude.calls"]
    assert call_line[0].levelno == logging.ERROR


def test_retry_after_is_honoured(claude, settings):
    settings.DJANGO_CLAUDE_BACKOFF_BASE = 0.0
    claude.script(PRIMARY, [Fault(status=429, retry_after_ms="300"), OK])
    started = time.monotonic()
    result = ask()
    assert result.outcome == "ok"
    assert time.monotonic() - started >= 0.3


def test_retry_after_beyond_the_deadline_is_not_waited_for(claude):
    claude.script(PRIMARY, [Fault(status=429, retry_after="3600")])
    started = time.monotonic()
    result = ask()
    assert time.monotonic() - started < 1.0
    assert result.outcome == "fallback"
    assert claude.count(PRIMARY) == 1


def test_deadline_bounds_the_whole_call(claude, settings):
    settings.DJANGO_CLAUDE_TIMEOUT = 0.4
    settings.DJANGO_CLAUDE_DEADLINE = 1.0
    claude.always(PRIMARY, Fault(delay=2.0))
    claude.always(FALLBACK, Fault(delay=2.0))
    started = time.monotonic()
    result = ask()
    elapsed = time.monotonic() - started
    assert result.outcome == "degraded"
    assert elapsed < 1.0 + 0.25  # the deadline, plus scheduling slack
    assert claude.count(PRIMARY) >= 2
    assert claude.count(FALLBACK) >= 0
    assert CallRecord.objects.get().error_type == "APITimeoutError"


def test_last_attempt_timeout_is_cut_to_the_time_left(claude, settings):
    settings.DJANGO_CLAUDE_TIMEOUT = 2.0
    settings.DJANGO_CLAUDE_DEADLINE = 0.5
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    claude.always(PRIMARY, Fault(delay=1.5))
    started = time.monotonic()
    assert ask().outcome == "degraded"
    assert time.monotonic() - started < 0.5 + 0.25


def test_raise_on_failure(claude, settings):
    settings.DJANGO_CLAUDE_RAISE_ON_FAILURE = True
    claude.always(PRIMARY, 529)
    claude.always(FALLBACK, 529)
    with pytest.raises(ClaudeUnavailable) as excinfo:
        ask()
    record = CallRecord.objects.get()
    assert excinfo.value.request_id == record.id
    assert record.outcome == "degraded"


def test_no_fallback_configured(claude, settings):
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    claude.always(PRIMARY, 529)
    assert ask().outcome == "degraded"
    assert claude.count() == 4


def test_fallback_never_falls_back_again(claude, settings):
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = PRIMARY  # same as primary: no fallback at all
    claude.always(PRIMARY, 529)
    assert ask().outcome == "degraded"
    assert claude.count() == 4


def test_custom_degraded_message(claude, settings):
    settings.DJANGO_CLAUDE_DEGRADED_MESSAGE = "Our assistant is resting."
    claude.always(PRIMARY, 500)
    claude.always(FALLBACK, 500)
    assert ask().text == "Our assistant is resting."


def test_missing_api_key_is_degraded_not_a_crash(claude, settings, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    settings.DJANGO_CLAUDE_API_KEY = None
    # Not this machine (the fake on loopback would get a placeholder key); the
    # SDK refuses before it sends anything.
    settings.DJANGO_CLAUDE_BASE_URL = "http://192.0.2.1:9"
    result = ask()
    assert result.outcome == "degraded"
    assert claude.count() == 0
    assert CallRecord.objects.get().error_type == "MissingCredentials"


# -- cache and idempotency ------------------------------------------------------


def test_cache_ttl_reuses_an_identical_answer(claude):
    first = ask(cache_ttl=60)
    second = ask(cache_ttl=60)
    assert claude.count() == 1
    assert first.outcome == "ok"
    assert second.outcome == "cached"
    assert second.text == first.text
    assert second.cost_usd == Decimal(0)
    assert second.attempts == 0
    assert second.message is not None and second.message.model == PRIMARY
    assert CallRecord.objects.filter(outcome="cached").count() == 1
    assert CallRecord.objects.count() == 2


def test_cache_ttl_keys_on_the_request(claude):
    ask(cache_ttl=60)
    django_claude.call("Another question", feature="support", cache_ttl=60)
    ask(cache_ttl=60, max_tokens=20)
    assert claude.count() == 3


def test_degraded_answers_are_not_cached(claude):
    claude.script(PRIMARY, [529] * 4)
    claude.script(FALLBACK, [529] * 2)
    assert ask(cache_ttl=60).outcome == "degraded"
    assert ask(cache_ttl=60).outcome == "ok"


def test_idempotency_key_replays_one_upstream_call(claude):
    first = ask(idempotency_key="order-42")
    again = ask(idempotency_key="order-42")
    other = ask(idempotency_key="order-43")
    assert claude.count() == 2
    assert again.outcome == "cached" and again.text == first.text
    assert other.outcome == "ok"
    assert CallRecord.objects.filter(idempotency_key="order-42").count() == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_idempotent_calls_make_one_request(fake_anthropic):
    import threading

    from django.db import connections

    from django_claude.recording import writer

    fake_anthropic.script(PRIMARY, [Fault(delay=0.5)])
    results = []

    def worker():
        results.append(ask(idempotency_key="pay-7"))
        connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush_pending()
    assert fake_anthropic.count() == 1
    assert sorted(r.outcome for r in results) == ["cached", "cached", "ok"]
    assert CallRecord.objects.count() == 3


# -- users, tags, bad input --------------------------------------------------------


def test_user_instance_and_string(claude, django_user_model):
    user = django_user_model.objects.create(username="ada")
    django_claude.call("hi", feature="f", user=user)
    django_claude.call("hi", feature="f", user="ext-77")
    by_ref = {r.user_ref: r for r in CallRecord.objects.all()}
    assert by_ref[str(user.pk)].user_id == user.pk
    assert by_ref["ext-77"].user_id is None


def test_anonymous_user_is_no_user(claude):
    from django.contrib.auth.models import AnonymousUser

    django_claude.call("hi", feature="f", user=AnonymousUser())
    assert CallRecord.objects.get().user_ref == ""


def test_tags_are_stored_redacted(claude):
    django_claude.call("hi", feature="f", tags={"plan": "pro", "contact": "bob@example.com"})
    assert CallRecord.objects.get().tags == {"plan": "pro", "contact": "[EMAIL]"}


def test_a_feature_label_is_redacted_on_every_call(claude, call_lines, settings):
    """The redacted label is remembered between calls, per redactor."""
    for _ in range(2):
        django_claude.call("hi", feature="tickets ada@example.com")
    assert [r.feature for r in CallRecord.objects.all()] == ["tickets [EMAIL]"] * 2
    assert "ada@example.com" not in "".join(str(line) for line in call_lines.lines)
    settings.DJANGO_CLAUDE_REDACTOR = "tests.test_service.work_redactor"
    django_claude.call("hi", feature="tickets ada@example.com")
    assert CallRecord.objects.order_by("-created_at")[0].feature == "[WORK] [EMAIL]"


def work_redactor(text: str) -> str:
    from django_claude.recording.redaction import redact

    return redact(text).replace("tickets", "[WORK]")


def test_messages_instead_of_prompt(claude):
    result = django_claude.call(
        feature="chat",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second, mail x@y.org"}]},
        ],
    )
    assert result.outcome == "ok"
    assert len(claude.requests[0].body["messages"]) == 3
    assert CallRecord.objects.get().prompt_prefix == "second, mail [EMAIL]"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"prompt": "", "feature": "f"}, ValueError),
        ({"prompt": "   ", "feature": "f"}, ValueError),
        ({"prompt": "hi", "feature": ""}, ValueError),
        ({"prompt": "hi", "feature": "x" * 101}, ValueError),
        ({"prompt": None, "feature": "f"}, ValueError),
        (
            {"prompt": "hi", "feature": "f", "messages": [{"role": "user", "content": "x"}]},
            ValueError,
        ),
        ({"prompt": b"bytes", "feature": "f"}, TypeError),
        ({"prompt": "bad \ud800 surrogate", "feature": "f"}, ValueError),
        ({"prompt": "hi", "feature": "f", "max_tokens": 0}, ValueError),
        ({"prompt": "hi", "feature": "f", "cache_ttl": -1}, ValueError),
        ({"prompt": "hi", "feature": "f", "model": "claude-opus-4-7"}, TypeError),
        ({"prompt": "hi", "feature": "f", "stream": True}, TypeError),
        ({"prompt": "hi", "feature": "f", "tags": {"k": object()}}, TypeError),
        ({"prompt": "hi", "feature": "f", "idempotency_key": ""}, ValueError),
    ],
)
def test_bad_input_is_refused_before_any_request(claude, kwargs, error):
    with pytest.raises(error):
        django_claude.call(**kwargs)
    assert claude.count() == 0


def test_feature_is_required(claude):
    with pytest.raises(TypeError):
        django_claude.call("hi")  # feature= is missing


def test_nul_bytes_and_huge_prompt_are_stored_safely(claude):
    prompt = "start\x00with NUL, card 4111 1111 1111 1111 " + "x" * 10_000_000
    result = django_claude.call(prompt, feature="big")
    assert result.outcome == "ok"
    record = CallRecord.objects.get()
    assert "\x00" not in record.prompt_prefix
    assert "\\x00" in record.prompt_prefix
    assert "[CARD]" in record.prompt_prefix
    assert len(record.prompt_prefix) <= 80


def test_unknown_model_in_settings_falls_back(claude, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-does-not-exist"
    claude.unknown_models.add("claude-does-not-exist")
    result = ask()
    assert result.outcome == "fallback"
    assert result.model == FALLBACK


def test_the_answer_and_prompt_never_reach_log_or_record(claude, call_lines):
    claude.reply_text = "SECRET-ANSWER-TEXT " * 5
    django_claude.call("PROMPT-BODY " + "y" * 200, feature="f")
    assert "SECRET-ANSWER-TEXT" not in call_lines.raw
    assert "y" * 100 not in call_lines.raw
    record = CallRecord.objects.get()
    assert all("SECRET-ANSWER-TEXT" not in str(v) for v in record.__dict__.values())


def test_api_key_never_logged_or_recorded(claude, settings, caplog):
    key = "sk-ant-api03-THIS-KEY-MUST-NEVER-BE-LOGGED-0123456789"
    settings.DJANGO_CLAUDE_API_KEY = key
    claude.script(PRIMARY, [401])
    claude.script(FALLBACK, [])
    with caplog.at_level(logging.DEBUG):
        ask()
        settings.DJANGO_CLAUDE_TIMEOUT = 0.3
        claude.always(PRIMARY, Fault(delay=1))
        claude.always(FALLBACK, Fault(delay=1))
        ask()
    sent = claude.requests[0].headers
    assert key in sent.get("x-api-key", "") + sent.get("authorization", "")  # it was really sent
    assert key not in caplog.text
    assert "THIS-KEY-MUST-NEVER" not in caplog.text
    for record in CallRecord.objects.all():
        assert all("THIS-KEY" not in str(v) for v in record.__dict__.values())


def test_result_usage_and_cost(claude):
    claude.usage = {"input_tokens": 1000, "output_tokens": 500}
    result = ask()
    # claude-sonnet-4-6: 3 USD / MTok in, 15 USD / MTok out
    assert result.cost_usd == Decimal("0.0105")
    assert result.usage["input_tokens"] == 1000
    assert CallRecord.objects.get().cost_usd == Decimal("0.0105")
