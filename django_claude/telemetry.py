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
from collections.abc import Iterator, Mapping
from typing import Any

PROVIDER = "anthropic"
OPERATION = "chat"
_UNSET: Any = object()
_tracer: Any = _UNSET


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
    """Take the tracer anew at the next call (tests that swap providers)."""
    global _tracer
    _tracer = _UNSET


class CallSpan:
    """The span of one call: started with the call, current while its
    attempts run, ended with its log line."""

    __slots__ = ("span",)

    def __init__(self, *, feature: str, model: str, max_tokens: Any) -> None:
        self.span: Any = None
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
        if not span.is_recording():
            return  # no tracer provider: nothing to keep, nothing to attach
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            span.set_attribute("gen_ai.request.max_tokens", max_tokens)
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

    def ids(self) -> tuple[str, str]:
        """(trace id, span id) in hex, for the log line and the record; empty
        when the span is not recorded."""
        if self.span is None:
            return "", ""
        context = self.span.get_span_context()
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

    def finish(self, line: Mapping[str, Any]) -> None:
        """Set the attributes the call's (redacted) log line holds and end the span."""
        span = self.span
        if span is None:
            return
        self.span = None
        try:
            _annotate(span, line)
        finally:
            span.end()


def _annotate(span: Any, line: Mapping[str, Any]) -> None:
    from opentelemetry.trace import Status, StatusCode

    usage_in = (
        int(line.get("input_tokens") or 0)
        + int(line.get("cache_read_input_tokens") or 0)
        + int(line.get("cache_creation_input_tokens") or 0)
    )
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
        attributes["gen_ai.usage.input_tokens"] = usage_in
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
    outcome = line.get("outcome")
    if outcome in ("degraded", "error", "interrupted", "limited"):
        error_type = line.get("error_type") or outcome
        attributes["error.type"] = error_type
        span.set_status(Status(StatusCode.ERROR, str(error_type)))
    span.set_attributes(attributes)
