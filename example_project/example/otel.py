"""OpenTelemetry for the example site, when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Traces go over OTLP/HTTP to that endpoint (a Collector, Jaeger, Tempo...);
Django's instrumentation makes each request a span, and django-claude's call
spans become its children, with the anthropic SDK's request spans under
them. Needs ``pip install "django-claude[otel]" opentelemetry-exporter-otlp-proto-http
opentelemetry-instrumentation-django``.
"""

from __future__ import annotations

import os

_configured = False


def configure() -> bool:
    """Set the tracer provider and instrument Django, once (manage.py and the
    ASGI app both ask); False when the environment asks for no tracing (or
    the packages are missing)."""
    global _configured
    if _configured:
        return True
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        print(f"example: OTEL_EXPORTER_OTLP_ENDPOINT is set but {exc.name} is missing")
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "example")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the endpoint
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    _configured = True
    return True
