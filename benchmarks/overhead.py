"""What django_claude.call(), acall() and stream() add to a request, against the bare SDK.

Both talk to the fake Messages API on 127.0.0.1 with no delay, in the same
process and the same run, interleaved in rounds so machine noise hits both
alike. Prints p50 and p95 of each, the added milliseconds and the ratio, for
SQLite and, when it answers, PostgreSQL. When Redis answers
(``BENCH_REDIS_URL``), a "quotas" row times call() with three quotas against
call() without them, both with the shared cache on Redis.

    python benchmarks/overhead.py [--calls 2000] [--quick] [--postgres URL] [--only PATH]

``--quick``: 300 requests each. ``--only quotas`` (or ``call``, ``acall``,
``stream``): that row alone, on each database. Without a PostgreSQL server
it says so in one line and measures SQLite only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.preflight import require_installed  # noqa: E402

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/django_claude_bench"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


PATHS = ("call", "acall", "stream", "quotas")


def measure(calls: int, only: str | None = None) -> dict[str, float]:
    """Run inside a configured process: time the bare SDK and django-claude,
    for call(), acall() and stream() (``only``: one of ``PATHS``)."""
    import anthropic
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    from django.conf import settings

    import django_claude
    from benchmarks.peers import FakeAPI
    from django_claude.models import CallRecord

    # The fake runs in a process of its own, as the real API would: its
    # server threads must not compete with the calls for this process's GIL.
    fake = FakeAPI()
    url = fake.__enter__()
    settings.DJANGO_CLAUDE_BASE_URL = url
    settings.DJANGO_CLAUDE_API_KEY = "sk-ant-bench-0000"
    bare = anthropic.Anthropic(api_key="sk-ant-bench-0000", base_url=url, max_retries=0)
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

    async_bare = anthropic.AsyncAnthropic(api_key="sk-ant-bench-0000", base_url=url, max_retries=0)

    def stream_sdk_once() -> None:
        with bare.messages.stream(
            model=model, max_tokens=600, messages=[{"role": "user", "content": prompt}]
        ) as s:
            for _ in s.text_stream:
                pass

    def stream_call_once() -> None:
        with django_claude.stream(prompt, feature="bench") as s:
            for _ in s.text_stream:
                pass
        assert s.result is not None and s.result.outcome == "ok"

    pairs = {
        "call": (sdk_once, call_once),
        "stream": (stream_sdk_once, stream_call_once),
    }
    results: dict[str, float] = {}
    rounds = 20
    per_round = max(1, calls // rounds)
    for name, (base_fn, our_fn) in pairs.items():
        if only not in (None, name):
            continue
        for _ in range(30):  # warm both paths: connections, price book, imports
            base_fn()
            our_fn()
        base_times: list[float] = []
        our_times: list[float] = []
        for _ in range(rounds):
            for fn, bucket in ((base_fn, base_times), (our_fn, our_times)):
                for _ in range(per_round):
                    started = time.perf_counter()
                    fn()
                    bucket.append((time.perf_counter() - started) * 1000)
        results[f"{name}_sdk_p50"] = percentile(base_times, 50)
        results[f"{name}_sdk_p95"] = percentile(base_times, 95)
        results[f"{name}_ours_p50"] = percentile(our_times, 50)
        results[f"{name}_ours_p95"] = percentile(our_times, 95)

    async def async_bench() -> None:
        async def sdk() -> None:
            await async_bare.messages.create(
                model=model,
                max_tokens=600,
                messages=[{"role": "user", "content": prompt}],
                timeout=20.0,
            )

        async def ours() -> None:
            result = await django_claude.acall(prompt, feature="bench")
            assert result.outcome == "ok", result.outcome

        for _ in range(30):
            await sdk()
            await ours()
        base_times: list[float] = []
        our_times: list[float] = []
        for _ in range(rounds):
            for fn, bucket in ((sdk, base_times), (ours, our_times)):
                for _ in range(per_round):
                    started = time.perf_counter()
                    await fn()
                    bucket.append((time.perf_counter() - started) * 1000)
        results["acall_sdk_p50"] = percentile(base_times, 50)
        results["acall_sdk_p95"] = percentile(base_times, 95)
        results["acall_ours_p50"] = percentile(our_times, 50)
        results["acall_ours_p95"] = percentile(our_times, 95)
        from asgiref.sync import sync_to_async
        from django.db import connections

        await sync_to_async(connections.close_all)()

    import asyncio

    if only in (None, "acall"):
        asyncio.run(async_bench())
    if only in (None, "quotas"):
        results.update(quota_overhead(call_once, rounds, per_round))
    from django_claude.recording import writer

    writer.flush_pending()
    results["records"] = CallRecord.objects.filter(feature="bench").count()
    results["calls"] = sum(
        2 * rounds * per_round if path == "quotas" else rounds * per_round
        for path in PATHS
        if only in (None, path) and f"{path}_sdk_p50" in results
    )
    fake.__exit__()
    return results


QUOTAS = {  # what a site with per-user, per-tenant and site-wide limits sets
    "user-daily": {"per": "user", "window": "day", "usd": "1000"},
    "org-monthly": {"per": "tenant", "window": "month", "tokens": 10**12},
    "site-minute": {"window": "minute", "calls": 10**9},
}


def quota_overhead(call_once: object, rounds: int, per_round: int) -> dict[str, float]:
    """call() on a Redis cache with three quotas against the same without
    them, in alternate blocks (so that what a quota call leaves to a
    background thread is not charged to a call without quotas): the quota
    work's added p50 (reserving, and settling, which the next reservation
    carries: one Lua script a call). Nothing when Redis does not answer."""
    import redis
    from django.conf import settings

    import django_claude

    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        print(f"quota overhead: no Redis at {url} (BENCH_REDIS_URL)", file=sys.stderr)
        return {}
    from django.test.utils import override_settings

    from django_claude import shared_cache

    # Through override_settings: Django's cache handler and django-claude's
    # settings learn of the change (a plain assignment would leave both on
    # the local-memory cache they already read).
    on_redis = override_settings(
        CACHES={
            **settings.CACHES,
            "bench_redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
            },
        },
        DJANGO_CLAUDE_CACHE="bench_redis",
    )
    on_redis.enable()
    shared_cache.warm()  # import redis-py now, not inside a call's cache budget

    # The same call both ways (user and tenant included: the log line and the
    # record carry them either way); only the quotas differ.
    def plain() -> None:
        settings.DJANGO_CLAUDE_QUOTAS = {}
        result = django_claude.call(
            "Summarise the ticket.", feature="bench", user="u-1", tenant="acme"
        )
        assert result.outcome == "ok", result.outcome

    def with_quotas() -> None:
        settings.DJANGO_CLAUDE_QUOTAS = QUOTAS
        result = django_claude.call(
            "Summarise the ticket.", feature="bench", user="u-1", tenant="acme"
        )
        assert result.outcome == "ok", result.outcome

    for _ in range(30):
        plain()
        with_quotas()
    base_times: list[float] = []
    quota_times: list[float] = []
    for _ in range(rounds):
        for fn, bucket in ((plain, base_times), (with_quotas, quota_times)):
            for _ in range(per_round):
                started = time.perf_counter()
                fn()
                bucket.append((time.perf_counter() - started) * 1000)
    settings.DJANGO_CLAUDE_QUOTAS = {}
    from django_claude.quotas import counters

    counters.settled()
    kept = redis.Redis.from_url(url).keys("*quota*")
    on_redis.disable()
    assert kept, "the quotas' counters must be on Redis"
    return {
        "quotas_sdk_p50": percentile(base_times, 50),
        "quotas_sdk_p95": percentile(base_times, 95),
        "quotas_ours_p50": percentile(quota_times, 50),
        "quotas_ours_p95": percentile(quota_times, 95),
    }


def run_child(database_url: str, calls: int, only: str | None) -> dict[str, float] | None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CACHE_URL", None)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--calls", str(calls)]
        + (["--only", only] if only else []),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--quick", action="store_true", help="300 requests each")
    parser.add_argument("--only", choices=PATHS, help="measure this row alone")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.calls = 300
    require_installed(__file__)
    if args.child:
        print(json.dumps(measure(args.calls, args.only)))
        return 0

    from benchmarks.pg import postgres_problem, skip_line

    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite (file)", f"sqlite:///{tmp}/bench.sqlite3")]
        problem = postgres_problem(args.postgres)
        if problem is None:
            targets.append(("PostgreSQL", args.postgres))
        else:
            line = skip_line(
                "overhead on PostgreSQL", args.postgres, problem, variable="BENCH_POSTGRES_URL"
            )
            print(line, flush=True)
        print(f"django-claude vs the bare anthropic SDK, {args.calls} requests each, fake API")
        header = (
            f"{'database':<14} {'path':<7} {'SDK p50':>8} {'ours p50':>9} {'added p50':>10}"
            f" {'ratio':>6} {'SDK p95':>8} {'ours p95':>9} {'added p95':>10}"
        )
        print(header)
        print("-" * len(header))
        failed = 0
        for name, url in targets:
            r = run_child(url, args.calls, args.only)
            if r is None:
                print(f"{name:<14} failed")
                failed += 1
                continue
            for path in PATHS:
                if f"{path}_sdk_p50" not in r:
                    continue  # quotas: no Redis
                sdk50, ours50 = r[f"{path}_sdk_p50"], r[f"{path}_ours_p50"]
                sdk95, ours95 = r[f"{path}_sdk_p95"], r[f"{path}_ours_p95"]
                print(
                    f"{name:<14} {path:<7} {sdk50:>7.3f}ms {ours50:>8.3f}ms "
                    f"{ours50 - sdk50:>+9.3f}ms {ours50 / sdk50:>6.2f}"
                    f" {sdk95:>7.3f}ms {ours95:>8.3f}ms {ours95 - sdk95:>+9.3f}ms"
                )
            assert r["records"] >= r["calls"], "every call must leave a record"
        print(
            "quotas: call() with three quotas (user, tenant, site) against call() without,"
            " both on Redis;\n'SDK' is the call without quotas there (target: added p50 < 0.3 ms)"
        )
    return 1 if failed else 0  # make bench reports it


if __name__ == "__main__":
    sys.exit(main())
