"""benchmarks/peers.py, site_load.py and cpu.py run end to end, at a tiny size.

Not measurements: that each starts its fake API (and servers), measures every
contender, prints its table and PASS/MISS lines, leaves a record for every
answered call and stops everything it started. peers.py needs LiteLLM (the
``bench`` extra); site_load.py needs uvicorn and gunicorn (the ``test`` extra)
and runs on SQLite and the local-memory cache here, so no service is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # each benchmark configures its own site
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_peers_prints_every_contender_and_the_targets():
    pytest.importorskip("litellm")
    proc = _run(
        [
            "benchmarks/peers.py",
            "--reps",
            "1",
            "--calls",
            "12",
            "--large-calls",
            "2",
            "--rounds",
            "2",
        ],
        timeout=150,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    rows = ["LiteLLM completion()", "LiteLLM Router (retries + fallback)", "call()    SQLite"]
    if "peers on PostgreSQL: skipped" not in out:
        rows += [
            "call()    PostgreSQL",
            "acall()   PostgreSQL",
            "stream()  PostgreSQL",
            "astream() PostgreSQL",
            "1 MB",
            "a 1 MB prompt adds",
        ]
    for row in rows:
        assert row in out, (row, out)
    assert "added p50 <= 0.33x LiteLLM's" in out
    assert "every one recorded" in out
    assert "all to 127.0.0.1" in out  # LiteLLM reached nothing off this machine


def test_site_load_serves_both_views_under_both_servers_and_keeps_every_record():
    pytest.importorskip("uvicorn")
    pytest.importorskip("gunicorn")
    proc = _run(
        [
            "benchmarks/site_load.py",
            "--database",
            "sqlite",
            "--cache",
            "locmem",
            "--clients",
            "6",
            "--seconds",
            "1",
            "--reps",
            "1",
        ],
        timeout=180,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    for label in (
        "uvicorn x2, acall() vs AsyncAnthropic",
        "gunicorn gthread x2, call() vs Anthropic",
    ):
        assert f"{label}, 6 clients: req/s >= 0.85x" in out, out
        assert f"PASS  {label}: records == answered requests" in out, out
    if os.path.isdir("/proc/self/task"):  # where the CPU went, server by server
        table = out.split("CPU per answered request (us)")[1]
        for label in ("uvicorn x2", "gunicorn gthread x2"):
            [row] = [line for line in table.splitlines() if line.startswith(label)]
            server_bare, server_ours = (float(v) for v in row.split()[-6:-4])
            assert server_bare > 0 and server_ours > 0, row


def test_cpu_says_where_each_views_cpu_goes():
    proc = _run(["benchmarks/cpu.py", "--calls", "40", "--blocks", "2"], timeout=150)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "view's thread" in out, out
    assert "all of it" in out, out
    assert "call() adds" in out, out
