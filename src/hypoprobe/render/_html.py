"""One self-contained HTML page: the verdicts, their sentences and inline SVG plots.

Nothing is fetched at view time: styles are inline, plots are inline SVG, there are no
scripts, fonts or images from elsewhere. Plots per verdict: the per-request share
distribution with the anecdote, the claim (``min_share``) and the aggregate share marked;
the endpoint latency distribution, slow requests in their own colour; calls per request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..analysis import Comparison, ComparisonReport, Report, Verdict
from ..analysis._impact import sentence as customers_sentence
from ..analysis._text import pct, pct_claim, seconds
from ..snapshot import Histogram
from ._common import (
    COMPARE_HEADERS,
    HEADERS,
    compare_rows,
    row,
    self_cost_lines,
    slowest_lines,
    when,
)
from ._svg import Bar, Marker, histogram

__all__ = ["comparison", "report"]

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em;
       color: #1d2327; padding: 0 1em; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left;
         white-space: nowrap; }
th { background: #f3f4f6; }
.CONFIRMED { color: #1a7f37; font-weight: bold; }
.DISPROVED { color: #b42318; font-weight: bold; }
.INCONCLUSIVE { color: #9a6700; font-weight: bold; }
.UNMEASURED { color: #6e40c9; font-weight: bold; }
.warning { color: #9a6700; }
section { border-top: 2px solid #eee; margin-top: 2em; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
svg.plot { width: 640px; max-width: 100%; height: auto; background: #fafafa; }
svg .title { font-size: 13px; font-weight: bold; fill: #1d2327; }
svg .tick, svg .label { font-size: 11px; fill: #555; }
svg .axis { stroke: #888; }
svg .bar { fill: #5b8def; }
svg .bar-slow { fill: #e8590c; }
svg .anecdote { stroke: #b42318; stroke-width: 2; }
svg .anecdote-label { font-size: 11px; fill: #b42318; }
svg .claim { stroke: #1d2327; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .claim-label { font-size: 11px; fill: #1d2327; }
svg .aggregate { stroke: #1a7f37; stroke-width: 2; }
svg .aggregate-label { font-size: 11px; fill: #1a7f37; }
svg .threshold { stroke: #e8590c; stroke-width: 1.5; stroke-dasharray: 2 2; }
svg .threshold-label { font-size: 11px; fill: #e8590c; }
.meaning { font-size: 16px; }
"""

#: Width of a bin of the share plot: 2 percentage points.
SHARE_BIN = 0.02


def _page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], verdict_col: int | None) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"]
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            css = f' class="{escape(c)}"' if i == verdict_col else ""
            cells.append(f"<td{css}>{escape(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def share_plot(v: Verdict) -> str:
    """Per-request share distribution, with the anecdote, the claim and the aggregate."""
    h = v.share_histogram
    bins = round(1 / SHARE_BIN)
    counts = [0.0] * bins
    n = h.count if h is not None else 0
    if h is not None and n:
        for i, c in enumerate(h.counts):
            if not c:
                continue
            upper = h.bounds[i] if i < len(h.bounds) else 1.0
            counts[min(bins - 1, max(0, math.ceil(upper / SHARE_BIN) - 1))] += c
    bars = [
        Bar(i * SHARE_BIN, (i + 1) * SHARE_BIN, c / n if n else 0.0) for i, c in enumerate(counts)
    ]
    markers = [Marker(v.min_share, f"claim {pct_claim(v.min_share)}", "claim")]
    if v.aggregate_share is not None:
        markers.append(
            Marker(v.aggregate_share, f"aggregate {pct(v.aggregate_share)}", "aggregate")
        )
    if v.anecdote_share is not None:
        top = f", top {pct(v.anecdote_percentile)}" if v.anecdote_percentile is not None else ""
        markers.append(
            Marker(v.anecdote_share, f"anecdote {pct(v.anecdote_share)}{top}", "anecdote")
        )
    return histogram(
        f"Share of each request's latency in the probe ({v.hypothesis})",
        bars,
        markers,
        x_range=(0.0, 1.0),
        x_ticks=[(x / 10, f"{x * 10}%") for x in range(0, 11, 2)],
        x_label="probe time / endpoint time, per request",
        css_class="plot share",
    )


def _latency_bars(h: Histogram | None, slow_threshold: float | None) -> list[Bar]:
    """Latency bars in quarter-octaves (the fine buckets regrouped to be readable)."""
    if h is None or not h.count:
        return []
    groups: dict[int, int] = {}
    for i, c in enumerate(h.counts):
        if c:
            key = math.ceil(math.log2(h.bounds[min(i, len(h.bounds) - 1)]) * 4)
            groups[key] = groups.get(key, 0) + c
    bars = []
    for k in sorted(groups):
        x0, x1 = 2 ** ((k - 1) / 4), 2 ** (k / 4)
        slow = slow_threshold is not None and x0 >= slow_threshold * 0.999
        bars.append(Bar(x0, x1, groups[k] / h.count, "bar-slow" if slow else "bar"))
    return bars


def _latency_range(bars: list[Bar]) -> tuple[float, float]:
    lo = min([1e-3, *(b.x0 for b in bars)])
    hi = max([lo * 10, *(b.x1 * 1.2 for b in bars)])
    return lo, hi


def _latency_svg(
    title: str, bars: list[Bar], markers: list[Marker], x_range: tuple[float, float], css: str
) -> str:
    lo, hi = x_range
    ticks = [
        (10.0**e, seconds(10.0**e))
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        if lo <= 10.0**e <= hi
    ]
    return histogram(
        title,
        bars,
        markers,
        x_range=x_range,
        x_ticks=ticks,
        x_label="endpoint time per request (log scale)",
        log_x=True,
        css_class=css,
    )


def latency_plot(v: Verdict) -> str:
    """Endpoint latency per request on a log axis; slow requests in their own colour."""
    bars = _latency_bars(v.endpoint_histogram, v.slow_threshold)
    markers = []
    if v.slow_threshold is not None:
        markers.append(Marker(v.slow_threshold, f"slow > {seconds(v.slow_threshold)}", "threshold"))
    if v.anecdote_endpoint_seconds is not None:
        seen = v.anecdote_endpoint_seconds
        markers.append(Marker(seen, f"anecdote {seconds(seen)}", "anecdote"))
    title = f"Latency of {v.endpoint}" + (
        " (slow requests in orange)" if v.slow_threshold is not None else ""
    )
    return _latency_svg(title, bars, markers, _latency_range(bars), "plot latency")


def comparison_plots(c: Comparison) -> list[str]:
    """Endpoint latency before and after, on the same axis, with each mean marked."""
    before = _latency_bars(c.endpoint_histogram_before, None)
    after = _latency_bars(c.endpoint_histogram_after, None)
    x_range = _latency_range(before + after)
    out = []
    for label, bars, mean in (
        ("before", before, c.endpoint_mean_before),
        ("after", after, c.endpoint_mean_after),
    ):
        markers = [] if mean is None else [Marker(mean, f"mean {seconds(mean)}", "aggregate")]
        title = f"Latency of {c.endpoint}, {label}"
        out.append(_latency_svg(title, bars, markers, x_range, f"plot latency-{label}"))
    return out


def calls_plot(v: Verdict) -> str:
    """Calls of the probe per request: one bar per calls bucket."""
    h: Histogram | None = v.calls_histogram
    bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    if h is not None and h.count:
        n = h.count
        last = max(i for i, c in enumerate(h.counts) if c)
        shown = min(len(h.bounds) - 1, max(last, 5))
        for i in range(shown + 1):
            bars.append(Bar(i, i + 1, h.counts[i] / n))
            label = f"{h.bounds[i]:g}" if i < len(h.bounds) else f">{h.bounds[-1]:g}"
            if i == 0 or i % max(1, (shown + 1) // 10) == 0 or i == shown:
                ticks.append((i + 0.5, label))
        width = shown + 1
    else:
        width = 1
    return histogram(
        f"Calls per request ({', '.join(v.probes) or v.hypothesis})",
        bars,
        (),
        x_range=(0.0, float(width)),
        x_ticks=ticks,
        x_label="calls of the probe in one request (bucket upper bound)",
        css_class="plot calls",
    )


def report(rep: Report) -> str:
    """The verdicts as one self-contained HTML page with inline SVG plots."""
    body = [
        "<h1>hypoprobe report</h1>",
        f"<p>Source: {escape(rep.source)}, {escape(when(rep.created_at))}.</p>",
        _table(HEADERS, [row(v) for v in rep.verdicts], HEADERS.index("verdict")),
    ]
    for v in rep.verdicts:
        body += [
            "<section>",
            f'<h2>{escape(v.hypothesis)} · {escape(v.endpoint)}: <span class="{v.verdict}">'
            f"{v.verdict}</span></h2>",
            f"<p><em>Claim:</em> {escape(v.claim)} (needs {pct_claim(v.min_share)}).</p>",
            f'<p class="meaning">{escape(v.meaning)}</p>',
            *(f"<p>{escape(who)}</p>" for who in [customers_sentence(v.customers)] if who),
            *(f'<p class="self-cost">{escape(line)}</p>' for line in self_cost_lines(v)),
            *(f'<p class="warning">Warning: {escape(w)}</p>' for w in v.warnings),
            *(
                ["<ul>", *(f"<li>{escape(line)}</li>" for line in slowest_lines(v)), "</ul>"]
                if v.slowest_requests
                else []
            ),
            '<div class="plots">',
            share_plot(v),
            latency_plot(v),
            calls_plot(v),
            "</div>",
            "</section>",
        ]
    for note in rep.notes:
        body.append(f"<p><em>Note:</em> {escape(note)}</p>")
    return _page("hypoprobe report", body)


def comparison(rep: ComparisonReport) -> str:
    """Before/after as one self-contained HTML page."""
    body = [
        "<h1>hypoprobe compare</h1>",
        f"<p>Before: {escape(rep.before_source)}<br>After: {escape(rep.after_source)}</p>",
    ]
    for c in rep.comparisons:
        body += [
            "<section>",
            f"<h2>{escape(c.hypothesis)} · {escape(c.endpoint)}</h2>",
            f'<p class="meaning">{escape(c.meaning)}</p>',
            _table(COMPARE_HEADERS, compare_rows(c), None),
            '<div class="plots">',
            *comparison_plots(c),
            "</div>",
            "</section>",
        ]
    return _page("hypoprobe compare", body)
