"""Inline SVG plots: histograms on a linear or log axis, and a share-over-time line.

Plain SVG text, inline in HTML5 (so without a namespace declaration), with classes styled
by the page's own ``<style>``: no scripts, fonts or anything fetched at view time.

Hand-written rather than drawn by a plotting library: the few plot kinds the report needs
fit in this module, stay styleable by the page's CSS and selectable as text, and the HTML
format needs no extra dependency (matplotlib would bring numpy and a font cache, and its
SVG draws text as paths unless told otherwise).

What makes a plot readable here: axes with ticks at 1-2-5 steps and labels on both axes;
marker labels in their own rows above the bars, never over them; a marker whose value is
off the axis is drawn at the edge as an arrow with its value; the confidence interval is a
band; a bin with any requests stays visible, and a tiny one says its value.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "Band",
    "Bar",
    "Marker",
    "Point",
    "Series",
    "histogram",
    "linear_ticks",
    "log_ticks",
    "time_ticks",
    "timeline",
    "y_ticks",
]

W = 600
#: Height of the plotting area itself; the title and marker rows come on top of it.
PLOT_H = 170
LEFT, RIGHT, BOTTOM = 56, 20, 44
TITLE_H, ROW_H = 24, 14
#: A bar under this fraction of the tallest one is labelled with its value...
TINY = 0.04
#: ...unless another label is closer than this (px), and at most NOTES labels per plot.
NOTE_GAP, NOTES = 44, 6


@dataclass(frozen=True)
class Bar:
    """One bin from ``x0`` to ``x1`` whose height is ``value`` (a fraction of requests)."""

    x0: float
    x1: float
    value: float
    css: str = "bar"


@dataclass(frozen=True)
class Series:
    """Bars drawn together under one legend entry (before and after, overlaid)."""

    label: str
    bars: Sequence[Bar]
    css: str


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``x`` with a label (the anecdote, the claim, the aggregate)."""

    x: float
    label: str
    css: str


@dataclass(frozen=True)
class Band:
    """A shaded range of the x axis (a confidence interval)."""

    x0: float
    x1: float
    label: str
    css: str = "band"


@dataclass(frozen=True)
class Point:
    """One interval of a timeline: its end time, the share and its interval (or None)."""

    t: float
    y: float | None
    low: float | None = None
    high: float | None = None


def _step(span: float, target: int) -> float:
    """The 1-2-5 step that cuts ``span`` into about ``target`` parts."""
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw * 0.999:
            return m * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def y_ticks(tallest: float, target: int = 4) -> list[float]:
    """Ticks from 0 to the first 1-2-5 step at or above ``tallest`` (which then fits).

    Example: ``y_ticks(0.27) == [0.0, 0.1, 0.2, 0.3]``
    """
    top = tallest if tallest > 0 else 1.0
    step = _step(top, target)
    return [round(k * step, 12) for k in range(math.ceil(top / step - 1e-9) + 1)]


def linear_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Ticks at a 1-2-5 step covering ``lo``..``hi``: ``(0, 0.244) -> 0, 0.05, ..., 0.2``.

    Example: ``linear_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]``
    """
    if not hi > lo:
        return [lo]
    step = _step(hi - lo, target)
    # Whole multiples of the step, rounded to the step's own decimals (0.30000000000000004
    # is 0.3): a tick is k * step for integer k.
    decimals = max(0, 1 - math.floor(math.log10(step)))
    first, last = math.ceil(lo / step - 1e-6), math.floor(hi / step + 1e-6)
    return [round(k * step, decimals) for k in range(first, last + 1)]


def log_ticks(lo: float, hi: float, most: int = 9) -> list[float]:
    """Ticks at 1, 2 and 5 of each decade within ``lo``..``hi`` (1 only, when too many).

    Example: ``log_ticks(0.0008, 0.03) == [0.001, 0.002, 0.005, 0.01, 0.02]``
    """
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        ticks = [
            m * 10.0**e for e in decades for m in mantissas if lo <= m * 10.0**e <= hi * 1.0001
        ]
        if len(ticks) <= most:
            return ticks
    return ticks


_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def time_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Unix times at a round step (seconds, minutes, hours, days) within ``lo``..``hi``."""
    span = max(hi - lo, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= target), 0)
    if not step:
        step = 86400 * max(1, math.ceil(span / 86400 / target))
    first = math.ceil(lo / step) * step
    return [float(t) for t in range(int(first), int(hi) + 1, int(step))]


def clock(t: float, span: float) -> str:
    """A UTC time of day, with seconds when the axis spans less than ten minutes."""
    stamp = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    if span > 2 * 86400:
        return stamp.strftime("%m-%d %H:%M")
    return stamp.strftime("%H:%M:%S" if span < 600 else "%H:%M")


def _scale(lo: float, hi: float, log: bool) -> Callable[[float], float]:
    width = W - LEFT - RIGHT
    if log:
        a, b = math.log10(lo), math.log10(hi)
        return lambda x: LEFT + width * (math.log10(max(x, lo * 1e-3)) - a) / (b - a)
    return lambda x: LEFT + width * (x - lo) / (hi - lo)


#: Characters of a title that fit the plot's width at its font size; longer ones are cut.
TITLE_CHARS = 84


def _frame(title: str, css_class: str, rows: int) -> tuple[list[str], float, int]:
    """The opening of a plot: its top (below title and marker rows) and total height."""
    top = TITLE_H + ROW_H * rows + 6
    height = int(top + PLOT_H + BOTTOM)
    shown = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "\u2026"
    out = [
        f'<svg class="{escape(css_class)}" viewBox="0 0 {W} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="title" x="10" y="16">{escape(shown)}</text>',
    ]
    return out, top, height


def _axes(
    out: list[str],
    *,
    top: float,
    x_ticks: Sequence[tuple[float, str]],
    sx: Callable[[float], float],
    y_at: Sequence[float],
    sy: Callable[[float], float],
    x_label: str,
    y_label: str,
    height: int,
) -> None:
    """The grid, both axes with their ticks and labels; ``y_at``: shares (from :func:`y_ticks`),
    labelled as percentages with the decimals their step needs."""
    bottom = top + PLOT_H
    y_step = y_at[1] - y_at[0] if len(y_at) > 1 else y_at[-1]
    for y in y_at:
        text = _pct_tick(y, y_step)
        py = sy(y)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}"/>')
        out.append(
            f'<text class="tick y-tick" x="{LEFT - 5}" y="{py + 4:.1f}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    out.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{W - RIGHT}" y2="{bottom}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}"/>')
    for x, text in x_ticks:
        px = sx(x)
        out.append(
            f'<line class="axis" x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}"/>'
        )
        # A label at the right edge ends there, so it is not cut off by the plot's box.
        anchor, tx = ("end", W - 2.0) if px + 3.5 * len(text) > W - 2 else ("middle", px)
        out.append(
            f'<text class="tick x-tick" x="{tx:.1f}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<text class="label x-label" x="{(LEFT + W - RIGHT) / 2}" y="{height - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    mid = top + PLOT_H / 2
    out.append(
        f'<text class="label y-label" x="14" y="{mid:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid:.1f})">{escape(y_label)}</text>'
    )


def _markers(
    out: list[str],
    *,
    markers: Sequence[Marker],
    sx: Callable[[float], float],
    inside: Callable[[float], int],
    top: float,
    skip_rows: int = 0,
) -> None:
    """Each marker's line through the plot, its label in a row of its own above it.

    A marker off the axis (``inside`` says -1 left, 1 right) is drawn at that edge as an
    arrow pointing the way, with its value: the reader sees it is beyond the scale.
    """
    bottom = top + PLOT_H
    for i, m in enumerate(markers):
        y = TITLE_H + ROW_H * (i + skip_rows) + 10
        side = inside(m.x)
        px: float
        tx: float
        if side:
            px = LEFT if side < 0 else W - RIGHT
            tip = px + 8 * side
            label = f"{m.label} (off the axis)"
            anchor = "start" if side < 0 else "end"
            tx = px + 10 if side < 0 else px - 10
            out.append(f'<g class="marker clipped {escape(m.css)}-marker">')
            out.append(
                f'<line class="{escape(m.css)} clipped-line" x1="{px:.1f}" y1="{y + 2:.1f}" '
                f'x2="{px:.1f}" y2="{bottom}"/>'
            )
            out.append(
                f'<polygon class="{escape(m.css)}-arrow arrow" points="{px:.1f},{y - 4:.1f} '
                f'{tip:.1f},{y:.1f} {px:.1f},{y + 4:.1f}"/>'
            )
        else:
            px = sx(m.x)
            label = m.label
            right = px > LEFT + (W - LEFT - RIGHT) * 0.6
            anchor = "end" if right else "start"
            tx = px - 4 if right else px + 4
            out.append(f'<g class="marker {escape(m.css)}-marker">')
            out.append(
                f'<line class="{escape(m.css)}" x1="{px:.1f}" y1="{y + 2:.1f}" x2="{px:.1f}" '
                f'y2="{bottom}"/>'
            )
        out.append(
            f'<text class="{escape(m.css)}-label marker-label" x="{tx:.1f}" y="{y + 4:.1f}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
        out.append("</g>")


def histogram(
    title: str,
    series: Sequence[Bar] | Sequence[Series],
    markers: Sequence[Marker] = (),
    *,
    x_range: tuple[float, float],
    x_label: str,
    x_format: Callable[[float], str],
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_label: str = "requests",
    bands: Sequence[Band] = (),
    log_x: bool = False,
    css_class: str = "plot",
) -> str:
    """An SVG bar chart over ``x_range``: bars (or overlaid series), bands and markers.

    Heights are fractions of requests, labelled as percentages on the y axis. Without
    ``x_ticks`` the x axis gets 1-2-5 ticks (per decade on a log axis) formatted by
    ``x_format``.

    Example::

        svg = histogram("Latency", [Bar(0.001, 0.002, 0.5)], x_range=(5e-4, 0.01),
                        x_label="seconds", x_format=seconds, log_x=True)
    """
    groups: list[Series] = [s if isinstance(s, Series) else Series("", [s], s.css) for s in series]
    if groups and all(not g.label for g in groups):
        groups = [Series("", [b for g in groups for b in g.bars], "bar")]
    lo, hi = x_range
    sx = _scale(lo, hi, log_x)
    labelled = [g for g in groups if g.label]
    legend_rows = 1 if labelled else 0
    out, top, height = _frame(title, css_class, len(markers) + legend_rows)
    bottom = top + PLOT_H
    tallest = max((b.value for g in groups for b in g.bars), default=0.0)
    y_ticks_at = y_ticks(tallest)
    y_top = y_ticks_at[-1]

    def sy(v: float) -> float:
        return bottom - PLOT_H * v / y_top

    for band in bands:
        x0, x1 = sx(max(band.x0, lo)), sx(min(band.x1, hi))
        out.append(
            f'<rect class="{escape(band.css)}" x="{x0:.1f}" y="{top}" '
            f'width="{max(x1 - x0, 1.5):.1f}" height="{PLOT_H}"><title>{escape(band.label)}'
            "</title></rect>"
        )
    if x_ticks is None:
        at = log_ticks(lo, hi) if log_x else linear_ticks(lo, hi)
        x_ticks = [(x, x_format(x)) for x in at]
    _axes(
        out,
        top=top,
        x_ticks=x_ticks,
        sx=sx,
        y_at=y_ticks_at,
        sy=sy,
        x_label=x_label,
        y_label=y_label,
        height=height,
    )
    last_note, notes = -1e9, 0
    labels: list[str] = []
    for g in groups:
        for b in g.bars:
            if b.value <= 0:
                continue
            x0, x1 = sx(b.x0), sx(b.x1)
            # Rare is not nothing: a bin with any requests stays visible (the anecdote's tail).
            y = min(sy(b.value), bottom - 2.5)
            css = g.css if g.label and b.css == "bar" else b.css  # a series' own colour
            out.append(
                f'<rect class="{escape(css)}" x="{x0:.1f}" y="{y:.1f}" '
                f'width="{max(x1 - x0 - 0.5, 1.2):.1f}" height="{bottom - y:.1f}">'
                f"<title>{escape(_pct_tick(b.value, b.value / 10))} of requests</title></rect>"
            )
            if b.value < tallest * TINY and (x0 + x1) / 2 - last_note > NOTE_GAP and notes < NOTES:
                last_note, notes = (x0 + x1) / 2, notes + 1
                # Drawn after every bar, so no later bar hides part of it.
                labels.append(
                    f'<text class="tick bar-note" x="{max(last_note, LEFT + 14):.1f}" '
                    f'y="{y - 3:.1f}" text-anchor="middle">'
                    f"{escape(_pct_tick(b.value, b.value / 10))}</text>"
                )
    out += labels
    for i, g in enumerate(labelled):
        lx, ly = LEFT + 10 + 90 * i, TITLE_H
        out.append(
            f'<rect class="{escape(g.css)} legend" x="{lx}" y="{ly - 1}" width="10" '
            f'height="10"/><text class="tick legend-label" x="{lx + 14}" y="{ly + 8}">'
            f"{escape(g.label)}</text>"
        )

    def inside(x: float) -> int:
        if x < lo or (log_x and x <= 0):
            return -1
        return 1 if x > hi else 0

    _markers(out, markers=markers, sx=sx, inside=inside, top=top, skip_rows=legend_rows)
    out.append("</svg>")
    return "\n".join(out)


def _pct_tick(y: float, step: float) -> str:
    """A fraction as a percentage with as many decimals as the step needs."""
    if y == 0:
        return "0%"
    decimals = max(0, -math.floor(math.log10(step * 100) + 1e-9)) if step > 0 else 0
    return f"{y * 100:.{min(decimals, 3)}f}%"


def timeline(
    title: str,
    points: Sequence[Point],
    *,
    claim: float | None,
    claim_label: str,
    y_label: str,
    css_class: str = "plot timeline",
) -> str:
    """A share over time: one dot per interval, its 95% interval as a band, the claim dashed.

    Example::

        svg = timeline("Share over time", [Point(1.7e9, 0.4, 0.3, 0.5)], claim=0.5,
                       claim_label="claim 50%", y_label="share")
    """
    out, top, height = _frame(title, css_class, 0)
    bottom = top + PLOT_H
    times = [p.t for p in points]
    lo, hi = (min(times), max(times)) if times else (0.0, 1.0)
    if hi - lo < 1:
        lo, hi = lo - 30, hi + 30
    pad = (hi - lo) * 0.04
    lo, hi = lo - pad, hi + pad
    sx = _scale(lo, hi, False)
    values = [v for p in points for v in (p.y, p.high) if v is not None]
    y_ticks_at = y_ticks(min(1.0, max([*values, claim or 0.0, 0.01])))
    y_top = y_ticks_at[-1]

    def sy(v: float) -> float:
        return bottom - PLOT_H * min(v, y_top) / y_top

    span = hi - lo
    x_ticks = [(t, clock(t, span)) for t in time_ticks(lo, hi)]
    _axes(
        out,
        top=top,
        x_ticks=x_ticks,
        sx=sx,
        y_at=y_ticks_at,
        sy=sy,
        x_label="interval end (UTC)",
        y_label=y_label,
        height=height,
    )
    banded = [p for p in points if p.low is not None and p.high is not None]
    if len(banded) > 1:
        upper = " ".join(f"{sx(p.t):.1f},{sy(p.high or 0):.1f}" for p in banded)
        lower = " ".join(f"{sx(p.t):.1f},{sy(p.low or 0):.1f}" for p in reversed(banded))
        out.append(f'<polygon class="band" points="{upper} {lower}"><title>95% interval</title>')
        out.append("</polygon>")
    elif banded:
        p = banded[0]
        out.append(
            f'<line class="band-line" x1="{sx(p.t):.1f}" y1="{sy(p.low or 0):.1f}" '
            f'x2="{sx(p.t):.1f}" y2="{sy(p.high or 0):.1f}"/>'
        )
    known = [p for p in points if p.y is not None]
    if len(known) > 1:
        path = " ".join(f"{sx(p.t):.1f},{sy(p.y or 0):.1f}" for p in known)
        out.append(f'<polyline class="share-line" points="{path}"/>')
    for p in known:
        out.append(
            f'<circle class="share-dot" cx="{sx(p.t):.1f}" cy="{sy(p.y or 0):.1f}" r="3">'
            f"<title>{escape(_pct_tick(p.y or 0, 0.001))} at {clock(p.t, 0)} UTC</title></circle>"
        )
    if claim is not None:
        py = sy(claim)
        out.append(
            f'<line class="claim" x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}"/>'
        )
        out.append(
            f'<text class="claim-label marker-label" x="{W - RIGHT - 4}" y="{py - 4:.1f}" '
            f'text-anchor="end">{escape(claim_label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
