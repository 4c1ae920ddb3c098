"""What django_claude.call() adds to a request, against the bare SDK.

Both talk to the fake Messages API on 127.0.0.1 with no delay, in the same
process and the same run, interleaved in rounds so machine noise hits both
alike. Prints p50 and p95 of each, the added milliseconds and the ratio, for
SQLite and, when it answers, PostgreSQL.

    python benchmarks/overhead.py [--calls 2000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/django_claude_bench"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(calls: int) -> dict[str, float]:
    """Run inside a configured process: time bare SDK calls and call()s."""
    import anthropic
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    from django.conf import settings

    import django_claude
    from django_claude.models import CallRecord
    from django_claude.testing import FakeAnthropic

    fake = FakeAnthropic().start()
    settings.DJANGO_CLAUDE_BASE_URL = fake.url
    settings.DJANGO_CLAUDE_API_KEY = "sk-ant-bench-0000"
    bare = anthropic.Anthropic(api_key="sk-ant-bench-0000", base_url=fake.url, max_retries=0)
    prompt = "Summarise this support ticket: the printer on floor 3 prints blank pages."
    model = "claude-sonnet-4-6"  # DJANGO_CLAUDE_DEFAULT_MODEL

    def sdk_once() -> None:
        bare.messages.create(
            model=model,
            max_tokens=600,
            messages=[{"role": "user", "content": prompt}],
            timeout=20.0,
        )

    def call_once() -> None:
        result = django_claude.call(prompt, feature="bench")
        assert result.outcome == "ok", result.outcome

    for _ in range(50):  # warm both paths: connections, price book, imports
        sdk_once()
        call_once()
    sdk_times: list[float] = []
    call_times: list[float] = []
    rounds = 20
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for fn, bucket in ((sdk_once, sdk_times), (call_once, call_times)):
            for _ in range(per_round):
                started = time.perf_counter()
                fn()
                bucket.append((time.perf_counter() - started) * 1000)
    records = CallRecord.objects.filter(feature="bench").count()
    fake.stop()
    return {
        "sdk_p50": percentile(sdk_times, 50),
        "sdk_p95": percentile(sdk_times, 95),
        "call_p50": percentile(call_times, 50),
        "call_p95": percentile(call_times, 95),
        "sdk_mean": statistics.fmean(sdk_times),
        "call_mean": statistics.fmean(call_times),
        "calls": len(call_times),
        "records": records,
    }


def run_child(database_url: str, calls: int) -> dict[str, float] | None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CACHE_URL", None)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--calls", str(calls)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        return None
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def postgres_available(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    name = url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        print(f"PostgreSQL not available ({type(exc).__name__}); skipping it", file=sys.stderr)
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.calls)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite (file)", f"sqlite:///{tmp}/bench.sqlite3")]
        if postgres_available(args.postgres):
            targets.append(("PostgreSQL", args.postgres))
        print(f"django_claude.call() vs bare anthropic SDK, {args.calls} calls each, fake API")
        header = (
            f"{'database':<14} {'SDK p50':>8} {'call p50':>9} {'added p50':>10} {'ratio':>6}"
            f" {'SDK p95':>8} {'call p95':>9} {'added p95':>10}"
        )
        print(header)
        print("-" * len(header))
        for name, url in targets:
            r = run_child(url, args.calls)
            if r is None:
                print(f"{name:<14} failed")
                continue
            print(
                f"{name:<14} {r['sdk_p50']:>7.3f}ms {r['call_p50']:>8.3f}ms "
                f"{r['call_p50'] - r['sdk_p50']:>+9.3f}ms {r['call_p50'] / r['sdk_p50']:>6.2f}"
                f" {r['sdk_p95']:>7.3f}ms {r['call_p95']:>8.3f}ms "
                f"{r['call_p95'] - r['sdk_p95']:>+9.3f}ms"
            )
            assert r["records"] >= r["calls"], "every call must leave a record"


if __name__ == "__main__":
    main()
