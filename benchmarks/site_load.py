"""Requests per second of a real site whose view calls Claude: django-claude vs the bare SDK.

Starts the fake Messages API in its own process, every answer 50 ms late,
then serves ``benchmarks/site`` (production settings: DEBUG off, PostgreSQL,
Django's ``RedisCache``, the smell test at 1%, the call log to a file) with
uvicorn (2 workers: ``acall`` vs ``AsyncAnthropic``) and then gunicorn
(2 gthread workers of 32 threads: ``call`` vs ``Anthropic``). A load
generator in this process keeps N clients (50, then 200) busy for T seconds
on each view, the two views interleaved and alternating who goes first, for
several reps. Prints requests per second, their ratio with its spread over
the reps, latency, and whether every answered request left its record
(counted in the database once the server has stopped). Every server and the
fake are stopped, or killed, on the way out.

    python benchmarks/site_load.py [--seconds 10] [--reps 3] [--clients 50,200]
                                   [--servers uvicorn,gunicorn] [--quick]
                                   [--postgres URL] [--redis URL]
                                   [--database sqlite] [--cache locmem]

``--quick``: 1 rep of 3 seconds. A target missed is printed as MISS and the
run still exits 0; 1 on an error (a server that does not start, no request
answered). Without PostgreSQL or Redis it says so and exits 0, unless told
``--database sqlite`` / ``--cache locmem`` (the smoke test's settings).

The load generator speaks HTTP/1.1 over asyncio streams, keep-alive, one
connection per client: a few tens of microseconds of CPU a request, so on a
small machine it takes little from the servers it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.peers import (  # noqa: E402
    DEFAULT_PG,
    DEFAULT_REDIS,
    FakeAPI,
    percentile,
    redis_problem,
)

TARGET_RATIO = 0.85  # our req/s / the bare SDK's
SERVERS = {
    # name: (command after python, our path, the bare SDK's path, what they are)
    "uvicorn": (
        [
            "-m",
            "uvicorn",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--backlog",
            "2048",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "20",
            "benchmarks.site.app:asgi",
        ],
        "/acall/",
        "/asdk/",
        "uvicorn x2, acall() vs AsyncAnthropic",
    ),
    "gunicorn": (
        [
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "32",
            "--backlog",
            "2048",
            "--keep-alive",
            "5",
            "--graceful-timeout",
            "20",
            "--timeout",
            "60",
            "benchmarks.site.app:wsgi",
        ],
        "/call/",
        "/sdk/",
        "gunicorn gthread x2, call() vs Anthropic",
    ),
}


@dataclass
class Load:
    """What one run of the load generator saw."""

    answered: int = 0  # HTTP 200
    ok: int = 0  # ... with outcome "ok"
    failed: int = 0  # other statuses, timeouts, resets
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, by place (``cpu_by_place``)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep, chunked = None, True, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value == b"close":
            keep = False
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length), keep
    if chunked:
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip() or b"0", 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return status, body, keep
    return status, await reader.read(), False


async def _load(port: int, path: str, clients: int, seconds: float) -> Load:
    loop = asyncio.get_running_loop()
    result = Load()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    ends = loop.time() + seconds

    async def client() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while loop.time() < ends:
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
                reader, writer = conn
                started = time.perf_counter()
                writer.write(request)
                status, body, keep = await asyncio.wait_for(_response(reader), 30)
                result.latencies.append((time.perf_counter() - started) * 1000)
                if status == 200:
                    result.answered += 1
                    result.ok += b'"outcome": "ok"' in body
                else:
                    result.failed += 1
                if not keep:
                    writer.close()
                    conn = None
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                result.failed += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                await asyncio.sleep(0.05)
        if conn is not None:
            conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


def load(port: int, path: str, clients: int, seconds: float) -> Load:
    """``clients`` clients asking ``path`` back to back for ``seconds``
    (requests under way then are finished and counted)."""
    return asyncio.run(_load(port, path, clients, seconds))


PLACES = (("server", None), ("PostgreSQL", "postgres"), ("Redis", "redis"))
SETTLE = 0.6  # seconds after a load that its CPU is still counted to it


def cpu_by_place(group: int) -> dict[int, tuple[str, float]]:
    """pid -> (place, CPU seconds so far) of the server's processes (process
    group ``group``) and of PostgreSQL's and Redis's (when on this machine)."""
    from benchmarks.cpu import processes_cpu

    found: dict[int, tuple[str, float]] = {}
    for pid, (name, pgrp, seconds) in processes_cpu().items():
        for place, prefix in PLACES:
            if (pgrp == group) if prefix is None else name.startswith(prefix):
                found[pid] = (place, seconds)
                break
    return found


def measured_load(group: int, port: int, path: str, clients: int, seconds: float) -> Load:
    """``load``, with the CPU each place spent meanwhile and just after: the
    record writer's last batch (it lingers 0.25 s for company) and its
    database work are the load's, not the next one's. A process that ended
    meanwhile is left out, never counted negative."""
    before = cpu_by_place(group)
    seen = load(port, path, clients, seconds)
    time.sleep(SETTLE)
    for pid, (place, spent) in cpu_by_place(group).items():
        seen.cpu[place] = seen.cpu.get(place, 0.0) + max(0.0, spent - before.get(pid, ("", 0.0))[1])
    return seen


def _cpu_cells(pairs: list[tuple[Load, Load]]) -> str:
    """Microseconds of CPU per answered request, bare then ours, by place."""
    cells = []
    for place, _ in PLACES:
        per = []
        for side in (1, 0):  # bare, ours
            spent = sum(pair[side].cpu.get(place, 0.0) for pair in pairs)
            answered = sum(pair[side].answered for pair in pairs)
            per.append(spent / answered * 1e6 if answered else 0.0)
        cells.append(f"{per[0]:>15.0f} {per[1]:>7.0f}")
    return " ".join(cells)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``with Server(name, env, logs) as port:`` one server, stopped with
    SIGTERM on the way out (its whole process group killed after 30 s)."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.env, self.logs = name, env, logs
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        port = free_port()
        bind = ["--bind", f"127.0.0.1:{port}"] if self.name == "gunicorn" else ["--port", str(port)]
        self.log = open(self.logs / f"{self.name}.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(
            [sys.executable, *SERVERS[self.name][0], *bind],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers go with it
        )
        ends = time.monotonic() + 60
        while time.monotonic() < ends:
            if self.process.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return port
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not listen on {port} in 60 s: {self.tail()}")

    def tail(self) -> str:
        return (self.logs / f"{self.name}.log").read_text(errors="replace")[-2000:]

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # graceful: workers write what is queued
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # anything left of the group
        process.wait(5)
        self.log.close()
        self.process = None


def count_records(env: dict[str, str], prefix: str) -> int:
    """CallRecord rows whose feature starts with ``prefix``, then deletes them."""
    sql_count = "SELECT count(*) FROM django_claude_callrecord WHERE feature LIKE %s"
    sql_delete = "DELETE FROM django_claude_callrecord WHERE feature LIKE %s"
    if env["SITE_DATABASE"] == "sqlite":
        with sqlite3.connect(env["SITE_SQLITE"]) as db:
            rows = db.execute(sql_count.replace("%s", "?"), [prefix + "%"]).fetchone()[0]
            db.execute(sql_delete.replace("%s", "?"), [prefix + "%"])
        return int(rows)
    import psycopg

    with psycopg.connect(env["SITE_PG_URL"], autocommit=True, connect_timeout=5) as db:
        row = db.execute(sql_count, [prefix + "%"]).fetchone()
        db.execute(sql_delete, [prefix + "%"])
    return int(row[0]) if row else 0


def run_server(
    name: str,
    env: dict[str, str],
    logs: Path,
    *,
    clients: list[int],
    seconds: float,
    reps: int,
    run: str,
) -> tuple[dict[int, list[tuple[Load, Load]]], int, int]:
    """One server, both views, every client count, ``reps`` times:
    results[clients] = [(ours, bare) per rep], the records, the 200s."""
    _, ours_path, bare_path, _ = SERVERS[name]
    tag = f"load-{run}-{name}"
    ours_path += f"?tag={tag}"
    results: dict[int, list[tuple[Load, Load]]] = {n: [] for n in clients}
    answered = 0
    with (server := Server(name, env, logs)) as port:
        assert server.process is not None
        group = server.process.pid  # its own session: its workers share its group
        warm = min(20, max(clients))  # connections, imports, routes, prices
        answered += load(port, ours_path, warm, 1.0).answered
        load(port, bare_path, warm, 1.0)
        turn = 0
        for _ in range(reps):
            for n in clients:
                ours = bare = Load()
                order = ("ours", "bare") if turn % 2 == 0 else ("bare", "ours")
                turn += 1
                for who in order:
                    path = ours_path if who == "ours" else bare_path
                    seen = measured_load(group, port, path, n, seconds)
                    if who == "ours":
                        ours = seen
                        answered += seen.answered
                    else:
                        bare = seen
                results[n].append((ours, bare))
                print(
                    f"  {name} {n:>3} clients: ours {ours.rate:7.1f} req/s, "
                    f"bare {bare.rate:7.1f} req/s",
                    flush=True,
                )
    return results, count_records(env, tag), answered


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every ``with``: servers and the fake stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per view per client count")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", default="50,200", help="concurrent clients, comma separated")
    parser.add_argument("--servers", default="uvicorn,gunicorn")
    parser.add_argument(
        "--delay", type=float, default=0.05, help="the fake API's seconds per answer"
    )
    parser.add_argument("--quick", action="store_true", help="1 rep of 3 seconds")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--cache", choices=["redis", "locmem"], default="redis")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.seconds = 1, 3.0
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    clients = [int(n) for n in args.clients.split(",")]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"no server {', '.join(unknown)}; there are {', '.join(SERVERS)}")
    from benchmarks.preflight import require_installed

    require_installed(__file__, also=tuple((s, s) for s in servers))
    from benchmarks.pg import postgres_problem, skip_line

    if args.database == "postgres":
        problem = postgres_problem(args.postgres)
        if problem is not None:
            print(skip_line("site_load", args.postgres, problem, variable="BENCH_POSTGRES_URL"))
            return 0
    if args.cache == "redis":
        problem = redis_problem(args.redis)
        if problem is not None:
            print(
                f"site_load: skipped, no usable Redis at {args.redis} ({problem}). "
                "Start one, or set BENCH_REDIS_URL (or --redis), or --cache locmem."
            )
            return 0
    signal.signal(signal.SIGTERM, _interrupted)  # `timeout` and CI: stop the servers too
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()
    checks: list[tuple[str, bool]] = []
    rows: list[str] = []
    cpu_rows: list[str] = []
    failed = False
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(args.delay) as api:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchmarks.site.settings",
            "PYTHONPATH": str(ROOT),
            "SITE_API": api,
            "SITE_DATABASE": args.database,
            "SITE_PG_URL": args.postgres,
            "SITE_SQLITE": f"{tmp}/site.sqlite3",
            "SITE_CACHE": args.redis if args.cache == "redis" else "locmem",
            "SITE_CALL_LOG": f"{tmp}/calls.log",
        }
        migrate = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--verbosity=0"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if migrate.returncode != 0:
            print(f"site_load: migrate failed:\n{migrate.stderr[-3000:]}", file=sys.stderr)
            return 1
        database = "PostgreSQL" if args.database == "postgres" else "SQLite"
        cache = "Redis" if args.cache == "redis" else "locmem"
        print(
            f"A view asking Claude, served for real: fake API {args.delay * 1000:.0f} ms an "
            f"answer in its own process, {database} + {cache}, smell test 1%, call log to a "
            f"file; {args.reps} reps of {args.seconds:g} s per view and client count, "
            "interleaved. (reps): the lowest and highest rep.",
            flush=True,
        )
        for name in servers:
            try:
                results, records, answered = run_server(
                    name,
                    env,
                    Path(tmp),
                    clients=clients,
                    seconds=args.seconds,
                    reps=args.reps,
                    run=run,
                )
            except RuntimeError as exc:
                print(f"site_load: {exc}", file=sys.stderr)
                failed = True
                continue
            label = SERVERS[name][3]
            for n, pairs in results.items():
                ours = sum(o.answered for o, _ in pairs) / sum(o.seconds for o, _ in pairs)
                bare = sum(b.answered for _, b in pairs) / sum(b.seconds for _, b in pairs)
                per_rep = [o.rate / b.rate if b.rate else 0.0 for o, b in pairs]
                lat_o = [x for o, _ in pairs for x in o.latencies] or [0.0]
                lat_b = [x for _, b in pairs for x in b.latencies] or [0.0]
                errors = sum(o.failed + b.failed for o, b in pairs)
                not_ok = sum(o.answered - o.ok for o, _ in pairs)
                ratio = ours / bare if bare else 0.0
                rows.append(
                    f"{label:<40} {n:>7} {bare:>8.1f} {ours:>8.1f} "
                    f"{ratio:>6.2f} ({min(per_rep):.2f}..{max(per_rep):.2f}) "
                    f"{percentile(lat_b, 50):>7.1f} {percentile(lat_o, 50):>7.1f} "
                    f"{percentile(lat_b, 95):>7.1f} {percentile(lat_o, 95):>7.1f} "
                    f"{errors:>6} {not_ok:>6}"
                )
                cpu_rows.append(f"{label:<40} {n:>7} " + _cpu_cells(pairs))
                checks.append(
                    (f"{label}, {n} clients: req/s >= {TARGET_RATIO}x", ratio >= TARGET_RATIO)
                )
                if ours == 0 or bare == 0:
                    failed = True
            rows.append(f"{'':<40} records {records} for {answered} answered requests")
            checks.append(
                (
                    f"{label}: records == answered requests ({records}/{answered})",
                    records == answered,
                )
            )
    header = (
        f"{'server, ours vs bare':<40} {'clients':>7} {'bare/s':>8} {'ours/s':>8} "
        f"{'ratio (reps)':>18} {'p50 ms':>7} {'ours':>7} {'p95 ms':>7} {'ours':>7} "
        f"{'errors':>6} {'not ok':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    if cpu_rows and os.path.isdir("/proc/self/task"):  # (Linux: read from /proc)
        print()
        cpu_header = f"{'CPU per answered request (us)':<40} {'clients':>7} " + " ".join(
            f"{place + ' bare':>15} {'ours':>7}" for place, _ in PLACES
        )
        print(cpu_header)
        print("-" * len(cpu_header))
        for row in cpu_rows:
            print(row)
        print(
            "(the server's processes, and PostgreSQL's and Redis's when they run here, "
            "from /proc around each load; ticks of 10 ms)"
        )
    print()
    for what, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {what}")
    print(f"{time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
