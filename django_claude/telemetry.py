"""OpenTelemetry spans for Claude calls, after the GenAI semantic conventions.

Each ``call``, ``acall``, ``stream`` and ``astream`` is one ``CLIENT`` span,
``chat {model}``, a child of whatever span is current (the request's, under
Django's OpenTelemetry instrumentation), and current itself while the call's
attempts run, so that the anthropic SDK's own span for each request
(``anthropic.messages.create``) is its child. Attempts are events on the
call span, not spans of their own: the SDK already makes a span per request
when a tracer provider is set, and a second one would count each attempt
twice.

Attributes come from the call's log line, which is redacted: no prompt or
answer is ever put on a span. Without a tracer provider configured the span
is OpenTelemetry's non-recording one, and nothing else is done: a few
microseconds a call. The anthropic SDK (2.x) depends on ``opentelemetry-api``
itself; should it not be importable, calls have no span at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django_claude.types import Outcome

logger = logging.getLogger(__name__)

PROVIDER = "anthropic"
OPERATION = "chat"
_UNSET: Any = object()
_tracer: Any = _UNSET
_instruments: Any = _UNSET

# The buckets the GenAI conventions advise for these two histograms.
TOKEN_BUCKETS = [4.0**power for power in range(14)]  # 1, 4, 16 ... 67,108,864
DURATION_BUCKETS = [0.01 * 2**power for power in range(14)]  # 0.01 s ... 81.92 s


def _get_tracer() -> Any:
    """The app's tracer (None when OpenTelemetry is not importable), made once:
    OpenTelemetry's proxy tracer follows a provider set later."""
    global _tracer
    if _tracer is _UNSET:
        try:
            from opentelemetry import trace
        except ImportError:
            _tracer = None
        else:
            _tracer = trace.get_tracer("django_claude")
    return _tracer


def forget_tracer() -> None:
    """Take the tracer and the meter's instruments anew at the next call
    (tests that swap providers)."""
    global _tracer, _instruments
    _tracer = _instruments = _UNSET


def note_not_sent() -> None:
    """Mark the current span (the SDK's, around a request a quota stopped
    before it went out) ``django_claude.not_sent``. Never raises."""
    if _get_tracer() is None:
        return
    try:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("django_claude.not_sent", True)
    except Exception:
        logger.debug("claude telemetry: could not mark a span", exc_info=True)


class _Instruments:
    """The app's four instruments, from OpenTelemetry's global meter (whose
    proxies follow a provider set later)."""

    def __init__(self, meter: Any) -> None:
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.calls = meter.create_counter(
            "django_claude.calls", unit="{call}", description="Claude calls by outcome"
        )
        self.cost = meter.create_counter(
            "django_claude.cost", unit="USD", description="What Claude calls cost, in USD"
        )


def _get_instruments() -> _Instruments | None:
    global _instruments
    if _instruments is _UNSET:
        try:
            from opentelemetry import metrics
        except ImportError:
            _instruments = None
        else:
            _instruments = _Instruments(metrics.get_meter("django_claude"))
    return _instruments


@dataclass(frozen=True)
class Measured:
    """What the metrics count of one finished call."""

    request_model: str
    model: str  # "" when no model answered
    feature: str
    outcome: str
    error_type: str  # "" unless the call failed
    seconds: float
    input_tokens: int  # cached ones included
    output_tokens: int
    cost_usd: float
    counts_tokens: bool  # a model answered, and not from the answer cache


_sinks: list[Callable[[Measured], None]] = []


def add_sink(sink: Callable[[Measured], None]) -> None:
    """Send every call's measurements to ``sink`` too (``contrib.prometheus``)."""
    if sink not in _sinks:
        _sinks.append(sink)


def measure(line: Mapping[str, Any]) -> None:
    """Count a finished call (its log line) in the app's metrics: tokens and
    duration after the GenAI conventions, calls by feature, outcome and
    model, and cost by feature and model."""
    instruments = _get_instruments()
    if instruments is None or not _metrics_sdk():
        if not _sinks:
            return
        instruments = None
    measured = Measured(
        request_model=line.get("model_requested") or "",
        model=line.get("model") or "",
        feature=line.get("feature") or "",
        outcome=line.get("outcome") or "",
        error_type=_error_type(line),
        seconds=int(line.get("latency_ms") or 0) / 1000,
        input_tokens=_input_tokens(line),
        output_tokens=int(line.get("output_tokens") or 0),
        cost_usd=float(line.get("cost_usd") or 0),
        counts_tokens=bool(line.get("model")) and line.get("outcome") != "cached",
    )
    if instruments is not None:
        _record(instruments, measured)
    for sink in _sinks:
        try:
            sink(measured)
        except Exception:  # one sink's trouble is not OpenTelemetry's, nor the call's
            logger.exception("claude telemetry: a metrics sink failed")


def _metrics_sdk() -> bool:
    """Is a meter provider set? Until one is, the global one is the API's own
    proxy and every instrument a no-op: nothing to build metrics for."""
    from opentelemetry import metrics

    return not type(metrics.get_meter_provider()).__module__.startswith("opentelemetry.metrics")


def _record(instruments: _Instruments, measured: Measured) -> None:
    model = measured.model
    common = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": measured.request_model,
    }
    if model:
        common["gen_ai.response.model"] = model
    timed = dict(common)
    if measured.error_type:
        timed["error.type"] = measured.error_type
    instruments.duration.record(measured.seconds, timed)
    if measured.counts_tokens:
        instruments.tokens.record(measured.input_tokens, {**common, "gen_ai.token.type": "input"})
        instruments.tokens.record(measured.output_tokens, {**common, "gen_ai.token.type": "output"})
    feature = {"django_claude.feature": measured.feature}
    if model:
        feature["gen_ai.response.model"] = model
    instruments.calls.add(1, {**feature, "django_claude.outcome": measured.outcome})
    if measured.cost_usd > 0:  # nothing billed, no series of zeros
        instruments.cost.add(measured.cost_usd, feature)


def ids_of(span: CallSpan | None) -> dict[str, str]:
    """A call's trace and span ids for its line and row (hex; "" without a
    recorded span), so that a line, a row and a trace can be joined."""
    trace_id, span_id = span.ids() if span is not None else ("", "")
    return {"trace_id": trace_id, "span_id": span_id}


class CallSpan:
    """The span of one call: started with the call, current while its
    attempts run, ended with its log line."""

    __slots__ = ("lock", "quiet", "span")

    def __init__(self, *, feature: str, model: str, max_tokens: Any) -> None:
        self.span: Any = None
        self.quiet = True  # an invalid span: no provider, no trace passed in (``sdk.get_client``)
        tracer = _get_tracer()
        if tracer is None:
            return
        from opentelemetry.trace import SpanKind

        span = tracer.start_span(
            f"{OPERATION} {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": OPERATION,
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.request.model": model,
            },
        )
        self.quiet = not span.get_span_context().is_valid
        if not span.is_recording():
            return  # no tracer provider: nothing to keep, nothing to attach
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            span.set_attribute("gen_ai.request.max_tokens", max_tokens)
        self.lock = threading.Lock()  # an ending in a thread, a release on the loop
        self.span = span

    def routed(self, model: str) -> None:
        """The call's route is known (an async call's is read after it starts)."""
        if self.span is not None:
            self.span.update_name(f"{OPERATION} {model}")
            self.span.set_attribute("gen_ai.request.model", model)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the span current: the SDK's spans of the attempts are its children."""
        if self.span is None:
            yield
            return
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            context.detach(token)

    def answered(self, message: Any) -> None:
        """What only the answer says: its id."""
        if self.span is not None:
            message_id = getattr(message, "id", None)
            if isinstance(message_id, str) and message_id:
                self.span.set_attribute("gen_ai.response.id", message_id)

    @property
    def recording(self) -> bool:
        return self.span is not None

    def content(self, *, prompt: str, answer: str, finish_reason: str) -> None:
        """The prompt and the answer, already redacted, as the conventions'
        ``gen_ai.input.messages`` and ``gen_ai.output.messages`` (only when
        the site opts in: ``DJANGO_CLAUDE_OTEL_CAPTURE_CONTENT``)."""
        if self.span is None:
            return
        prompt, answer = _cut(prompt), _cut(answer)
        text = [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
        said = {
            "role": "assistant",
            "parts": [{"type": "text", "content": answer}],
            "finish_reason": finish_reason,
        }
        self.span.set_attribute("gen_ai.input.messages", json.dumps(text))
        self.span.set_attribute("gen_ai.output.messages", json.dumps([said]))

    def ids(self) -> tuple[str, str]:
        """(trace id, span id) in hex, for the log line and the record; empty
        when the span is not recorded."""
        if self.span is None:
            return "", ""
        context = self.span.get_span_context()
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

    def _take(self) -> Any:
        """The open span, once: whoever ends it."""
        if self.span is None:
            return None
        with self.lock:
            span, self.span = self.span, None
        return span

    def finish(self, line: Mapping[str, Any]) -> None:
        """Set the attributes the call's (redacted) log line holds and end the span."""
        span = self._take()
        if span is None:
            return
        try:
            _annotate(span, line)
        finally:
            span.end()

    def abandon(self) -> None:
        """End a span whose call ended with no record (an exception no ending
        saw): an interrupted call, so that its children have a parent."""
        span = self._take()
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes({"django_claude.outcome": "interrupted", "error.type": "abandoned"})
        span.set_status(Status(StatusCode.ERROR, "abandoned"))
        span.end()


def _annotate(span: Any, line: Mapping[str, Any]) -> None:
    from opentelemetry.trace import Status, StatusCode

    attributes: dict[str, Any] = {
        "django_claude.feature": line.get("feature", ""),
        "django_claude.outcome": line.get("outcome", ""),
        "django_claude.attempts": int(line.get("attempts") or 0),
        "django_claude.fallback_used": bool(line.get("fallback_used")),
        "django_claude.request_id": line.get("request_id", ""),
    }
    if line.get("model"):
        attributes["gen_ai.response.model"] = line["model"]
    if line.get("stop_reason"):
        attributes["gen_ai.response.finish_reasons"] = [line["stop_reason"]]
    if line.get("model"):
        # As the SDK's spans count them: input includes the cached tokens.
        attributes["gen_ai.usage.input_tokens"] = _input_tokens(line)
        attributes["gen_ai.usage.output_tokens"] = int(line.get("output_tokens") or 0)
        attributes["gen_ai.usage.cache_read.input_tokens"] = int(
            line.get("cache_read_input_tokens") or 0
        )
        attributes["gen_ai.usage.cache_creation.input_tokens"] = int(
            line.get("cache_creation_input_tokens") or 0
        )
    if line.get("cost_usd") is not None:
        attributes["django_claude.cost_usd"] = float(line["cost_usd"])
    if line.get("upstream_request_id"):
        attributes["anthropic.request.id"] = line["upstream_request_id"]
    if line.get("arm"):
        attributes["django_claude.arm"] = line["arm"]
        attributes["django_claude.canary_id"] = int(line.get("canary_id") or 0)
    for entry in line.get("attempt_log") or []:
        span.add_event(
            "django_claude.attempt",
            {
                key: value
                for key, value in entry.items()
                if isinstance(value, (str, int, float, bool)) and key != "detail"
            },
        )
    if error := _error_type(line):
        attributes["error.type"] = error
        span.set_status(Status(StatusCode.ERROR, error))
    span.set_attributes(attributes)


MAX_CONTENT_CHARS = 64_000  # per message: a huge attribute can sink an export batch


def _cut(text: str) -> str:
    if len(text) <= MAX_CONTENT_CHARS:
        return text
    return text[: MAX_CONTENT_CHARS - 1] + "\u2026"


def _input_tokens(line: Mapping[str, Any]) -> int:
    """Input tokens as the conventions (and the SDK's spans) count them: the
    cached ones included."""
    return (
        int(line.get("input_tokens") or 0)
        + int(line.get("cache_read_input_tokens") or 0)
        + int(line.get("cache_creation_input_tokens") or 0)
    )


def _error_type(line: Mapping[str, Any]) -> str:
    """``error.type`` of a call that failed ("" for one that did not): the
    error's type, else its outcome."""
    try:
        outcome = Outcome(str(line.get("outcome")))
    except ValueError:
        return ""
    return "" if outcome.answered else str(line.get("error_type") or outcome.value)
