"""OpenTelemetry spans of calls: the GenAI attributes, the request's trace as
parent, the SDK's spans as children, ids in the line and the row, no content."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

import django_claude
from django_claude import telemetry
from django_claude.client import sdk
from django_claude.conf import conf
from django_claude.models import CallRecord
from django_claude.testing import flush_pending
from django_claude.testing.faults import Fault

PRIMARY, FALLBACK = "claude-sonnet-4-6", "claude-haiku-4-5-20251001"
SDK_SPAN = "anthropic.messages.create"


def _reset_globals() -> None:
    """OpenTelemetry lets a process set its providers once; its own test
    utilities reset these globals the same way."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    trace._PROXY_TRACER_PROVIDER = trace.ProxyTracerProvider()
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()
    telemetry.forget_tracer()
    sdk.forget_clients()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_globals()
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    _reset_globals()


@pytest.fixture
def measured():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    _reset_globals()
    metrics.set_meter_provider(provider)
    yield reader
    provider.shutdown()
    _reset_globals()


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    """Every data point, by metric name."""
    found: dict[str, list] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def ours(exporter: InMemorySpanExporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]


def test_a_call_is_one_client_span_with_the_genai_attributes(claude, spans, call_lines):
    result = django_claude.call("hello", feature="support", max_tokens=321, user="u1")
    [span] = ours(spans)
    assert span.name == f"chat {PRIMARY}" and span.kind == SpanKind.CLIENT
    attributes = dict(span.attributes)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == PRIMARY
    assert attributes["gen_ai.request.max_tokens"] == 321
    assert attributes["gen_ai.response.model"] == PRIMARY
    assert attributes["gen_ai.response.id"].startswith("msg_")
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.usage.input_tokens"] == result.usage["input_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == result.usage["output_tokens"]
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 0
    assert attributes["django_claude.feature"] == "support"
    assert attributes["django_claude.outcome"] == "ok"
    assert attributes["django_claude.attempts"] == 1
    assert attributes["django_claude.request_id"] == str(result.request_id)
    assert attributes["django_claude.cost_usd"] > 0
    assert "error.type" not in attributes
    assert span.status.status_code == StatusCode.UNSET
    # The line and the row name the span.
    [line] = call_lines.lines
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    flush_pending()
    row = CallRecord.objects.get()
    assert (row.trace_id, row.span_id) == (line["trace_id"], line["span_id"])


def test_the_span_is_a_child_of_the_request_and_the_parent_of_the_sdks(claude, spans):
    tracer = trace.get_tracer("the-site")
    with tracer.start_as_current_span("GET /summary") as request_span:
        django_claude.call("hello", feature="support")
    [span] = ours(spans)
    assert span.parent is not None
    assert span.parent.span_id == request_span.get_span_context().span_id
    assert span.context.trace_id == request_span.get_span_context().trace_id
    sdk_spans = [s for s in spans.get_finished_spans() if s.name == SDK_SPAN]
    assert len(sdk_spans) == 1  # one request: one SDK span, under ours
    assert sdk_spans[0].parent.span_id == span.context.span_id
    # Nothing the SDK's span says contradicts ours.
    for key in ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens"):
        if key in sdk_spans[0].attributes:
            assert sdk_spans[0].attributes[key] == span.attributes[key]


def test_a_fallback_shows_each_attempt_as_an_event(claude, spans, settings):
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 2
    claude.always(PRIMARY, 529)
    result = django_claude.call("hello", feature="support")
    assert result.outcome == "fallback"
    [span] = ours(spans)
    assert span.attributes["gen_ai.response.model"] == FALLBACK
    assert span.attributes["django_claude.outcome"] == "fallback"
    events = [dict(e.attributes) for e in span.events if e.name == "django_claude.attempt"]
    assert [(e["model"], e.get("status")) for e in events] == [
        (PRIMARY, 529),
        (PRIMARY, 529),
        (FALLBACK, 200),
    ]
    # The back-off after an attempt that is retried (none in tests: BACKOFF_BASE 0).
    assert [e.get("wait_ms") for e in events] == [0, None, None]
    assert span.status.status_code == StatusCode.UNSET
    sdk_spans = [s for s in spans.get_finished_spans() if s.name == SDK_SPAN]
    assert len(sdk_spans) == 3 and all(s.parent.span_id == span.context.span_id for s in sdk_spans)


def test_a_degraded_call_is_an_error_span(claude, spans, settings):
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    settings.DJANGO_CLAUDE_FALLBACK_ATTEMPTS = 1
    claude.always(PRIMARY, 529)
    claude.always(FALLBACK, 529)
    assert django_claude.call("hello", feature="support").outcome == "degraded"
    [span] = ours(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["django_claude.outcome"] == "degraded"
    assert span.attributes["error.type"]
    assert "gen_ai.response.model" not in span.attributes


def test_a_caller_error_is_an_error_span(claude, spans):
    claude.script(PRIMARY, [400])
    with pytest.raises(anthropic.BadRequestError):
        django_claude.call("hello", feature="support")
    [span] = ours(spans)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["django_claude.outcome"] == "error"
    assert span.attributes["error.type"]


def test_a_cached_call_has_a_span_too(claude, spans):
    django_claude.call("hello", feature="support", cache_ttl=60)
    assert django_claude.call("hello", feature="support", cache_ttl=60).outcome == "cached"
    first, second = ours(spans)
    assert second.attributes["django_claude.outcome"] == "cached"
    assert second.status.status_code == StatusCode.UNSET


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_acall_stream_and_astream_have_spans(fake_anthropic, spans):
    from tests.test_streaming import run_async

    async def calls() -> None:
        await django_claude.acall("hi", feature="async-call")
        async with django_claude.astream("hi", feature="async-stream") as stream:
            async for _ in stream.text_stream:
                pass

    run_async(calls())
    with django_claude.stream("hi", feature="sync-stream") as stream:
        for _ in stream.text_stream:
            pass
    by_feature = {s.attributes["django_claude.feature"]: s for s in ours(spans)}
    assert set(by_feature) == {"async-call", "async-stream", "sync-stream"}
    for span in by_feature.values():
        assert span.attributes["django_claude.outcome"] == "ok"
        assert span.attributes["gen_ai.usage.output_tokens"] > 0


def test_an_interrupted_stream_is_an_error_span(claude, spans):
    claude.script(PRIMARY, [Fault(cut_after=2)])
    with django_claude.stream("hi", feature="chat") as stream:
        for _ in stream.text_stream:
            pass
    [span] = ours(spans)
    assert span.attributes["django_claude.outcome"] == "interrupted"
    assert span.status.status_code == StatusCode.ERROR


PII = [
    "jane.doe@example.com",
    "+1 415 555 0134",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
    "4111 1111 1111 1111",
]


def test_no_prompt_answer_or_pii_reaches_a_span(claude, spans):
    claude.reply_text = "Write to jane.doe@example.com, card 4111 1111 1111 1111"
    prompt = "My email is jane.doe@example.com, phone +1 415 555 0134, key " + PII[2]
    django_claude.call(prompt, feature="support", tags={"note": PII[0]}, tenant="acme")
    asyncio.run(asyncio.sleep(0))
    dumped = json.dumps(
        [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "events": [dict(e.attributes or {}) for e in s.events],
                "resource": dict(s.resource.attributes),
            }
            for s in spans.get_finished_spans()
        ],
        default=str,
    )
    for secret in [*PII, "My email", "Write to"]:
        assert secret not in dumped


def test_without_a_tracer_provider_there_are_no_ids(claude, call_lines):
    _reset_globals()
    django_claude.call("hello", feature="support")
    [line] = call_lines.lines
    assert (line["trace_id"], line["span_id"]) == ("", "")


def test_metrics_follow_the_genai_conventions(claude, measured, settings):
    result = django_claude.call("hello", feature="support")
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    settings.DJANGO_CLAUDE_FALLBACK_ATTEMPTS = 1
    claude.always(PRIMARY, 529)
    claude.always(FALLBACK, 529)
    django_claude.call("hello", feature="support")
    found = points(measured)
    tokens = {p.attributes["gen_ai.token.type"]: p for p in found["gen_ai.client.token.usage"]}
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].sum == result.usage["input_tokens"]
    assert tokens["output"].sum == result.usage["output_tokens"]
    assert list(tokens["input"].explicit_bounds) == telemetry.TOKEN_BUCKETS
    for point in tokens.values():
        assert point.attributes["gen_ai.operation.name"] == "chat"
        assert point.attributes["gen_ai.provider.name"] == "anthropic"
        assert point.attributes["gen_ai.request.model"] == PRIMARY
        assert point.attributes["gen_ai.response.model"] == PRIMARY
    durations = found["gen_ai.client.operation.duration"]
    assert list(durations[0].explicit_bounds) == telemetry.DURATION_BUCKETS
    failed = [p for p in durations if "error.type" in p.attributes]
    fine = [p for p in durations if "error.type" not in p.attributes]
    assert len(failed) == 1 and len(fine) == 1 and failed[0].count == fine[0].count == 1
    calls = {p.attributes["django_claude.outcome"]: p.value for p in found["django_claude.calls"]}
    assert calls == {"ok": 1, "degraded": 1}
    [cost] = found["django_claude.cost"]
    assert cost.attributes == {"django_claude.feature": "support", "gen_ai.response.model": PRIMARY}
    assert cost.value == pytest.approx(float(result.cost_usd))


def test_no_pii_reaches_a_metric(claude, measured):
    prompt = "My email is jane.doe@example.com, phone +1 415 555 0134, key " + PII[2]
    django_claude.call(prompt, feature="support", tags={"note": PII[0]}, tenant="acme", user="u9")
    dumped = json.dumps(
        {name: [dict(p.attributes) for p in found] for name, found in points(measured).items()}
    )
    for secret in [*PII, "acme", "u9", "My email"]:
        assert secret not in dumped


def test_a_smell_test_judgement_has_a_span(claude, spans, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    claude.reply_text = "PASS"
    django_claude.call("hello", feature="support", smell_test=True)
    flush_pending()
    models = sorted(s.attributes["gen_ai.request.model"] for s in ours(spans))
    assert models == sorted([PRIMARY, conf.SMELL_TEST_MODEL])


def test_content_only_when_the_site_opts_in_and_only_redacted(claude, spans, settings):
    claude.reply_text = "Sure, I wrote to jane.doe@example.com."
    django_claude.call("Email jane.doe@example.com the summary", feature="support")
    settings.DJANGO_CLAUDE_OTEL_CAPTURE_CONTENT = True
    django_claude.call("Email jane.doe@example.com the summary", feature="support")
    off, on = ours(spans)
    assert "gen_ai.input.messages" not in off.attributes
    [asked] = json.loads(on.attributes["gen_ai.input.messages"])
    [said] = json.loads(on.attributes["gen_ai.output.messages"])
    assert asked["role"] == "user" and asked["parts"][0]["content"] == "Email [EMAIL] the summary"
    assert said["parts"][0]["content"] == "Sure, I wrote to [EMAIL]."
    assert said["finish_reason"] == "end_turn"
    assert "jane.doe" not in json.dumps(dict(on.attributes))


def test_the_record_page_links_to_the_trace(admin_client, claude, spans, settings):
    from django.urls import reverse

    django_claude.call("hello", feature="support")
    flush_pending()
    row = CallRecord.objects.get()
    page = reverse("admin:django_claude_callrecord_change", args=[row.pk])
    assert row.trace_id in admin_client.get(page).content.decode()
    settings.DJANGO_CLAUDE_TRACE_URL = "https://tempo.example.com/trace/{trace_id}?span={span_id}"
    html = admin_client.get(page).content.decode()
    assert f'href="https://tempo.example.com/trace/{row.trace_id}?span={row.span_id}"' in html


@pytest.mark.parametrize(
    "template",
    ["tempo.example.com/{trace_id}", "https://x.example/{span_id}", "https://x/{trace_id}/{other}"],
)
def test_a_bad_trace_url_is_a_check_error(settings, template):
    from django_claude import checks

    settings.DJANGO_CLAUDE_TRACE_URL = template
    assert checks.E014 in [m.id for m in checks.check_settings()]


# -- every entry point, every ending ------------------------------------------------------

ENTRIES = ["call", "acall", "stream", "astream"]


def _run(entry: str, **kwargs: Any) -> object:
    """One call through ``entry``; its result (or the exception it raised)."""

    async def async_call() -> object:
        if entry == "acall":
            return await django_claude.acall("hello", feature="matrix", **kwargs)
        async with django_claude.astream("hello", feature="matrix", **kwargs) as stream:
            async for _ in stream.text_stream:
                pass
        return stream.result

    try:
        if entry == "call":
            return django_claude.call("hello", feature="matrix", **kwargs)
        if entry == "stream":
            with django_claude.stream("hello", feature="matrix", **kwargs) as stream:
                for _ in stream.text_stream:
                    pass
            return stream.result
        return asyncio.run(async_call())
    except anthropic.BadRequestError as exc:
        return exc


COMMON = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": PRIMARY,
    "django_claude.feature": "matrix",
}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("entry", "ending"),
    [
        (entry, ending)
        for entry in ENTRIES
        for ending in ("ok", "fallback", "degraded", "error", "cached")
        # A stream never replays a stored answer (it refuses cache_ttl).
        if not (ending == "cached" and entry.endswith("stream"))
    ],
)
def test_every_entry_point_and_ending(fake_anthropic, spans, settings, entry, ending):
    settings.DJANGO_CLAUDE_MAX_ATTEMPTS = 1
    settings.DJANGO_CLAUDE_FALLBACK_ATTEMPTS = 1
    kwargs: dict[str, Any] = {}
    if ending == "fallback":
        fake_anthropic.always(PRIMARY, 529)
    elif ending == "degraded":
        fake_anthropic.always(PRIMARY, 529)
        fake_anthropic.always(FALLBACK, 529)
    elif ending == "error":
        fake_anthropic.always(PRIMARY, 400)
    elif ending == "cached":
        kwargs["cache_ttl"] = 60
        django_claude.call("hello", feature="matrix", cache_ttl=60)
        spans.clear()
    _run(entry, **kwargs)
    flush_pending()
    [span] = ours(spans)
    attributes = dict(span.attributes)
    assert {k: attributes.get(k) for k in COMMON} == COMMON
    assert attributes["django_claude.outcome"] == ending
    answered = ending in ("ok", "fallback", "cached")
    assert ("error.type" in attributes) is not answered
    assert span.status.status_code == (StatusCode.UNSET if answered else StatusCode.ERROR)
    if ending in ("ok", "fallback"):
        model = PRIMARY if ending == "ok" else FALLBACK
        assert attributes["gen_ai.response.model"] == model
        assert attributes["gen_ai.response.id"].startswith("msg_")
        assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
        assert attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["gen_ai.usage.input_tokens"] > 0
    line_ids = set(CallRecord.objects.values_list("trace_id", "span_id"))
    context = span.get_span_context()
    assert (f"{context.trace_id:032x}", f"{context.span_id:016x}") in line_ids


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", ["stream", "astream", "acall"])
def test_an_interrupted_call_is_an_error_span_everywhere(fake_anthropic, spans, entry):
    if entry == "acall":
        fake_anthropic.always(PRIMARY, Fault(delay=5))

        async def cancelled() -> None:
            task = asyncio.ensure_future(django_claude.acall("hello", feature="matrix"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancelled())
    else:
        fake_anthropic.script(PRIMARY, [Fault(cut_after=2)])
        _run(entry)
    flush_pending()
    [span] = ours(spans)
    assert span.attributes["django_claude.outcome"] == "interrupted"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"]


# -- what a hostile review found ----------------------------------------------------------


def test_the_sdks_spans_carry_no_content_whatever_its_environment_says(claude, spans, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")
    sdk.forget_clients()
    claude.reply_text = "Card 4111 1111 1111 1111 noted."
    django_claude.call("My email is jane.doe@example.com", feature="support")
    [sdk_span] = [s for s in spans.get_finished_spans() if s.name == SDK_SPAN]
    dumped = json.dumps([dict(s.attributes or {}) for s in spans.get_finished_spans()], default=str)
    assert "jane.doe" not in dumped and "4111" not in dumped
    assert "gen_ai.input.messages" not in sdk_span.attributes


@pytest.mark.parametrize("value", ["false", "False", 1, "yes"])
def test_only_true_turns_content_capture_on(claude, spans, settings, value):
    from django_claude import checks

    settings.DJANGO_CLAUDE_OTEL_CAPTURE_CONTENT = value
    django_claude.call("hello jane.doe@example.com", feature="support")
    [span] = ours(spans)
    assert "gen_ai.input.messages" not in span.attributes
    assert checks.E015 in [m.id for m in checks.check_settings()]


def test_a_doubled_brace_trace_url_is_refused(settings):
    from django_claude import checks

    settings.DJANGO_CLAUDE_TRACE_URL = "https://tempo.example.com/trace/{{trace_id}}"
    assert checks.E014 in [m.id for m in checks.check_settings()]


def slow_redactor(text: str) -> str:
    import time

    time.sleep(0.4)
    return text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_cancel_during_an_ending_in_a_thread_records_the_call_once(
    fake_anthropic, spans, call_lines, settings
):
    # A site's redactor is not known not to block: the ending runs in a
    # thread; cancelling the caller meanwhile must not record it twice.
    settings.DJANGO_CLAUDE_REDACTOR = "tests.test_telemetry.slow_redactor"

    async def cancel_while_ending() -> None:
        task = asyncio.ensure_future(django_claude.acall("hello", feature="once"))
        await asyncio.sleep(0.25)  # answered; the ending is redacting in its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(1.0)  # the thread finishes its ending

    asyncio.run(cancel_while_ending())
    flush_pending()
    assert len([line for line in call_lines.lines if line["feature"] == "once"]) == 1
    assert len(ours(spans)) == 1
    assert CallRecord.objects.filter(feature="once").count() == 1


def interrupting_redactor(text: str) -> str:
    raise KeyboardInterrupt


def test_a_span_is_ended_whatever_escapes_the_call(claude, spans, settings):
    settings.DJANGO_CLAUDE_REDACTOR = "tests.test_telemetry.interrupting_redactor"
    with pytest.raises(KeyboardInterrupt):
        django_claude.call("hello", feature="support")
    [span] = ours(spans)  # ended, so exported, with the SDK's span under it
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["django_claude.outcome"] == "interrupted"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8"])
def test_while_spans_record_the_sdks_span_reads_the_answer_it_parsed(claude, spans, content_type):
    # Answers are validated by django-claude unless a span records: the SDK's
    # own span then describes the answer whatever the body's content type.
    from django_claude.testing.messages import answer

    body = answer({"model": "claude-sonnet-4-6", "messages": []}, "Hello.", usage={})
    claude.script("claude-sonnet-4-6", [Fault(body=json.dumps(body), content_type=content_type)])
    result = django_claude.call("hello", feature="support")
    assert result.outcome == "ok"
    [sdk_span] = [s for s in spans.get_finished_spans() if s.name == SDK_SPAN]
    assert sdk_span.attributes["gen_ai.response.id"] == result.message.id
    assert sdk_span.attributes["gen_ai.usage.output_tokens"] == result.usage["output_tokens"]


@pytest.mark.parametrize("body", ["", '{"id": ' + "9" * 5000 + "}", "[" * 100_000])
def test_while_spans_record_a_body_that_cannot_be_read_is_a_bad_response(claude, spans, body):
    claude.always(PRIMARY, Fault(body=body))
    claude.always(FALLBACK, Fault(body=body))
    result = django_claude.call("hello", feature="support")
    assert result.outcome == "degraded"
    assert CallRecord.objects.get(id=result.request_id).error_type == "BadResponse"


# -- without a tracer provider ------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", ENTRIES)
def test_without_a_provider_a_trace_context_passed_in_still_reaches_the_api(
    fake_anthropic, call_lines, entry
):
    # A site whose proxy passes a trace on (no OpenTelemetry SDK here): the
    # SDK sends that context with the request, as it does without us.
    _reset_globals()
    passed_in = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with trace.use_span(trace.NonRecordingSpan(passed_in)):
        _run(entry)
    [request] = fake_anthropic.requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert "0af7651916cd43dd8448eb211c80319c" in headers.get("traceparent", "")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", ENTRIES)
def test_without_a_provider_or_a_trace_no_trace_header_is_sent(fake_anthropic, call_lines, entry):
    _reset_globals()
    assert isinstance(_run(entry), django_claude.ClaudeResult)
    [request] = fake_anthropic.requests
    assert "traceparent" not in {name.lower() for name in request.headers}


def test_a_meter_provider_set_after_the_first_calls_counts_the_calls_after_it(claude):
    # Calls made before a provider is set are skipped by the metrics (nothing
    # would count them); the app's instruments still follow a provider set later.
    _reset_globals()
    django_claude.call("before", feature="support")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    try:
        django_claude.call("after", feature="support")
        django_claude.call("after again", feature="support")
        calls = {
            p.attributes["django_claude.outcome"]: p.value
            for p in points(reader)["django_claude.calls"]
        }
        assert calls == {"ok": 2}
    finally:
        provider.shutdown()
        _reset_globals()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("entry", ENTRIES)
def test_without_a_provider_baggage_still_reaches_the_api(fake_anthropic, call_lines, entry):
    # OpenTelemetry's default propagators send baggage without a tracer
    # provider too; the SDK did, and still does.
    from opentelemetry import baggage, context

    _reset_globals()
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        _run(entry)
    finally:
        context.detach(token)
    [request] = fake_anthropic.requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert "tenant=acme" in headers.get("baggage", "")
