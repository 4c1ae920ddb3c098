"""CPU a view spends calling Claude: through django_claude.call() vs the bare SDK.

What a served site pays for, measured where it is spent: the view's own
thread, every other thread of the process (the record writer, the smell
judge, the cache's threads), and PostgreSQL's and Redis's server processes
(when they run on this machine). The two views of ``benchmarks/site/app.py``
(``/call/`` and ``/sdk/``), called in this process with Django's
``RequestFactory`` against the fake API in a process of its own answering
at once, in interleaved blocks; the site's production settings (PostgreSQL
and Redis when they answer, the smell test at 1%, the call log to a file).

    python benchmarks/cpu.py [--calls 3000] [--blocks 6] [--quick]
                             [--postgres URL] [--redis URL]

Prints microseconds of CPU per call by where they were spent, and what
django-claude adds as a share of the bare view's total. Linux only (it reads
``/proc``); ``--quick``: 600 calls. Not a pass/fail benchmark: it says where
the time goes (``site_load.py`` says what a site serves).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.preflight import require_installed  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(path: str) -> tuple[str, float] | None:
    """(command name, user + system seconds) of a /proc stat file."""
    try:
        with open(path) as stat:
            text = stat.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / TICK


def processes_cpu() -> dict[int, tuple[str, int, float]]:
    """Every process of this machine: pid -> (command name, process group,
    user + system seconds so far). Empty where there is no ``/proc``."""
    found: dict[int, tuple[str, int, float]] = {}
    if not os.path.isdir("/proc/self/task"):
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    text = stat.read()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            name = text[text.index("(") + 1 : text.rindex(")")]
            found[int(entry)] = (name, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK)
    return found


def servers_cpu(prefixes: tuple[str, ...]) -> dict[tuple[str, int], float]:
    """CPU seconds so far of this machine's processes named ``prefixes``, by
    (prefix, pid): a process that ends between two readings (a PostgreSQL
    backend) is left out of their difference, never counted negative."""
    return {
        (prefix, pid): seconds
        for pid, (name, _, seconds) in processes_cpu().items()
        for prefix in prefixes
        if name.startswith(prefix)
    }


def threads_cpu() -> dict[str, float]:
    """CPU seconds so far of each thread of this process, by thread name."""
    import threading

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: defaultdict[str, float] = defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        stat = _stat_cpu(f"/proc/self/task/{tid}/stat")
        if stat is not None:
            found[names.get(int(tid), stat[0])] += stat[1]
    return dict(found)


def measure(calls: int, blocks: int) -> dict[str, defaultdict[str, float]]:
    """Run inside the configured site: CPU per view, by where it was spent."""
    import threading

    from django.test import RequestFactory

    from benchmarks.site import app
    from django_claude.recording.writer import flush_records

    factory = RequestFactory()
    views = {"bare SDK": app.sdk, "call()": app.call}
    for _ in range(100):  # warm: connections, imports, the price book, the route table
        for view in views.values():
            view(factory.get("/", {"tag": "cpu-warm"}))
    flush_records()
    spent: dict[str, defaultdict[str, float]] = {name: defaultdict(float) for name in views}
    me = threading.current_thread().name
    for block in range(blocks):
        order = list(views) if block % 2 == 0 else list(reversed(views))
        for name in order:
            view = views[name]
            before_threads, before_servers = threads_cpu(), servers_cpu(("postgres", "redis"))
            started = time.thread_time()
            for _ in range(calls // blocks):
                view(factory.get("/", {"tag": "cpu"}))
            spent[name]["view's thread"] += time.thread_time() - started
            flush_records()  # the writer's share of these calls is theirs
            time.sleep(0.05)
            after_threads, after_servers = threads_cpu(), servers_cpu(("postgres", "redis"))
            for thread, seconds in after_threads.items():
                if thread != me:
                    spent[name][thread] += seconds - before_threads.get(thread, 0.0)
            for (server, pid), seconds in after_servers.items():
                before = before_servers.get((server, pid), 0.0)  # 0: started meanwhile
                spent[name][f"{server} server"] += max(0.0, seconds - before)
    return spent


def report(spent: dict[str, defaultdict[str, float]], per_view: int) -> None:
    """Print ``spent`` per call (``per_view`` calls of each view)."""
    places = sorted({place for counts in spent.values() for place in counts})
    print(f"{'CPU per call (us)':32s} {'bare SDK':>10s} {'call()':>10s} {'added':>10s}")
    totals: defaultdict[str, float] = defaultdict(float)
    for place in places:
        bare, ours = (spent[name][place] / per_view * 1e6 for name in ("bare SDK", "call()"))
        if abs(bare) < 1 and abs(ours) < 1:
            continue
        totals["bare SDK"] += bare
        totals["call()"] += ours
        print(f"{place:32s} {bare:10.0f} {ours:10.0f} {ours - bare:+10.0f}")
    bare, ours = totals["bare SDK"], totals["call()"]
    print(f"{'all of it':32s} {bare:10.0f} {ours:10.0f} {ours - bare:+10.0f}")
    share = f", {(ours - bare) / bare:.2f}x the bare view's" if bare > 0 else ""
    print(
        f"call() adds {ours - bare:.0f} us of CPU per call{share} (the figures other than "
        "the view's thread are counted in ticks of 10 ms: coarse for a short run)"
    )


def main() -> None:
    require_installed(__file__)
    from benchmarks.peers import DEFAULT_PG, DEFAULT_REDIS, FakeAPI, redis_problem, setup_site
    from benchmarks.pg import postgres_problem, where

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    args = parser.parse_args()
    if not os.path.isdir("/proc/self/task"):
        print("benchmarks/cpu.py: skipped, it reads /proc (Linux only)")
        return
    calls = 600 if args.quick else args.calls
    problem = postgres_problem(args.postgres)
    redis_why = redis_problem(args.redis)
    database = "SQLite" if problem else f"PostgreSQL {where(args.postgres)}"
    cache = "the local-memory cache" if redis_why else "Redis"
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(0.0) as api:
        setup_site(
            api,
            tmp,
            postgres=None if problem else args.postgres,
            redis=None if redis_why else args.redis,
        )
        print(
            f"CPU per call of a view calling Claude, {calls} calls each in {args.blocks} "
            f"interleaved blocks: {database}, {cache}, smell test 1%, call log to a file; "
            f"fake API answering at once in its own process."
        )
        started = resource.getrusage(resource.RUSAGE_SELF)
        report(measure(calls, args.blocks), calls // args.blocks * args.blocks)
        ended = resource.getrusage(resource.RUSAGE_SELF)
        used = ended.ru_utime + ended.ru_stime - started.ru_utime - started.ru_stime
        print(f"{used:.1f} s of this process's CPU")


if __name__ == "__main__":
    main()
