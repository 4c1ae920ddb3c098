"""The list prices (USD per million tokens) migration 0002 seeded as ``ModelPrice`` rows.

List prices come from genai-prices now (``recording/catalog.py``);
migration 0009 removes the seeded rows a site left unchanged. Both
migrations read this table, so it stays as it was. (A leading underscore:
Django's migration loader passes it by.)
"""

from __future__ import annotations

import datetime

EFFECTIVE_FROM = datetime.date(2025, 1, 1)

# model ids and aliases: input, 5-minute cache write, 1-hour cache write, cache read, output
PRICES = [
    (
        (
            "claude-opus-4-8",
            "claude-opus-4-7",
            "claude-opus-4-6",
            "claude-opus-4-5",
            "claude-opus-4-5-20251101",
        ),
        ("5", "6.25", "10", "0.50", "25"),
    ),
    (
        (
            "claude-opus-4-1",
            "claude-opus-4-1-20250805",
            "claude-opus-4-0",
            "claude-opus-4",
            "claude-opus-4-20250514",
        ),
        ("15", "18.75", "30", "1.50", "75"),
    ),
    (
        (
            "claude-sonnet-4-6",
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-0",
            "claude-sonnet-4",
            "claude-sonnet-4-20250514",
        ),
        ("3", "3.75", "6", "0.30", "15"),
    ),
    (("claude-haiku-4-5", "claude-haiku-4-5-20251001"), ("1", "1.25", "2", "0.10", "5")),
    (
        ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
        ("0.80", "1", "1.6", "0.08", "4"),
    ),
]
