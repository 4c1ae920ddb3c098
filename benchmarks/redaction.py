"""Redaction stays linear: adversarial inputs against plain prose of the same size.

Each line prints the time for 1 MB of one input shape and its ratio to 1 MB of
ordinary text redacted in the same run. A pattern that backtracks shows up as
a ratio in the hundreds; linear patterns stay within a small factor.

    python benchmarks/redaction.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_claude.recording.redaction import prompt_prefix, redact  # noqa: E402

MB = 1_000_000
SHAPES = {
    "plain prose": ("The printer on floor three prints blank pages again. " * 20_000)[:MB],
    '"a." * 500_000': "a." * 500_000,
    '"eyJ" + "A" * 10**6': "eyJ" + "A" * MB,
    "digit run": "7" * MB,
    "spaced digits": "1 " * (MB // 2),
    "dashed digits": "1-" * (MB // 2),
    "at signs": "a@" * (MB // 2),
    "colons (IPv6-ish)": "a:" * (MB // 2),
    "plus signs (phones)": "+1 " * (MB // 3),
    "key=value": "token=" * (MB // 6),
    "PEM headers": "-----BEGIN PRIVATE KEY-----" * (MB // 27),
}


def timed(fn: Callable[[str], object], text: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    baseline = timed(redact, SHAPES["plain prose"])
    print(f"{'input (1 MB)':<24} {'seconds':>8} {'ratio to prose':>15}")
    for name, text in SHAPES.items():
        seconds = timed(redact, text)
        print(f"{name:<24} {seconds:>8.3f} {seconds / baseline:>15.2f}")
    huge = "x" * (10 * MB)
    prefix_seconds = timed(lambda t: prompt_prefix(t, limit=80), huge)
    print(
        f"prefix of a 10 MB prompt: {prefix_seconds * 1000:.2f} ms "
        f"({prefix_seconds / baseline:.4f} of redacting 1 MB of prose)"
    )


if __name__ == "__main__":
    main()
