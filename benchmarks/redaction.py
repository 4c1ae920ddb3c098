"""Redaction stays linear: adversarial inputs against plain prose of the same size.

Each row prints the time (wall clock and CPU) for 1 MB of one input shape and
its CPU-time ratio to 1 MB of ordinary prose redacted in the same run. Every
shape aims at one rule: a run of the characters or words that make the rule
start a match and then fail. A pattern that backtracks shows up as a ratio in
the hundreds; linear ones stay within a small factor. The run fails (exit 1)
when a shape takes more than ``LIMIT_SECONDS`` of CPU time.

    python benchmarks/redaction.py
"""

from __future__ import annotations

import base64
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.preflight import require_installed  # noqa: E402

require_installed(__file__)
from django_claude.recording.redaction import prompt_prefix, redact  # noqa: E402

MB = 1_000_000
LIMIT_SECONDS = 1.0


def fill(unit: str) -> str:
    """``unit`` repeated to 1 MB."""
    return (unit * (MB // len(unit) + 1))[:MB]


def random_text(alphabet: str, length: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

SHAPES: dict[str, str] = {
    "plain prose": fill("The printer on floor three prints blank pages again. "),
    "prose with numbers": fill("Order 12345 shipped on 2024-01-15 for $1,234.56 to room 42. "),
    '"a." * 500_000': fill("a."),
    '"eyJ" + "A" * 10**6': ("eyJ" + "A" * MB)[:MB],
    "digit run": fill("7"),
    "spaced digits": fill("1 "),
    "dashed digits": fill("1-"),
    "dotted digits": fill("1."),
    "digit pairs (NINO, FR phones)": fill("12 "),
    "at signs": fill("a@"),
    "quoted local parts": fill('"a'),
    "colons (IPv6-ish)": fill("a:"),
    "double colons": fill("::"),
    "plus signs (phones)": fill("+1 "),
    "parentheses (phones)": fill("(1"),
    "00 prefixes": fill("00"),
    "key=value": fill("token="),
    "password: words": fill("password: a "),
    "camelCase keys": fill("newPassword"),
    "bearer words": fill("bearer "),
    "PEM headers": fill("-----BEGIN PRIVATE KEY-----"),
    "PEM header lines": fill("-----BEGIN PRIVATE KEY-----\n"),
    "PEM without END": ("-----BEGIN PRIVATE KEY-----\n" + "A" * MB)[:MB],
    "PEM bodies without END": fill("-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAA\n"),
    "sk- prefixes": fill("sk-"),
    "sk-ant- prefixes": fill("sk-ant-"),
    "vendor prefixes": fill("ghp_ glpat- xoxb- AKIA SG. npm_ hf_ "),
    "percent escapes": fill("%41"),
    "spaced percent escapes": fill("%31%32%33%34%35%36%37 "),
    "backslash escapes": fill("\\x41"),
    "html entities": fill("&#65;"),
    "random base64 tokens": " ".join(random_text(_B64, 20, seed) for seed in range(MB // 21 + 1))[
        :MB
    ],
    "one random base64 token": random_text(_B64, MB, 1),
    "base64 of an email, repeated": fill(base64.b64encode(b"john.doe@example.com").decode() + " "),
    "hex tokens": fill("3f786850e387550fdab836ed7e6dc881de23001b "),
    "letters only": fill("a"),
    "letters and digits": fill("abc123"),
    "obfuscated emails": fill("x [at] y [dot] "),
    "spelled-out at/dot": fill("a at b dot "),
    "birth labels": fill("DOB: 1"),
    "SSN labels": fill("SSN 1"),
    "phone labels": fill("call 1"),
    "street numbers": fill("1 Main A B C D "),
    "IBAN-like": fill("GB82 WEST "),
    "card-like groups": fill("4111 1111 "),
    "URLs": fill("https://"),
    "URL credentials": fill("://a:b@"),
    "line breaks": fill("\n"),
    "accented letters": fill("é"),
    "emoji": fill("🙂"),
    "zero-width characters": fill("a\u200b"),
}


def timed(fn: Callable[[str], object], text: str, repeat: int = 3) -> tuple[float, float]:
    """The best wall-clock and CPU seconds of ``repeat`` runs (CPU time is the
    steadier figure on a shared machine)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn(text)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu


def main() -> int:
    baseline, baseline_cpu = timed(redact, SHAPES["plain prose"])
    print(f"{'input (1 MB)':<32} {'seconds':>8} {'cpu s':>8} {'ratio to prose':>15}")
    slow = []
    for name, text in SHAPES.items():
        seconds, cpu = timed(redact, text)
        print(f"{name:<32} {seconds:>8.3f} {cpu:>8.3f} {cpu / baseline_cpu:>15.2f}")
        if cpu > LIMIT_SECONDS:
            slow.append(name)
    huge = "x" * (10 * MB)
    prefix_seconds, _ = timed(lambda t: prompt_prefix(t, limit=80), huge)
    print(
        f"prefix of a 10 MB prompt: {prefix_seconds * 1000:.2f} ms "
        f"({prefix_seconds / baseline:.4f} of redacting 1 MB of prose)"
    )
    if slow:
        print(f"over {LIMIT_SECONDS} s: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
