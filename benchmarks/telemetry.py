"""What OpenTelemetry (a span, four metrics) costs a call when nothing is set up.

The anthropic SDK installs ``opentelemetry-api`` with itself, so every site
has it; most set no SDK. Times a call's whole span lifecycle (start, route,
make current, ids for the line, end with the line) in three cases, in the
same run, interleaved: OpenTelemetry absent (the baseline: what a call
costs without any span), the API with no provider (every site that does not
trace), and an SDK provider with a processor that drops what it gets (a site
that traces), a span and the four metrics each.

    python benchmarks/telemetry.py [--rounds 20000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.preflight import require_installed  # noqa: E402

LINE = {
    "request_id": "0" * 32,
    "feature": "bench",
    "outcome": "ok",
    "model": "claude-sonnet-4-6",
    "input_tokens": 12,
    "output_tokens": 30,
    "attempts": 1,
    "attempt_log": [{"model": "claude-sonnet-4-6", "latency_ms": 3, "status": 200}],
    "stop_reason": "end_turn",
    "cost_usd": "0.000486",
}


def lifecycle() -> None:
    from django_claude import telemetry
    from django_claude.telemetry import CallSpan

    span = CallSpan(feature="bench", model="claude-sonnet-4-6", max_tokens=600)
    span.routed("claude-sonnet-4-6")
    with span.current():
        pass
    span.ids()
    span.finish(LINE)
    telemetry.measure(LINE)


def p50_us(function, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        function()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="5,000 rounds")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5_000
    require_installed(__file__, also=(("opentelemetry.sdk", "opentelemetry-sdk"),))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from django_claude import telemetry

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropped()))

    no_meter = telemetry._Instruments(metrics.get_meter("django_claude"))
    sdk_meter = telemetry._Instruments(
        MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("django_claude")
    )

    def absent() -> None:
        # As if opentelemetry could not be imported.
        telemetry._tracer = telemetry._instruments = None
        lifecycle()

    # No provider was set in this process: the proxy tracer every site gets.
    no_provider_tracer = trace.get_tracer("django_claude")
    sdk_tracer = provider.get_tracer("django_claude")

    def api_only() -> None:
        telemetry._tracer, telemetry._instruments = no_provider_tracer, no_meter
        lifecycle()

    def with_sdk() -> None:
        telemetry._tracer, telemetry._instruments = sdk_tracer, sdk_meter
        lifecycle()

    results: dict[str, list[float]] = {"absent": [], "api, no provider": [], "sdk": []}
    for _ in range(5):  # interleaved rounds: noise hits every case alike
        for name, function in (
            ("absent", absent),
            ("api, no provider", api_only),
            ("sdk", with_sdk),
        ):
            results[name].append(p50_us(function, args.rounds // 5))
    base = statistics.median(results["absent"])
    print(f"span lifecycle per call, p50 over {args.rounds} rounds (microseconds)")
    for name, values in results.items():
        value = statistics.median(values)
        print(
            f"  {name:18} {value:8.2f} us   added {value - base:+7.2f} us   ({value / base:.2f}x)"
        )
    # The whole lifecycle is what a call pays for its span (the baseline
    # being our own bookkeeping of a call without one): counted in full.
    added_ms = statistics.median(results["api, no provider"]) / 1000
    verdict = "under" if added_ms < 0.05 else "OVER"
    print(f"api with no provider: {added_ms:.4f} ms a call in all: {verdict} the 0.05 ms budget")
    telemetry.forget_tracer()


if __name__ == "__main__":
    main()
