"""The example project: `make demo`'s command and the view that calls Claude; and
what else a developer runs on the first day: the Makefile and the benchmarks."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
CALL_EVENTS = ('"event": "claude.call"', '"event": "claude.error"')


def example_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DATABASE_URL", "CACHE_URL", "PORT"}
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'example.sqlite3'}"
    env["DEMO_CALL_LOG"] = str(tmp_path / "demo-calls.log")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


@dataclass
class DemoRuns:
    """`manage.py demo` run twice on one database, with what the database held after each."""

    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    database: Path
    call_log: Path
    after_first: dict[str, int]
    after_second: dict[str, int]


def _counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        return {
            table: db.execute(f"SELECT COUNT(*) FROM django_claude_{table}").fetchone()[0]
            for table in ("callrecord", "dailycost", "modelroutechange", "smellbaseline")
        }


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> DemoRuns:
    tmp_path = tmp_path_factory.mktemp("demo")
    env = {**example_env(tmp_path), "DEMO_SERVE": "0"}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "demo"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    database = tmp_path / "example.sqlite3"
    first = run()
    after_first = _counts(database) if first.returncode == 0 else {}
    second = run()
    return DemoRuns(
        first=first,
        second=second,
        database=database,
        call_log=Path(env["DEMO_CALL_LOG"]),
        after_first=after_first,
        after_second=_counts(database) if second.returncode == 0 else {},
    )


def test_demo_runs_offline_without_an_api_key(demo_runs):
    first = demo_runs.first
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "No ANTHROPIC_API_KEY is set" in out
    assert "Admin login: demo / demo-claude" in out
    assert "overloads (529): the fallback model answers" in out
    assert "calls recorded." in out
    assert "Cost report for today" in out and "TOTAL" in out
    assert "support-summary" in out and "django_claude.smell_test" in out
    assert "DEMO_SERVE=0: not serving." in out
    assert "ada@example.com" not in first.stderr
    assert "ada@example.com" not in demo_runs.call_log.read_text()  # the call lines are redacted
    second = demo_runs.second
    assert second.returncode == 0, second.stderr  # idempotent: the demo user exists
    assert "already recorded for today: reusing it" in second.stdout


def test_make_demo_from_a_clean_checkout(tmp_path):
    """`DEMO_SERVE=0 make demo` end to end, as a new user would run it."""
    if not os.environ.get("CI") and not os.environ.get("DEMO_TEST"):
        pytest.skip("builds a fresh virtualenv (a minute or two): set DEMO_TEST=1; CI runs it")
    checkout = tmp_path / "checkout"
    subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True, capture_output=True
    )
    env = {**example_env(tmp_path), "DEMO_SERVE": "0"}
    env.pop("DATABASE_URL")  # the demo's own SQLite file
    result = subprocess.run(
        ["make", "demo"], cwd=checkout, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Admin login: demo / demo-claude" in result.stdout
    assert "Cost report for today" in result.stdout
    assert (checkout / "example_project" / "db.sqlite3").exists()


def test_the_example_view_shows_answer_outcome_and_request_id(tmp_path):
    script = textwrap.dedent(
        """
        import os, re, sys
        sys.path.insert(0, ".")
        os.environ["DJANGO_SETTINGS_MODULE"] = "example.settings"
        import django
        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.test import Client
        from django_claude.models import CallRecord
        from django_claude.testing import FakeAnthropic

        call_command("migrate", verbosity=0)
        fake = FakeAnthropic().start()
        settings.DJANGO_CLAUDE_BASE_URL = fake.url
        settings.DJANGO_CLAUDE_API_KEY = "sk-ant-example-test"
        settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0  # no random judge calls in the counts
        client = Client()
        assert client.get("/").status_code == 200
        page = client.post("/", {"question": "What is Django?"}).content.decode()
        from django_claude.recording import writer
        writer.flush_pending()  # the record may be written behind the answer
        record = CallRecord.objects.get()
        assert "Hello from the fake Claude." in page, page
        assert ">ok<" in page, page
        assert str(record.id) in page, page
        assert record.feature == "example-ask"

        streamed = client.get("/stream/", {"q": "Stream it"})
        body = b"".join(streamed.streaming_content).decode()
        assert body.startswith("Hello from the fake Claude."), body
        assert "[outcome=ok request_id=" in body

        import asyncio
        from django.test import AsyncClient

        async def read_async():
            response = await AsyncClient().get("/astream/", {"q": "Stream it async"})
            return b"".join([chunk async for chunk in response.streaming_content]).decode()

        body = asyncio.run(read_async())
        assert body.startswith("Hello from the fake Claude."), body
        from django_claude.recording import writer
        writer.flush_pending()
        features = sorted(CallRecord.objects.values_list("feature", flat=True))
        assert features == ["example-ask", "example-astream", "example-stream"], features
        print("ok")
        """
    )
    env = {**example_env(tmp_path), "ALLOWED_HOSTS": "testserver"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


# -- `make demo`: two weeks of history, quiet output, served by uvicorn ---------------------


def test_demo_seeds_two_weeks_of_marked_history_once(demo_runs):
    assert demo_runs.first.returncode == 0, demo_runs.first.stderr
    out = demo_runs.first.stdout
    assert re.search(r"Seeded 14 days of demo history: \d+ calls marked", out), out
    assert "search-answer moved to claude-haiku-4-5-20251001" in out
    assert "already there: nothing added" in demo_runs.second.stdout
    assert demo_runs.after_second == demo_runs.after_first  # a second run doubles nothing
    today = datetime.date.today()  # the example site runs on UTC
    with sqlite3.connect(demo_runs.database) as db:
        seeded = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT date(created_at)), MIN(date(created_at)),"
            " MAX(date(created_at)) FROM django_claude_callrecord"
            " WHERE user_ref = 'demo-history'"
        ).fetchone()
        unmarked = db.execute(
            "SELECT COUNT(*) FROM django_claude_callrecord WHERE user_ref = 'demo-history'"
            " AND (json_extract(tags, '$.demo') IS NOT 'seeded'"
            " OR prompt_prefix NOT LIKE '[demo history] %')"
        ).fetchone()[0]
        days = db.execute(
            "SELECT day, SUM(calls), SUM(cost_usd), SUM(fallback_calls), SUM(degraded_calls),"
            " SUM(smell_judged), MIN(latency_p50_ms) FROM django_claude_dailycost"
            " WHERE day < ? GROUP BY day ORDER BY day",
            [today.isoformat()],
        ).fetchall()
        change = db.execute(
            "SELECT feature, old_model, new_model, date(changed_at)"
            " FROM django_claude_modelroutechange WHERE reason LIKE 'demo history:%'"
        ).fetchall()
        baselines = dict(
            db.execute("SELECT feature, pass_rate FROM django_claude_smellbaseline").fetchall()
        )
        after_change = db.execute(
            "SELECT 100.0 * SUM(smell_verdict = 'pass') / COUNT(*) FROM django_claude_callrecord"
            " WHERE feature = 'search-answer' AND smell_verdict IN ('pass', 'fail')"
            " AND date(created_at) > ?",
            [(today - datetime.timedelta(days=7)).isoformat()],
        ).fetchone()[0]
    count, distinct_days, first_day, last_day = seeded
    assert distinct_days == 14 and count >= 14 * 200, seeded
    assert first_day == (today - datetime.timedelta(days=14)).isoformat()
    assert last_day == (today - datetime.timedelta(days=1)).isoformat()
    assert unmarked == 0  # every seeded call says it is demo data
    # Every past day is rolled up, with calls, cost, verdicts and a latency to chart.
    assert [row[0] for row in days] == [
        (today - datetime.timedelta(days=n)).isoformat() for n in range(14, 0, -1)
    ]
    for day, calls, cost, _fallback, _degraded, judged, latency in days:
        assert calls >= 100 and cost > 0 and judged > 0 and latency, (day, calls, cost, latency)
    assert max(row[3] for row in days) >= 3 * min(row[3] for row in days) + 10  # an incident
    assert sum(row[4] for row in days) > 0  # some degraded answers
    assert change == [
        (
            "search-answer",
            "claude-sonnet-4-6",
            "claude-haiku-4-5-20251001",
            (today - datetime.timedelta(days=7)).isoformat(),
        )
    ]
    assert set(baselines) >= {"support-summary", "search-answer", "example-ask"}
    assert after_change < baselines["search-answer"] - 5  # the chart shows the drop


def test_demo_keeps_the_call_lines_in_a_file_it_names(demo_runs):
    first, second = demo_runs.first, demo_runs.second
    assert first.returncode == 0, first.stderr
    for run in (first, second):
        terminal = run.stdout + run.stderr
        assert not any(event in terminal for event in CALL_EVENTS), terminal[-3000:]
        assert f"One JSON line per call (what claude_ingest_log reads): {demo_runs.call_log}" in (
            run.stdout
        )
    lines = demo_runs.call_log.read_text().splitlines()
    calls = int(re.search(r"(\d+) calls recorded\.", first.stdout).group(1))
    assert calls > 50
    assert len(lines) == calls  # one line per call of the demo's traffic, none for history
    assert {json.loads(line)["event"] for line in lines} == {"claude.call", "claude.error"}
    with sqlite3.connect(demo_runs.database) as db:
        live = db.execute(
            "SELECT COUNT(*) FROM django_claude_callrecord WHERE user_ref <> 'demo-history'"
        ).fetchone()[0]
    assert live == calls


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_serves_the_async_stream_with_uvicorn(tmp_path):
    pytest.importorskip("uvicorn", reason="uvicorn comes with the example extra")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
            cwd=EXAMPLE,
            env=example_env(tmp_path),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, out.read_text() + err.read_text()
            assert time.monotonic() < deadline, "the demo did not serve within 120 s"
            try:
                with urllib.request.urlopen(
                    f"{base}/static/django_claude/admin.css", timeout=5
                ) as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("text/css")
                    break
            except OSError:
                time.sleep(0.25)
        with urllib.request.urlopen(f"{base}/astream/?q=Stream+it", timeout=30) as response:
            assert response.headers["Server"] == "uvicorn"
            assert response.headers["Transfer-Encoding"] == "chunked"  # streamed, not buffered
            assert response.headers["Content-Length"] is None
            body = response.read().decode()
        assert body.startswith("Here is a short, helpful answer"), body
        assert "[outcome=ok request_id=" in body
    finally:
        server.send_signal(2)  # Ctrl-C
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    stdout_text, stderr_text = out.read_text(), err.read_text()
    assert f"Serving on http://127.0.0.1:{port}/ with uvicorn" in stdout_text
    assert "must consume" not in stderr_text  # no sync/async iterator warning from Django
    assert not any(event in stdout_text + stderr_text for event in CALL_EVENTS)
    call_log = Path(example_env(tmp_path)["DEMO_CALL_LOG"]).read_text()
    assert '"feature": "example-astream"' in call_log  # served calls go to the file too
    assert server.returncode == 0, stderr_text[-3000:]


def test_demo_says_at_once_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
            cwd=EXAMPLE,
            env=example_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is in use. Pick another: make demo PORT={port + 1}" in (
        result.stderr
    )
    assert "Sending demo traffic" not in result.stdout  # before a minute of traffic, not after
    assert time.monotonic() - started < 30


# -- the Makefile ---------------------------------------------------------------------------


def _fake_python(path: Path, version: str, *, ok: bool, prefix: str = "/opt/fake") -> Path:
    """A "python" that answers the Makefile's question the way ``version`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{version} {int(ok)} {prefix}'\n")
    path.chmod(0o755)
    return path


def _make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PORT", "MAKEFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_refuses_a_python_older_than_3_11(tmp_path):
    old = _fake_python(tmp_path / "bin" / "python3", "3.9.2", ok=False)
    venv = tmp_path / "venv"
    for target in ("venv", "test", "demo", "lint", "bench"):
        result = _make(target, f"PYTHON={old}", f"VENV={venv}")
        assert result.returncode != 0, result.stdout
        assert f"django-claude needs Python >= 3.11; PYTHON={old} is 3.9.2." in result.stderr
        assert f"Run make {target} PYTHON=" in result.stderr
        assert not venv.exists()  # refused before anything was made
    missing = _make("venv", f"PYTHON={tmp_path / 'no-such-python'}", f"VENV={venv}")
    assert missing.returncode != 0
    assert "does not run. django-claude needs Python >= 3.11" in missing.stderr


def test_make_rebuilds_a_virtualenv_made_by_another_python(tmp_path):
    python = _fake_python(tmp_path / "bin" / "python3", "3.12.1", ok=True)
    venv = tmp_path / "venv"
    _fake_python(venv / "bin" / "python", "3.11.7", ok=True, prefix="/opt/other")
    (venv / ".installed").touch()  # newer than pyproject.toml and the Makefile
    stale = _make("-n", "venv", f"PYTHON={python}", f"VENV={venv}")
    assert stale.returncode == 0, stale.stderr
    assert (
        f"{venv} was made by Python 3.11.7; PYTHON={python} is 3.12.1: rebuilding {venv}."
        in stale.stdout
    )
    assert f"rm -rf {venv}" in stale.stdout and f"{python} -m venv {venv}" in stale.stdout
    # The same Python that made it: nothing to do.
    _fake_python(venv / "bin" / "python", "3.12.1", ok=True)
    (venv / ".installed").touch()
    fresh = _make("-n", "venv", f"PYTHON={python}", f"VENV={venv}")
    assert fresh.returncode == 0, fresh.stderr
    assert "Nothing to be done for 'venv'" in fresh.stdout, fresh.stdout


def test_make_demo_serves_on_the_port_given(tmp_path):
    python = _fake_python(tmp_path / "bin" / "python3", "3.12.1", ok=True)
    venv = tmp_path / "venv"
    _fake_python(venv / "bin" / "python", "3.12.1", ok=True)
    (venv / ".installed").touch()
    for args, port in (((), "8000"), (("PORT=8123",), "8123")):
        dry = _make("-n", "demo", *args, f"PYTHON={python}", f"VENV={venv}")
        assert f"manage.py demo --addrport 127.0.0.1:{port}" in dry.stdout, dry.stdout


# -- the benchmarks -------------------------------------------------------------------------

BENCHMARKS = sorted(
    p.stem
    for p in (ROOT / "benchmarks").glob("*.py")
    if 'if __name__ == "__main__":' in p.read_text() and p.stem != "run"
)


def test_make_bench_runs_every_benchmark():
    from benchmarks.run import BENCHMARKS as RUN

    assert sorted(RUN) == BENCHMARKS
    assert BENCHMARKS == [
        "cost_report",
        "cpu",
        "dashboard",
        "overhead",
        "peers",
        "redaction",
        "site_load",
        "telemetry",
    ]
    assert "benchmarks/run.py" in _make("-n", "bench").stdout


@pytest.mark.parametrize("name", ["cost_report", "dashboard"])
def test_a_postgres_benchmark_without_a_server_says_so_in_one_line(name):
    closed = f"postgres://postgres:secret@127.0.0.1:{_free_port()}/bench"
    env = {**os.environ, "BENCH_POSTGRES_URL": closed, "BENCH_DASHBOARD_URL": closed}
    result = subprocess.run(
        [sys.executable, f"benchmarks/{name}.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    output = (result.stdout + result.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert output.startswith(f"{name}: skipped, no usable PostgreSQL at 127.0.0.1:"), output
    assert "secret" not in output  # no password in the line


def test_make_bench_skips_what_it_cannot_run_and_sums_up():
    closed = f"postgres://postgres@127.0.0.1:{_free_port()}/bench"
    env = {**os.environ, "BENCH_POSTGRES_URL": closed, "BENCH_DASHBOARD_URL": closed}
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "cost_report", "dashboard"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert re.search(r"cost_report +skipped", result.stdout), result.stdout
    assert re.search(r"dashboard +skipped", result.stdout), result.stdout


@pytest.mark.parametrize("name", [*BENCHMARKS, "run"])
def test_a_benchmark_run_without_django_says_which_python_to_use(name):
    # -S: no site-packages, as with a system python that lacks Django.
    result = subprocess.run(
        [sys.executable, "-S", f"benchmarks/{name}.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    assert "cannot import Django" in result.stderr
    assert f".venv/bin/python benchmarks/{name}.py" in result.stderr
    assert "make bench" in result.stderr
