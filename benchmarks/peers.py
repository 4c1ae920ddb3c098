"""django-claude beside its peers: what LiteLLM and our entry points add to a call.

Every contender asks the same fake Messages API (``django_claude.testing``,
served by a separate process so its CPU is not this one's) the same 1 KB
question, in one process, interleaved in rounds with a rotating order, for
several reps. Each row is what that contender adds over the bare ``anthropic``
SDK (``max_retries=0``) at p50 and p95, with its spread over the reps (the
lowest and highest rep), and its ratio to LiteLLM ``completion()``'s. Then the
same for 100 KB and 1 MB prompts: ``call()`` and LiteLLM against the SDK.

The site is set up as in production: DEBUG off, PostgreSQL with persistent
connections (and SQLite, ``IMMEDIATE`` transactions, for its own row; a
router switches between the two between rounds), Django's ``RedisCache``,
the smell test at its default 1%, the call log to a file
(``benchmarks/site/settings.py``). LiteLLM is pointed at the fake through
``api_base``, reads its bundled cost map and sends no telemetry; every socket
this process opens is audited and any destination but loopback is refused
and reported.

    python benchmarks/peers.py [--reps 5] [--calls 1000] [--large-calls 100] [--quick]
                               [--postgres URL] [--redis URL]

``--quick``: 2 reps of 150 calls (20 with big prompts). A target missed is
printed as MISS and the run still exits 0; 1 on an error (a failed call, a
missing record, a connection off this machine). Needs the ``bench`` extra
(``pip install -e '.[bench]'``: LiteLLM) and PostgreSQL and Redis; without a
PostgreSQL server its rows are skipped, without Redis the local-memory cache
is used, and each says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.preflight import require_installed  # noqa: E402

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/django_claude_peers"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
MODEL = "claude-sonnet-4-6"
FALLBACK = "claude-haiku-4-5-20251001"
KEY = "sk-ant-bench-0000"
SIZES = {"1 KB": 1_000, "100 KB": 100_000, "1 MB": 1_000_000}
TICKET = (
    "Ticket 4471 from the floor 3 office: the printer prints blank pages since "
    "Monday's driver update; toner was replaced, the test page is fine, jobs "
    "from the accounting app come out empty. "
)

# Targets of issue #12.
TARGET_P50 = 0.33  # our added p50 / LiteLLM completion()'s
TARGET_P95 = 1.0  # our added p95 / LiteLLM completion()'s
TARGET_BIG_MS = 0.5  # what a 1 MB prompt may add to call() over a 1 KB one


def prompt_of(size: int) -> str:
    return (TICKET * (size // len(TICKET) + 1))[:size]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- the fake API, in a process of its own ------------------------------------------


def serve_fake(delay: float) -> None:
    """Serve the fake until stdin closes: every answer ``delay`` seconds late,
    recorded requests not kept (1 MB prompts), a listen backlog for hundreds
    of clients. Prints its URL first."""
    import http.server

    http.server.ThreadingHTTPServer.request_queue_size = 1024  # the stdlib's is 5
    from django_claude.testing import OK, FakeAnthropic, Fault

    late = Fault(delay=delay)

    class Fake(FakeAnthropic):
        def _next_fault(self, model: str, body: dict[str, Any], headers: dict[str, str]) -> Fault:
            fault = super()._next_fault(model, body, headers)
            with self._lock:
                self.requests.clear()
            return late if fault is OK and delay else fault

    fake = Fake().start()
    print(fake.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the benchmark ends or dies
    fake.stop()


class FakeAPI:
    """``with FakeAPI(delay) as url:`` the fake Messages API in a child
    process, stopped (killed if need be) on the way out."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake", "--delay", str(self.delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        url = self.process.stdout.readline().strip() if ready else ""
        if not url.startswith("http://127.0.0.1:"):
            self.__exit__()
            raise RuntimeError(f"the fake API did not start (said {url!r})")
        return url

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout:
            process.stdout.close()
        self.process = None


# -- no connection leaves this machine ------------------------------------------------

OUTBOUND: list[str] = []  # what was refused
AUDITED = {"connect": 0}


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return host is None or host in ("localhost", "::1") or str(host).startswith("127.")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple):  # AF_UNIX addresses are paths on this machine
            AUDITED["connect"] += 1
            if not _loopback(address[0]):
                OUTBOUND.append(f"connect {address[0]}:{address[1]}")
                raise OSError(f"peers.py refuses a connection off this machine: {address!r}")
    elif event == "socket.getaddrinfo" and not _loopback(args[0]):
        OUTBOUND.append(f"DNS lookup {args[0]!r}")
        raise OSError(f"peers.py refuses a DNS lookup off this machine: {args[0]!r}")


def guard_sockets() -> None:
    """From now on, record every socket connect of this process and refuse any
    destination (or DNS lookup) but loopback. Call before importing LiteLLM."""
    sys.addaudithook(_audit)


# -- the contenders -------------------------------------------------------------------


def redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any reason is a reason to say so
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def setup_site(api: str, tmp: str, *, postgres: str | None, redis: str | None) -> None:
    """Django, configured as ``benchmarks/site/settings.py`` says, migrated."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "benchmarks.site.settings",
            "SITE_API": api,
            "SITE_SQLITE": f"{tmp}/peers.sqlite3",
            "SITE_CALL_LOG": f"{tmp}/calls.log",
            "SITE_CACHE": redis or "locmem",
        }
    )
    if postgres:
        os.environ.update({"SITE_DATABASE": "both", "SITE_PG_URL": postgres})
    else:
        os.environ["SITE_DATABASE"] = "sqlite"
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings

    from benchmarks.site import routers

    for alias in settings.DATABASES:
        routers.use(alias)  # the price seed writes through the router
        call_command("migrate", database=alias, verbosity=0, interactive=False)
    routers.use("default")
    from django.core.cache import cache

    cache.clear()  # the breaker, routes and answers of an earlier run


def setup_litellm() -> Any:
    """LiteLLM, offline: its bundled cost map, no telemetry, no callbacks."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import logging

    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm.callbacks = []
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


class Contenders:
    """Each contender as a callable ``(prompt) -> None`` that fails loudly;
    async ones are run on one event loop of ours."""

    def __init__(self, api: str, litellm: Any, *, postgres: bool) -> None:
        import asyncio

        import anthropic

        import django_claude
        from benchmarks.site import routers

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        sdk = anthropic.Anthropic(api_key=KEY, base_url=api, max_retries=0)
        asdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=api, max_retries=0)
        router = litellm.Router(
            model_list=[
                {
                    "model_name": "claude",
                    "litellm_params": {
                        "model": f"anthropic/{MODEL}",
                        "api_base": api,
                        "api_key": KEY,
                    },
                },
                {
                    "model_name": "claude-fallback",
                    "litellm_params": {
                        "model": f"anthropic/{FALLBACK}",
                        "api_base": api,
                        "api_key": KEY,
                    },
                },
            ],
            num_retries=3,
            fallbacks=[{"claude": ["claude-fallback"]}],
            timeout=20.0,
        )
        self.made: dict[str, int] = {}  # feature -> calls made through django-claude

        def messages(prompt: str) -> list[Any]:
            return [{"role": "user", "content": prompt}]

        def sdk_create(prompt: str) -> None:
            sdk.messages.create(
                model=MODEL, max_tokens=600, messages=messages(prompt), timeout=20.0
            )

        def sdk_stream(prompt: str) -> None:
            with sdk.messages.stream(
                model=MODEL, max_tokens=600, messages=messages(prompt), timeout=20.0
            ) as s:
                for _ in s.text_stream:
                    pass

        def lite(prompt: str) -> None:
            answer = litellm.completion(
                model=f"anthropic/{MODEL}",
                api_base=api,
                api_key=KEY,
                messages=messages(prompt),
                max_tokens=600,
                timeout=20.0,
            )
            assert answer.choices[0].message.content, answer

        def lite_router(prompt: str) -> None:
            answer = router.completion(model="claude", messages=messages(prompt), max_tokens=600)
            assert answer.choices[0].message.content, answer

        def ours(alias: str, feature: str) -> Callable[[str], None]:
            def run(prompt: str) -> None:
                routers.use(alias)
                result = django_claude.call(prompt, feature=feature)
                assert result.outcome == "ok", result.outcome
                self.made[feature] = self.made.get(feature, 0) + 1

            return run

        def ours_stream(prompt: str) -> None:
            routers.use("default")
            with django_claude.stream(prompt, feature="peers-pg") as s:
                for _ in s.text_stream:
                    pass
            assert s.result is not None and s.result.outcome == "ok", s.result
            self.made["peers-pg"] = self.made.get("peers-pg", 0) + 1

        async def asdk_create(prompt: str) -> None:
            await asdk.messages.create(
                model=MODEL, max_tokens=600, messages=messages(prompt), timeout=20.0
            )

        async def asdk_stream(prompt: str) -> None:
            async with asdk.messages.stream(
                model=MODEL, max_tokens=600, messages=messages(prompt), timeout=20.0
            ) as s:
                async for _ in s.text_stream:
                    pass

        async def ours_acall(prompt: str) -> None:
            routers.use("default")
            result = await django_claude.acall(prompt, feature="peers-pg")
            assert result.outcome == "ok", result.outcome
            self.made["peers-pg"] = self.made.get("peers-pg", 0) + 1

        async def ours_astream(prompt: str) -> None:
            routers.use("default")
            async with django_claude.astream(prompt, feature="peers-pg") as s:
                async for _ in s.text_stream:
                    pass
            assert s.result is not None and s.result.outcome == "ok", s.result
            self.made["peers-pg"] = self.made.get("peers-pg", 0) + 1

        sqlite_alias = "sqlite" if postgres else "default"
        self.sync: dict[str, Callable[[str], None]] = {
            "sdk": sdk_create,
            "sdk_stream": sdk_stream,
            "litellm": lite,
            "router": lite_router,
            "call_sqlite": ours(sqlite_alias, "peers-sqlite"),
        }
        self.aio: dict[str, Callable[[str], Any]] = {
            "asdk": asdk_create,
            "asdk_stream": asdk_stream,
        }
        if postgres:
            self.sync["call_pg"] = ours("default", "peers-pg")
            self.sync["stream_pg"] = ours_stream
            self.aio["acall_pg"] = ours_acall
            self.aio["astream_pg"] = ours_astream

    def names(self) -> list[str]:
        return [*self.sync, *self.aio]

    def time(self, name: str, prompt: str, n: int, bucket: list[float]) -> None:
        """``n`` calls of ``name``, each one's milliseconds into ``bucket``."""
        clock = time.perf_counter
        if name in self.sync:
            fn = self.sync[name]
            for _ in range(n):
                started = clock()
                fn(prompt)
                bucket.append((clock() - started) * 1000)
            return
        afn = self.aio[name]

        async def block() -> None:
            for _ in range(n):
                started = clock()
                await afn(prompt)
                bucket.append((clock() - started) * 1000)

        self.loop.run_until_complete(block())


def interleave(
    contenders: Contenders,
    names: list[str],
    prompt: str,
    *,
    reps: int,
    calls: int,
    rounds: int,
    warm: int,
) -> dict[str, list[list[float]]]:
    """``reps`` reps of ``calls`` calls per contender, each rep in ``rounds``
    rounds whose order rotates: times[name][rep] = milliseconds."""
    for name in names:  # connections, price book, routes, imports
        contenders.time(name, prompt, warm, [])
    rounds = max(1, min(rounds, calls))
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    turn = 0
    for _ in range(reps):
        buckets: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            n = calls // rounds + (1 if r < calls % rounds else 0)
            order = names[turn % len(names) :] + names[: turn % len(names)]
            turn += 1
            for name in order:
                contenders.time(name, prompt, n, buckets[name])
        for name in names:
            times[name].append(buckets[name])
    return times


# -- the tables -----------------------------------------------------------------------

BASE = {
    "litellm": "sdk",
    "router": "sdk",
    "call_pg": "sdk",
    "call_sqlite": "sdk",
    "stream_pg": "sdk_stream",
    "acall_pg": "asdk",
    "astream_pg": "asdk_stream",
}
LABELS = {
    "litellm": "LiteLLM completion()",
    "router": "LiteLLM Router (retries + fallback)",
    "call_pg": "call()    PostgreSQL + Redis",
    "call_sqlite": "call()    SQLite + Redis",
    "acall_pg": "acall()   PostgreSQL + Redis",
    "stream_pg": "stream()  PostgreSQL + Redis",
    "astream_pg": "astream() PostgreSQL + Redis",
}
OURS = ["call_pg", "call_sqlite", "acall_pg", "stream_pg", "astream_pg"]


def added(times: dict[str, list[list[float]]], name: str, pct: float) -> tuple[float, float, float]:
    """What ``name`` adds over its bare SDK at ``pct``: over all reps, and the
    lowest and highest rep."""
    base = BASE.get(name, "sdk")
    pooled = percentile(sum(times[name], []), pct) - percentile(sum(times[base], []), pct)
    per_rep = [
        percentile(ours, pct) - percentile(bare, pct)
        for ours, bare in zip(times[name], times[base], strict=True)
    ]
    return pooled, min(per_rep), max(per_rep)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fmt(value: tuple[float, float, float]) -> str:
    return f"{value[0]:+7.3f} ({value[1]:+.2f}..{value[2]:+.2f})"


def ratio(ours: float, theirs: float) -> float:
    """``ours / theirs``; infinite when LiteLLM added nothing measurable."""
    return ours / theirs if theirs > 0 else float("inf")


def fmt_ratio(value: float, width: int) -> str:
    return f"{'n/a':>{width}}" if value == float("inf") else f"{value:>{width}.2f}"


def main_table(times: dict[str, list[list[float]]], cache_name: str) -> list[tuple[str, bool]]:
    """Print the main table; the targets with PASS/MISS."""
    header = (
        f"{'contender':<36} {'bare p50':>8} {'added p50 ms (reps)':>22} "
        f"{'added p95 ms (reps)':>22} {'÷LiteLLM p50':>12} {'p95':>5}"
    )
    print(header)
    print("-" * len(header))
    lite50 = added(times, "litellm", 50)
    lite95 = added(times, "litellm", 95)
    checks: list[tuple[str, bool]] = []
    for name in ["litellm", "router", *OURS]:
        if name not in times:
            continue
        a50, a95 = added(times, name, 50), added(times, name, 95)
        bare = percentile(sum(times[BASE[name]], []), 50)
        label = LABELS[name].replace("Redis", cache_name)
        line = f"{label:<36} {bare:>6.3f}ms {fmt(a50):>22} {fmt(a95):>22}"
        if name in OURS:
            r50, r95 = ratio(a50[0], lite50[0]), ratio(a95[0], lite95[0])
            line += f" {fmt_ratio(r50, 12)} {fmt_ratio(r95, 5)}"
            checks.append(
                (f"{LABELS[name]}: added p50 <= {TARGET_P50}x LiteLLM's", r50 <= TARGET_P50)
            )
            checks.append(
                (f"{LABELS[name]}: added p95 <= {TARGET_P95}x LiteLLM's", r95 <= TARGET_P95)
            )
        print(line)
    return checks


def big_table(by_size: dict[str, dict[str, list[list[float]]]]) -> list[tuple[str, bool]]:
    header = (
        f"{'prompt':<7} {'bare p50':>9} {'call() added p50 (reps)':>26} "
        f"{'LiteLLM added p50 (reps)':>26} {'÷LiteLLM':>9}"
    )
    print(header)
    print("-" * len(header))
    ours_by_size = {}
    for size, times in by_size.items():
        ours = added(times, "call_pg", 50)
        lite = added(times, "litellm", 50)
        ours_by_size[size] = ours[0]
        bare = percentile(sum(times["sdk"], []), 50)
        print(
            f"{size:<7} {bare:>7.3f}ms {fmt(ours):>26} {fmt(lite):>26} "
            f"{fmt_ratio(ratio(ours[0], lite[0]), 9)}"
        )
    extra = ours_by_size["1 MB"] - ours_by_size["1 KB"]
    print(f"call(): a 1 MB prompt adds {extra:+.3f} ms over a 1 KB one (p50 of what each adds)")
    return [
        (f"a 1 MB prompt adds <= {TARGET_BIG_MS} ms over 1 KB to call()", extra <= TARGET_BIG_MS)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000, help="per contender per rep")
    parser.add_argument(
        "--large-calls", type=int, default=100, help="per contender per rep, per size"
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds per rep")
    parser.add_argument("--quick", action="store_true", help="2 reps of 150 calls (20 big)")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.delay)
        return 0
    if args.quick:
        args.reps, args.calls, args.large_calls = 2, 150, 20
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before anything imports LiteLLM
    guard_sockets()
    require_installed(__file__, also=(("litellm", "LiteLLM (pip install -e '.[bench]')"),))
    litellm = setup_litellm()
    from benchmarks.pg import postgres_problem, skip_line, where

    problem = postgres_problem(args.postgres)
    postgres = args.postgres if problem is None else None
    if problem is not None:
        print(
            skip_line("peers on PostgreSQL", args.postgres, problem, variable="BENCH_POSTGRES_URL")
        )
    redis_why = redis_problem(args.redis)
    if redis_why is not None:
        print(
            f"peers: no Redis at {args.redis} ({redis_why}): Django's local-memory cache instead."
        )
    cache_name = "Redis" if redis_why is None else "locmem"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, FakeAPI() as api:
        setup_site(api, tmp, postgres=postgres, redis=None if redis_why else args.redis)
        from django.db import connections

        from django_claude.models import CallRecord
        from django_claude.recording import writer

        aliases = {"peers-pg": "default", "peers-sqlite": "sqlite" if postgres else "default"}
        for feature, alias in aliases.items():
            CallRecord.objects.using(alias).filter(feature=feature).delete()
        contenders = Contenders(api, litellm, postgres=postgres is not None)
        names = contenders.names()
        print(
            f"What each adds to a call over the bare anthropic SDK: {args.reps} interleaved reps "
            f"of {args.calls} calls each, 1 KB prompt, fake API in its own process "
            f"(PostgreSQL {where(args.postgres) if postgres else 'skipped'}, {cache_name}, "
            "smell test 1%, call log to a file). (reps): the lowest and highest rep.",
            flush=True,
        )
        times = interleave(
            contenders,
            names,
            prompt_of(SIZES["1 KB"]),
            reps=args.reps,
            calls=args.calls,
            rounds=args.rounds,
            warm=30 if args.calls >= 100 else 3,
        )
        checks = main_table(times, cache_name)
        print()
        if postgres:
            print(
                f"Big prompts: call() (PostgreSQL + {cache_name}) and LiteLLM completion() over "
                f"the bare SDK, {args.reps} interleaved reps of {args.large_calls} calls each.",
                flush=True,
            )
            by_size = {
                size: interleave(
                    contenders,
                    ["sdk", "call_pg", "litellm"],
                    prompt_of(chars),
                    reps=args.reps,
                    calls=args.large_calls,
                    rounds=min(args.rounds, 5),
                    warm=3,
                )
                for size, chars in SIZES.items()
            }
            checks += big_table(by_size)
        else:
            print("Big prompts: skipped, they are measured on PostgreSQL.")
        assert writer.flush_pending(30.0), "the writer did not drain in 30 s"
        missing = []
        for feature, made in contenders.made.items():
            alias = aliases[feature]
            rows = CallRecord.objects.using(alias).filter(feature=feature).count()
            if rows != made:
                missing.append(f"{feature}: {made} calls, {rows} records")
            CallRecord.objects.using(alias).filter(feature=feature).delete()
        contenders.loop.run_until_complete(contenders.loop.shutdown_asyncgens())
        contenders.loop.close()
        connections.close_all()
    print()
    for what, ok in checks:
        print(f"{verdict(ok)}  {what}")
    made_total = sum(contenders.made.values())
    print(
        f"records: {made_total} django-claude calls, "
        f"{'every one recorded' if not missing else 'MISSING ' + '; '.join(missing)}; "
        f"sockets: {AUDITED['connect']} connects, "
        f"{'all to 127.0.0.1' if not OUTBOUND else 'REFUSED ' + '; '.join(OUTBOUND[:5])}; "
        f"{time.monotonic() - started:.0f} s"
    )
    return 1 if missing or OUTBOUND else 0


if __name__ == "__main__":
    sys.exit(main())
