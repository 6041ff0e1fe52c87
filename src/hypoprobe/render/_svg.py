"""Inline SVG histograms: bars on a linear or logarithmic axis, with labelled markers.

Plain SVG text, inline in HTML5 (so without a namespace declaration), with classes styled
by the page's own ``<style>``: no scripts, fonts or
anything fetched at view time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "Marker", "histogram"]

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 28, 40


@dataclass(frozen=True)
class Bar:
    """One bin from ``x0`` to ``x1`` whose height is ``value`` (a fraction of requests)."""

    x0: float
    x1: float
    value: float
    css: str = "bar"


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``x`` with a label (the anecdote, the claim, the aggregate)."""

    x: float
    label: str
    css: str


def _scale(lo: float, hi: float, log: bool) -> Callable[[float], float]:
    width = W - LEFT - RIGHT
    if log:
        a, b = math.log10(lo), math.log10(hi)
        return lambda x: LEFT + width * (math.log10(max(x, lo)) - a) / (b - a)
    return lambda x: LEFT + width * (x - lo) / (hi - lo)


def histogram(
    title: str,
    bars: Sequence[Bar],
    markers: Sequence[Marker] = (),
    *,
    x_range: tuple[float, float],
    x_ticks: Sequence[tuple[float, str]],
    x_label: str,
    log_x: bool = False,
    css_class: str = "plot",
) -> str:
    """An SVG bar chart of ``bars`` over ``x_range`` with ``markers`` drawn on top."""
    lo, hi = x_range
    sx = _scale(lo, hi, log_x)
    top = max((b.value for b in bars), default=0.0) or 1.0
    plot_h = H - TOP - BOTTOM

    def sy(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [
        f'<svg class="{css_class}" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="title" x="{LEFT}" y="16">{escape(title)}</text>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{W - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">'
        f"{top * 100:.3g}%</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for b in bars:
        if b.value <= 0:
            continue
        x0, x1 = sx(b.x0), sx(b.x1)
        # Rare is not nothing: a bin with any requests stays visible (the anecdote's tail).
        y = min(sy(b.value), TOP + plot_h - 2)
        out.append(
            f'<rect class="{b.css}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 0.5, 0.8):.1f}" '
            f'height="{TOP + plot_h - y:.1f}"/>'
        )
    for x, text in x_ticks:
        px = sx(x)
        out.append(
            f'<text class="tick" x="{px:.1f}" y="{TOP + plot_h + 14}" '
            f'text-anchor="middle">{escape(text)}</text>'
        )
    out.append(
        f'<text class="label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    for i, m in enumerate(markers):
        px = min(max(sx(m.x), LEFT), W - RIGHT)
        anchor = "end" if px > W * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(
            f'<line class="{m.css}" x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{TOP + plot_h}"/>'
        )
        out.append(
            f'<text class="{m.css}-label" x="{px + dx:.1f}" y="{TOP + 12 + 13 * i}" '
            f'text-anchor="{anchor}">{escape(m.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
