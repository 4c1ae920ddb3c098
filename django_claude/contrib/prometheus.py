"""django-claude's metrics for Prometheus, right under gunicorn's many workers.

Needs ``prometheus_client`` (``pip install "django-claude[prometheus]"``) and
``DJANGO_CLAUDE_PROMETHEUS = True``; then every call is counted here as well
as in OpenTelemetry's metrics, and ``metrics_view`` serves them.

Why ``prometheus_client``'s multiprocess mode and not OpenTelemetry's
Prometheus exporter: a gunicorn (or uWSGI, or Celery prefork) site runs many
worker processes, and Prometheus scrapes one URL. The OpenTelemetry exporter
keeps each process's metrics in that process, so a scrape sees whichever
worker answered it: counters jump between workers' values. In multiprocess
mode every worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` and the view adds up every worker's files, so
one scrape sees the whole site, and the dead workers' counts stay counted.
(A site that already runs an OpenTelemetry Collector can instead push the
OpenTelemetry metrics to it over OTLP and let it expose them.)

The names are the OpenTelemetry ones with Prometheus's spelling:
``gen_ai_client_token_usage`` and ``gen_ai_client_operation_duration_seconds``
(histograms, the GenAI conventions' buckets), ``django_claude_calls_total``
(by feature, outcome and model) and ``django_claude_cost_usd_total`` (by
feature and model).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from django_claude import telemetry

GENAI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]

TOKENS = Histogram(
    "gen_ai_client_token_usage",
    "Number of input and output tokens used",
    [*GENAI, "gen_ai_response_model", "gen_ai_token_type"],
    buckets=telemetry.TOKEN_BUCKETS,
)
DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "GenAI operation duration",
    [*GENAI, "gen_ai_response_model", "error_type"],
    buckets=telemetry.DURATION_BUCKETS,
)
CALLS = Counter(
    "django_claude_calls",
    "Claude calls by feature, outcome and model",
    ["feature", "outcome", "gen_ai_response_model"],
)
COST = Counter(
    "django_claude_cost_usd",
    "What Claude calls cost, in USD, by feature and model",
    ["feature", "gen_ai_response_model"],
)


def record(measured: telemetry.Measured) -> None:
    """Count one call (a ``telemetry`` sink)."""
    genai = [telemetry.OPERATION, telemetry.PROVIDER, measured.request_model]
    DURATION.labels(*genai, measured.model, measured.error_type).observe(measured.seconds)
    if measured.counts_tokens:
        TOKENS.labels(*genai, measured.model, "input").observe(measured.input_tokens)
        TOKENS.labels(*genai, measured.model, "output").observe(measured.output_tokens)
    CALLS.labels(measured.feature, measured.outcome, measured.model).inc()
    if measured.cost_usd > 0:
        COST.labels(measured.feature, measured.model).inc(measured.cost_usd)


def enable() -> None:
    """Count every call from now on (``DJANGO_CLAUDE_PROMETHEUS`` does this
    at startup; importing ``metrics_view`` alone counts nothing)."""
    telemetry.add_sink(record)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format: every worker's, when
    ``PROMETHEUS_MULTIPROC_DIR`` is set, else this process's.

    Feature and model names are all it says about calls; still, serve it
    where only Prometheus can reach it (or wrap it in your own check)."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
