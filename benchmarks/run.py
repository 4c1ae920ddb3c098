"""Every benchmark in turn, what ``make bench`` runs.

Each runs in its own process with this Python, its output as it comes. The
PostgreSQL ones print one line and are skipped when no server answers
(``BENCH_POSTGRES_URL``, ``BENCH_DASHBOARD_URL``). Ends with how long each
took; exits 1 if one failed.

    python benchmarks/run.py [--quick]

``--quick`` (``make bench QUICK=1``): smaller sizes, for a first look.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import cost_report, dashboard  # noqa: E402
from benchmarks.pg import postgres_problem, skip_line  # noqa: E402
from benchmarks.preflight import require_installed  # noqa: E402

# In the order a reader meets them: the call path, beside its peers and served
# under load, the redactor, the reports.
BENCHMARKS = [
    "overhead",
    "peers",
    "site_load",
    "cpu",
    "redaction",
    "cost_report",
    "dashboard",
    "telemetry",
]
# redaction: a fixed size, already quick
QUICK_FLAG = {"overhead", "peers", "site_load", "cpu", "cost_report", "dashboard", "telemetry"}
# The benchmarks that need the bench extra (pip install -e '.[bench]'): the modules.
EXTRAS = {
    "peers": ["litellm"],
    "site_load": ["uvicorn", "gunicorn"],
    "telemetry": ["opentelemetry.sdk"],
}
# The benchmarks that need PostgreSQL: where each looks for it.
POSTGRES = {
    "cost_report": ("BENCH_POSTGRES_URL", cost_report.DEFAULT_PG),
    "dashboard": ("BENCH_DASHBOARD_URL", dashboard.DEFAULT_PG),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    require_installed(__file__)
    results: list[tuple[str, str, float]] = []
    for name in args.names or BENCHMARKS:
        missing = [module for module in EXTRAS.get(name, []) if find_spec(module) is None]
        if missing:
            print(
                f"\n{name}: skipped, needs {', '.join(missing)}: pip install -e '.[bench]'",
                flush=True,
            )
            results.append((name, "skipped", 0.0))
            continue
        if name in POSTGRES:
            variable, default = POSTGRES[name]
            url = os.environ.get(variable, default)
            problem = postgres_problem(url)
            if problem is not None:
                print(f"\n{skip_line(name, url, problem, variable=variable)}", flush=True)
                results.append((name, "skipped", 0.0))
                continue
        command = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py")]
        if args.quick and name in QUICK_FLAG:
            command.append("--quick")
        print(f"\n=== {name} ({' '.join(command[1:])}) ===", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        results.append(
            (name, "ok" if code == 0 else f"failed ({code})", time.monotonic() - started)
        )
    print("\n=== summary ===")
    for name, status, seconds in results:
        print(f"{name:<12} {status:<12} {seconds:7.1f} s")
    print(f"{'total':<12} {'':<12} {sum(s for _, _, s in results):7.1f} s")
    return 1 if any(status.startswith("failed") for _, status, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
