"""Line charts of logged metrics as inline SVG, for ``disgen report``: no JavaScript, no external
files, crisp at any zoom, and each point carries its exact value as a hover title."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from disgen.files import visible


def escape(text: str) -> str:
    """Text from a run directory as HTML: escaped, and control characters (a NUL in a class name)
    shown as ``\\xNN`` rather than written into the page."""
    return html.escape(visible(str(text)))


# matplotlib's tab10, so a report's charts match the run's own matplotlib pictures.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 340, 210  # px of one chart
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 26, 38  # px of margin around the plot area (tick labels, title)


@dataclass
class Series:
    """One line: ``ys[i]`` at epoch ``xs[i]``; None, NaN and inf leave a gap."""

    label: str
    xs: list[float]
    ys: list[float | None]


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (steps of 1, 2 or 5 x 10^k) covering [lo, hi]."""
    span = hi - lo
    raw = span / max(count, 1)
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    digits = max(0, 1 - math.floor(math.log10(step)))  # round away 0.1 + 0.2 = 0.30000000000000004
    return [round(i * step, digits) + 0.0 for i in range(first, last + 1)]


def padded_range(values: list[float], pad_fraction: float = 0.05) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:  # a single value or a flat line: centre it
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * pad_fraction
    return lo - pad, hi + pad


def fmt(v: float) -> str:
    return f"{v:.4g}"


def segments(series: Series) -> list[list[tuple[float, float]]]:
    """Runs of consecutive finite points (a non-finite value breaks the line)."""
    out: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(series.xs, series.ys):
        if finite(y):
            out[-1].append((x, y))
        elif out[-1]:
            out.append([])
    return [s for s in out if s]


def line_chart(
    title: str, series: list[Series], colors: list[str] | None = None, x_label: str = "epoch", log: bool = False
) -> str:
    """An ``<svg>`` line chart of ``series`` (one colour each) with axes, ticks and a title; ``log``:
    a log scale on y (positive values only), its ticks labelled with the values."""
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    scale = (lambda y: math.log10(y)) if log else (lambda y: y)
    xs = [x for s in series for x, y in zip(s.xs, s.ys) if finite(y)]
    ys = [scale(y) for s in series for y in s.ys if finite(y)]
    parts = [
        f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text class="chart-title" x="{WIDTH / 2}" y="16" text-anchor="middle">'
        f"{escape(title)}{' (log scale)' if log else ''}</text>",
    ]
    if not ys:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no finite values</text>')
        return "".join(parts) + "</svg>"
    (x0, x1), (y0, y1) = padded_range(xs, 0.03), padded_range(ys)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return round(LEFT + (x - x0) / (x1 - x0) * pw, 2)

    def py(y: float, scaled: bool = False) -> float:
        return round(TOP + (1 - ((y if scaled else scale(y)) - y0) / (y1 - y0)) * ph, 2)

    parts.append(f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>')
    for t in nice_ticks(y0, y1):
        shown = fmt(10**t) if log else fmt(t)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + pw}" y1="{py(t, True)}" y2="{py(t, True)}"/>'
            f'<text class="tick" x="{LEFT - 5}" y="{py(t, True) + 4}" text-anchor="end">{shown}</text>'
        )
    for t in nice_ticks(x0, x1, 6):
        if float(t).is_integer():  # epochs are whole numbers
            parts.append(f'<text class="tick" x="{px(t)}" y="{TOP + ph + 15}" text-anchor="middle">{int(t)}</text>')
    parts.append(
        f'<text class="axis-label" x="{LEFT + pw / 2}" y="{HEIGHT - 4}" text-anchor="middle">{escape(x_label)}</text>'
    )
    for s, color in zip(series, colors):
        for seg in segments(s):
            points = " ".join(f"{px(x)},{py(y)}" for x, y in seg)
            parts.append(f'<polyline class="line" points="{points}" stroke="{color}"/>')
            parts.extend(
                f'<circle cx="{px(x)}" cy="{py(y)}" r="2.5" fill="{color}">'
                f"<title>{escape(s.label)}, {escape(x_label)} {fmt(x)}: {y!r}</title></circle>"
                for x, y in seg
            )
    return "".join(parts) + "</svg>"


def legend(labels: list[str], colors: list[str] | None = None) -> str:
    """The HTML legend of a chart: a coloured swatch and the label of each series."""
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c in zip(labels, colors))
        + "</div>"
    )
