"""Server-side SVG charts for the dashboard: no JavaScript, no CDN.

Each function takes plain values and returns SVG markup (safe: every label is
escaped), with a ``<title>`` on each mark so a hover shows the exact number
and the chart reads without scripts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

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
    Outcome.LIMITED: "#8e8e8e",
}

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 44


LEGEND_ROW = 14
# Steps an axis may take, times a power of ten: ticks read as round numbers.
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)


def nice_ticks(value: float, *, intervals: int = 4, whole: bool = False) -> list[float]:
    """The y axis's ticks, from 0 up to at least ``value``: a step of 1, 2, 2.5
    or 5 times a power of ten, so about ``intervals`` steps cover ``value``.
    ``whole`` keeps the step a whole number (counts of calls)."""
    if not math.isfinite(value) or value <= 0:
        value = 1.0
    raw = value / intervals
    exponent = math.floor(math.log10(raw))
    step = next(
        candidate
        for e in (exponent, exponent + 1)
        for m in NICE_STEPS
        if (candidate := m * 10.0**e) >= raw * (1 - 1e-9)
        and not (whole and (candidate < 1 or candidate != int(candidate)))
    )
    count = max(1, math.ceil(value / step - 1e-9))
    return [round(i * step, 12) for i in range(count + 1)]


def tick_decimals(ticks: Sequence[float]) -> int:
    """How many decimals show every tick exactly (2.5 needs one, 0.025 three)."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    exponent = Decimal(repr(round(step, 12))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _frame(
    *,
    title: str,
    y_label: str,
    ticks: Sequence[float],
    prefix: str,
    suffix: str,
    height: int,
) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    top = ticks[-1]
    decimals = tick_decimals(ticks)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(title)}" class="claude-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})" text-anchor="middle">'
        f"{escape(y_label)}</text>",
    ]
    for value in ticks:
        y = TOP + plot_h - plot_h * value / top
        label = f"{prefix}{value:,.{decimals}f}{suffix}"
        # The label's middle sits on its gridline.
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1" class="claude-grid"/>'
            f'<text x="{LEFT - 4}" y="{y:.1f}" font-size="10" text-anchor="end" '
            f'dominant-baseline="central" class="claude-tick">{escape(label)}</text>'
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


def _swatch(kind: str, colour: str, x: float, y: float) -> str:
    """A legend's sample of a mark: a box (bar), a line, a dashed line (a
    reference) or a dashed upright with its triangle (a marker)."""
    if kind == "line":
        return (
            f'<line x1="{x}" x2="{x + 12}" y1="{y + 5}" y2="{y + 5}" stroke="{colour}" '
            f'stroke-width="2"/><circle cx="{x + 6}" cy="{y + 5}" r="2.5" fill="{colour}"/>'
        )
    if kind == "reference":
        return (
            f'<line x1="{x}" x2="{x + 12}" y1="{y + 5}" y2="{y + 5}" stroke="{colour}" '
            f'stroke-dasharray="4 2"/>'
        )
    if kind == "marker":
        return (
            f'<line x1="{x + 5}" x2="{x + 5}" y1="{y + 3}" y2="{y + 12}" stroke="{colour}" '
            f'stroke-dasharray="2 2"/><text x="{x + 5}" y="{y + 5}" font-size="7" '
            f'text-anchor="middle" fill="{colour}" class="claude-marker-sign">▲</text>'
        )
    return f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>'


def _legend(entries: Sequence[tuple[str, str, str]]) -> tuple[list[str], int]:
    """One entry per mark (name, colour, kind), in rows under the plot; with
    the SVG's height that fits them."""
    parts, x, row = [], float(LEFT), 0
    for name, colour, kind in entries:
        width = 20 + 6.5 * len(name)
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, row = float(LEFT), row + 1
        y = HEIGHT - 16 + row * LEGEND_ROW
        parts.append(
            f'<g class="claude-legend-entry">{_swatch(kind, colour, x, y)}'
            f'<text x="{x + 14}" y="{y + 9}" font-size="10" class="claude-legend-name">'
            f"{escape(name)}</text></g>"
        )
        x += width
    return parts, HEIGHT + row * LEGEND_ROW


def stacked_bars(
    *,
    title: str,
    y_label: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    colours: dict[str, str] | None = None,
    prefix: str = "",
    suffix: str = "",
    whole: bool = False,
) -> SafeString:
    """One bar per label, stacked by series (e.g. cost per day per feature).

    ``fmt`` writes a bar's exact value (its hover text); the axis labels are
    ``prefix``, the round tick value and ``suffix``; ``whole`` keeps ticks
    whole numbers."""
    names = list(series)
    palette = [(colours or {}).get(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]
    totals = [sum(float(series[n][i]) for n in names) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0), whole=whole)
    top = ticks[-1]
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    legend, height = _legend(
        [(name, colour, "box") for name, colour in zip(names, palette, strict=True)]
    )
    parts = _frame(
        title=title, y_label=y_label, ticks=ticks, prefix=prefix, suffix=suffix, height=height
    )
    for i, label in enumerate(labels):
        y = float(TOP + plot_h)
        for name, colour in zip(names, palette, strict=True):
            value = float(series[name][i])
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{LEFT + slot * i + slot * 0.15:.1f}" y="{y:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)} · {escape(name)}: {escape(fmt(value))}</title></rect>"
            )
    parts += _x_labels(labels, slot)
    parts += legend
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label above is escaped


MARKER_COLOUR = "#8e6bb0"
REFERENCE_COLOUR = "#333"


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
    marker_name: str = "model change",
    prefix: str = "",
    suffix: str = "",
) -> SafeString:
    """Lines over the labels; an optional dashed reference (a baseline) and
    vertical markers (model changes) with their descriptions, each kind of
    mark named in the legend. ``y_max`` is the least the axis shows (100 for
    a percentage); ``fmt``, ``prefix`` and ``suffix`` as for ``stacked_bars``."""
    names = list(series)
    values = [v for s in series.values() for v in s if v is not None]
    if reference is not None:
        values.append(reference[1])
    ticks = nice_ticks(y_max if y_max is not None else max(values, default=0))
    top = ticks[-1]
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    palette = [PALETTE[(i + 1) % len(PALETTE)] for i in range(len(names))]
    entries = [(name, colour, "line") for name, colour in zip(names, palette, strict=True)]
    if reference is not None:
        entries.append((reference[0], REFERENCE_COLOUR, "reference"))
    if markers:
        entries.append((marker_name, MARKER_COLOUR, "marker"))
    legend, height = _legend(entries)
    parts = _frame(
        title=title, y_label=y_label, ticks=ticks, prefix=prefix, suffix=suffix, height=height
    )

    def y_of(value: float) -> float:
        return TOP + plot_h - plot_h * min(value, top) / top

    for index, text in markers:
        x = LEFT + slot * (index + 0.5)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
            f'stroke="{MARKER_COLOUR}" stroke-dasharray="2 3" class="claude-marker">'
            f"<title>{escape(text)}</title></line>"
            f'<text x="{x + 2:.1f}" y="{TOP + 10}" font-size="9" fill="{MARKER_COLOUR}" '
            f'class="claude-marker-sign">▲</text>'
        )
    if reference is not None:
        name, value = reference
        y = y_of(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{REFERENCE_COLOUR}" stroke-dasharray="6 4">'
            f"<title>{escape(name)}: {escape(fmt(value))}</title></line>"
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(name)} {escape(fmt(value))}</text>"
        )
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
    parts += legend
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label above is escaped
