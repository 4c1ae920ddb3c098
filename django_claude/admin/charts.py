"""Server-side SVG charts for the dashboard: no JavaScript, no CDN.

Each function takes plain values and returns SVG markup (safe: every label is
escaped), with a ``<title>`` on each mark so a hover shows the exact number
and the chart reads without scripts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from django_claude.types import Outcome

PALETTE = [
    "#d97757",
    "#4f7cac",
    "#6a9f58",
    "#c5a34b",
    "#8e6bb0",
    "#3fa7a0",
    "#b05a7a",
    "#7a7a7a",
]
OUTCOME_COLOURS = {
    Outcome.OK: "#6a9f58",
    Outcome.CACHED: "#4f7cac",
    Outcome.FALLBACK: "#c5a34b",
    Outcome.DEGRADED: "#d97757",
    "errors": "#b03a2e",
}

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 44


def _nice_max(value: float) -> float:
    """A round top for the y axis: 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exponent >= value:
            return step * exponent
    return value


def _frame(title: str, y_label: str, y_max: float, fmt: Callable[[float], str]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="claude-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})" text-anchor="middle">'
        f"{escape(y_label)}</text>",
    ]
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(fmt(value))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], slot: float) -> list[str]:
    parts = []
    every = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return parts


def _legend(names: Sequence[str], colours: Sequence[str]) -> list[str]:
    parts = []
    x = LEFT
    for name, colour in zip(names, colours, strict=False):
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 7}" font-size="10">{escape(name)}</text>'
        )
        x += 20 + 7 * len(name)
    return parts


def stacked_bars(
    *,
    title: str,
    y_label: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    colours: dict[str, str] | None = None,
) -> SafeString:
    """One bar per label, stacked by series (e.g. cost per day per feature)."""
    names = list(series)
    palette = [(colours or {}).get(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]
    totals = [sum(float(series[n][i]) for n in names) for i in range(len(labels))]
    y_max = _nice_max(max(totals, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    parts = _frame(title, y_label, y_max, fmt)
    for i, label in enumerate(labels):
        y = float(TOP + plot_h)
        for name, colour in zip(names, palette, strict=True):
            value = float(series[name][i])
            if value <= 0:
                continue
            h = plot_h * value / y_max
            y -= h
            parts.append(
                f'<rect x="{LEFT + slot * i + slot * 0.15:.1f}" y="{y:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)} · {escape(name)}: {escape(fmt(value))}</title></rect>"
            )
    parts += _x_labels(labels, slot)
    parts += _legend(names, palette)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label above is escaped


def lines(
    *,
    title: str,
    y_label: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    y_max: float | None = None,
    reference: tuple[str, float] | None = None,
    markers: Sequence[tuple[int, str]] = (),
) -> SafeString:
    """Lines over the labels; an optional dashed reference (a baseline) and
    vertical markers (model changes) with their descriptions."""
    names = list(series)
    values = [v for s in series.values() for v in s if v is not None]
    if reference is not None:
        values.append(reference[1])
    top = y_max if y_max is not None else _nice_max(max(values, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    parts = _frame(title, y_label, top, fmt)

    def y_of(value: float) -> float:
        return TOP + plot_h - plot_h * min(value, top) / top

    for index, text in markers:
        x = LEFT + slot * (index + 0.5)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#8e6bb0" '
            f'stroke-dasharray="2 3" class="claude-marker"><title>{escape(text)}</title></line>'
            f'<text x="{x + 2:.1f}" y="{TOP + 10}" font-size="9" fill="#8e6bb0">▲</text>'
        )
    if reference is not None:
        name, value = reference
        y = y_of(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333" '
            f'stroke-dasharray="6 4"><title>{escape(name)}: {escape(fmt(value))}</title></line>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(name)} {escape(fmt(value))}</text>"
        )
    palette = [PALETTE[(i + 1) % len(PALETTE)] for i in range(len(names))]
    for name, colour in zip(names, palette, strict=True):
        points = [
            (LEFT + slot * (i + 0.5), y_of(v), labels[i], v)
            for i, v in enumerate(series[name])
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for x, y, label, v in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(label)} · {escape(name)}: {escape(fmt(v))}</title></circle>"
            )
    parts += _x_labels(labels, slot)
    parts += _legend(names, palette)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label above is escaped
