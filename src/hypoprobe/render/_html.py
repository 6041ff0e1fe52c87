"""One self-contained HTML page: the verdicts, their sentences and inline SVG plots.

Nothing is fetched at view time: styles are inline, plots are inline SVG, there are no
scripts, fonts or images from elsewhere. Plots per verdict: the per-request share
distribution with the anecdote, the claim (``min_share``) and the aggregate share with its
95% interval as a band; the endpoint latency distribution, slow requests in their own
colour; calls per request; and, when the source was one process at several times, the
share over time. The comparison overlays before and after on one scale, one latency plot
per endpoint.

The page is two columns of plots on a wide screen, one on a narrow one, and its summary
table fits a 1280 px window (tests/test_render_browser.py checks both in Chromium).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..analysis import Comparison, ComparisonReport, Report, Verdict
from ..analysis._impact import sentence as customers_sentence
from ..analysis._text import pct, pct_claim, pct_range, seconds
from ..model import Histogram
from ._common import (
    COMPACT_LEAD,
    COMPARE_HEADERS,
    NO_TRACE_HINT,
    SHOWN_PER_KIND,
    compact_lead,
    compare_rows,
    self_cost_lines,
    slowest_lines,
    when,
)
from ._svg import Band, Bar, Marker, Point, Series, histogram, timeline

__all__ = ["comparison", "report"]

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px;
       color: #1d2327; padding: 0 1em; }
h1 { font-size: 24px; margin: 0 0 .3em; }
h2 { font-size: 19px; margin: .8em 0 .4em; }
h3 { font-size: 16px; margin: .8em 0 .3em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left;
         vertical-align: top; }
td { white-space: nowrap; }
td.endpoint { white-space: normal; min-width: 10em; }
th { background: #f3f4f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.CONFIRMED { color: #1a7f37; font-weight: bold; }
.DISPROVED { color: #b42318; font-weight: bold; }
.INCONCLUSIVE { color: #9a6700; font-weight: bold; }
.UNMEASURED { color: #6e40c9; font-weight: bold; }
.warning { color: #9a6700; }
section { border-top: 2px solid #eee; margin-top: 1.5em; }
.plots { display: grid; gap: 1em;
         grid-template-columns: repeat(auto-fill, minmax(min(100%, 480px), 1fr)); }
svg.plot { display: block; width: 100%; height: auto; background: #fafafa;
           border-radius: 4px; }
svg .title { font-size: 13px; font-weight: bold; fill: #1d2327; }
svg .tick, svg .label { font-size: 11px; fill: #444; }
svg .label { fill: #222; }
svg .axis { stroke: #777; }
svg .grid { stroke: #e3e3e3; }
svg .bar { fill: #5b8def; }
svg .bar-slow { fill: #e8590c; }
svg .bar-before { fill: #8c959f; fill-opacity: .55; }
svg .bar-after { fill: #2f6fe4; fill-opacity: .55; }
svg .bar-note { font-size: 10px; fill: #1d2327; }
svg .band { fill: #1a7f37; fill-opacity: .13; }
svg .band-line { stroke: #1a7f37; stroke-opacity: .4; stroke-width: 6; }
svg .marker-label, svg .bar-note { paint-order: stroke; stroke: #fafafa; stroke-width: 3px;
                                  stroke-linejoin: round; }
svg .marker-label { font-size: 11px; }
svg .anecdote { stroke: #b42318; stroke-width: 2; }
svg .anecdote-label, svg .anecdote-arrow { fill: #b42318; }
svg .claim { stroke: #1d2327; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .claim-label, svg .claim-arrow { fill: #1d2327; }
svg .aggregate { stroke: #1a7f37; stroke-width: 2; }
svg .aggregate-label, svg .aggregate-arrow { fill: #1a7f37; }
svg .mean-before { stroke: #57606a; stroke-width: 2; }
svg .mean-before-label, svg .mean-before-arrow { fill: #57606a; }
svg .mean-after { stroke: #2f6fe4; stroke-width: 2; }
svg .mean-after-label, svg .mean-after-arrow { fill: #2f6fe4; }
svg .threshold { stroke: #e8590c; stroke-width: 1.5; stroke-dasharray: 2 2; }
svg .threshold-label, svg .threshold-arrow { fill: #e8590c; }
svg .clipped-line { stroke-dasharray: 1 3; }
svg .share-line { fill: none; stroke: #1a7f37; stroke-width: 2; }
svg .share-dot { fill: #1a7f37; }
.meaning { font-size: 16px; max-width: 60em; }
ul.requests { font-size: 14px; }
.hint { color: #57606a; font-size: 13px; }
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


#: The summary table's columns (the verdict's own CSS class, numbers right-aligned).
HEADERS = (
    *COMPACT_LEAD,
    "anecdote (top)",
    "slow share",
    "p50 / p95 / p99",
    "probe p95",
    "calls/req",
    "saving/req",
)
_TEXT_COLUMNS = {"hypothesis", "endpoint", "verdict"}


def _latencies(*values: float | None) -> str:
    """``2.02 / 4.49 / 6.35 ms``: the unit once when the values share it (the table fits)."""
    texts = [seconds(x) for x in values]
    units = {t.rpartition(" ")[2] for t in texts}
    if len(units) == 1 and all(" " in t for t in texts):
        return " / ".join(t.rpartition(" ")[0] for t in texts) + " " + units.pop()
    return " / ".join(texts)


def _row(v: Verdict) -> tuple[str, ...]:
    share = pct(v.aggregate_share)
    if v.ci_low is not None:
        share += f" ({pct_range(v.ci_low, v.ci_high)})"
    calls = "-"
    if v.calls_per_request_mean is not None:
        p95 = "-" if v.calls_per_request_p95 is None else f"{v.calls_per_request_p95:g}"
        calls = f"{v.calls_per_request_mean:.1f} (p95 {p95})"
    anecdote = pct(v.anecdote_share)
    if v.anecdote_percentile is not None:
        anecdote += f" (top {pct(v.anecdote_percentile)})"
    return (
        *compact_lead(v, share),
        anecdote,
        pct(v.slow_share),
        _latencies(v.endpoint_p50, v.endpoint_p95, v.endpoint_p99),
        seconds(v.probe_p95),
        calls,
        seconds(v.saving_seconds_per_request),
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], verdict_col: int | None) -> str:
    out = [
        '<div class="wide"><table>',
        "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>",
    ]
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            name = headers[i]
            if i == verdict_col:
                css = f' class="{escape(c)}"'
            elif name == "endpoint":
                css = ' class="endpoint"'
            elif verdict_col is not None and name not in _TEXT_COLUMNS:
                css = ' class="num"'
            else:
                css = ""
            # An endpoint breaks after its slashes, not in the middle of a word.
            text = escape(c).replace("/", "/<wbr>") if name == "endpoint" else escape(c)
            cells.append(f"<td{css}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _share_tick(x: float) -> str:
    return f"{x * 100:.0f}%"


def share_plot(v: Verdict) -> str:
    """Per-request share distribution: the anecdote, the claim, the aggregate and its band."""
    h = v.share_histogram
    bins = round(1 / SHARE_BIN)
    counts = [0.0] * bins
    n = h.count if h is not None else 0
    if h is not None and n:
        for i, c in enumerate(h.counts):
            if not c:
                continue
            upper = h.bounds[i] if i < len(h.bounds) else 1.0
            counts[min(bins - 1, max(0, math.ceil(upper / SHARE_BIN - 1e-9) - 1))] += c
    bars = [
        Bar(i * SHARE_BIN, (i + 1) * SHARE_BIN, c / n if n else 0.0) for i, c in enumerate(counts)
    ]
    markers = [Marker(v.min_share, f"claim {pct_claim(v.min_share)}", "claim")]
    bands = []
    if v.aggregate_share is not None:
        interval = ""
        if v.ci_low is not None and v.ci_high is not None:
            interval = f" (95% CI {pct_range(v.ci_low, v.ci_high)})"
            bands.append(Band(v.ci_low, v.ci_high, f"95% interval{interval}"))
        markers.append(
            Marker(v.aggregate_share, f"aggregate {pct(v.aggregate_share)}{interval}", "aggregate")
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
        bands=bands,
        x_range=(0.0, 1.0),
        x_format=_share_tick,
        x_label="probe time / endpoint time, per request",
        y_label="requests",
        css_class="plot share",
    )


def _latency_bars(h: Histogram | None, slow_threshold: float | None, css: str = "bar") -> list[Bar]:
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
        bars.append(Bar(x0, x1, groups[k] / h.count, "bar-slow" if slow else css))
    return bars


def _latency_range(bars: Sequence[Bar], also: Sequence[float] = ()) -> tuple[float, float]:
    """The bars' span widened to whole 1-2-5 steps; ``also`` (a threshold) if it is close.

    A marker far outside (the anecdote's 1.5 s beside 15 ms requests) is not worth
    squashing every bar for: it is drawn clipped, at the edge, with its value.
    """
    if not bars:
        return 1e-3, 1.0
    lo, hi = min(b.x0 for b in bars), max(b.x1 for b in bars)
    for x in also:
        if lo / 4 <= x <= hi * 4:
            lo, hi = min(lo, x), max(hi, x)
    lo, hi = lo * 0.85, hi * 1.15
    if hi / lo < 10:  # at least a decade, centred, so there are ticks to read
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(10), mid * math.sqrt(10)
    return lo, hi


def latency_plot(v: Verdict) -> str:
    """Endpoint latency per request on a log axis; slow requests in their own colour."""
    bars = _latency_bars(v.endpoint_histogram, v.slow_threshold)
    markers = []
    if v.slow_threshold is not None:
        markers.append(Marker(v.slow_threshold, f"slow > {seconds(v.slow_threshold)}", "threshold"))
    if v.anecdote_endpoint_seconds is not None:
        seen = v.anecdote_endpoint_seconds
        markers.append(Marker(seen, f"anecdote {seconds(seen)}", "anecdote"))
    title = f"Latency of {v.endpoint}" + (" (slow in orange)" if v.slow_threshold else "")
    also = [m.x for m in markers]
    return histogram(
        title,
        bars,
        markers,
        x_range=_latency_range(bars, also),
        x_format=seconds,
        x_label="endpoint time per request (log scale)",
        log_x=True,
        css_class="plot latency",
    )


def comparison_plot(c: Comparison) -> str:
    """Endpoint latency before and after, overlaid on one axis, with each mean marked."""
    before = _latency_bars(c.endpoint_histogram_before, None, "bar-before")
    after = _latency_bars(c.endpoint_histogram_after, None, "bar-after")
    markers = []
    for label, mean in (("before", c.endpoint_mean_before), ("after", c.endpoint_mean_after)):
        if mean is not None:
            markers.append(Marker(mean, f"mean {label} {seconds(mean)}", f"mean-{label}"))
    return histogram(
        f"Latency of {c.endpoint}, before and after",
        [Series("before", before, "bar-before"), Series("after", after, "bar-after")],
        markers,
        x_range=_latency_range(before + after),
        x_format=seconds,
        x_label="endpoint time per request (log scale)",
        log_x=True,
        css_class="plot latency-compare",
    )


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
        x_format=str,
        x_label="calls of the probe in one request (bucket upper bound)",
        css_class="plot calls",
    )


def timeline_plot(rep: Report, v: Verdict) -> str | None:
    """The share per interval between the snapshots, when the source had several times."""
    points = [
        Point(p.end, p.share, p.ci_low, p.ci_high)
        for p in rep.timeline
        if p.hypothesis == v.hypothesis and p.endpoint == v.endpoint
    ]
    if not points:
        return None
    return timeline(
        f"Share over time ({v.hypothesis}, {len(points)} intervals)",
        points,
        claim=v.min_share,
        claim_label=f"claim {pct_claim(v.min_share)}",
        y_label="share of latency",
    )


def _requests(v: Verdict) -> list[str]:
    lines = slowest_lines(v, per_kind=SHOWN_PER_KIND)
    hint = lines[-1:] == [NO_TRACE_HINT]
    if hint:
        lines = lines[:-1]
    if not lines:
        return []
    out = ['<ul class="requests">', *(f"<li>{escape(line)}</li>" for line in lines), "</ul>"]
    if hint:
        out.append(f'<p class="hint">{escape(NO_TRACE_HINT)}</p>')
    return out


def report(rep: Report) -> str:
    """The verdicts as one self-contained HTML page with inline SVG plots."""
    body = [
        "<h1>hypoprobe report</h1>",
        f"<p>Source: {escape(rep.source)}, {escape(when(rep.created_at))}.</p>",
        _table(HEADERS, [_row(v) for v in rep.verdicts], HEADERS.index("verdict")),
    ]
    for v in rep.verdicts:
        over_time = timeline_plot(rep, v)
        body += [
            "<section>",
            f'<h2>{escape(v.hypothesis)} · {escape(v.endpoint)}: <span class="{escape(v.verdict)}">'
            f"{escape(v.verdict)}</span></h2>",
            f"<p><em>Claim:</em> {escape(v.claim)} (needs {pct_claim(v.min_share)}).</p>",
            f'<p class="meaning">{escape(v.meaning)}</p>',
            *(f"<p>{escape(who)}</p>" for who in [customers_sentence(v.customers)] if who),
            *(f'<p class="self-cost">{escape(line)}</p>' for line in self_cost_lines(v)),
            *(f'<p class="warning">Warning: {escape(w)}</p>' for w in v.warnings),
            *_requests(v),
            '<div class="plots">',
            share_plot(v),
            latency_plot(v),
            calls_plot(v),
            *([over_time] if over_time else []),
            "</div>",
            "</section>",
        ]
    for note in rep.notes:
        body.append(f"<p><em>Note:</em> {escape(note)}</p>")
    return _page("hypoprobe report", body)


def comparison(rep: ComparisonReport) -> str:
    """Before/after as one self-contained HTML page: one latency plot per endpoint."""
    body = [
        "<h1>hypoprobe compare</h1>",
        f"<p>Before: {escape(rep.before_source)}<br>After: {escape(rep.after_source)}</p>",
    ]
    endpoints: dict[str, list[Comparison]] = {}
    for c in rep.comparisons:
        endpoints.setdefault(c.endpoint, []).append(c)
    for endpoint, group in endpoints.items():
        body += [
            "<section>",
            f"<h2>{escape(endpoint)}</h2>",
            '<div class="plots">',
            comparison_plot(group[0]),
            "<div>",
        ]
        for c in group:
            body += [
                f"<h3>{escape(c.hypothesis)}</h3>",
                f'<p class="meaning">{escape(c.meaning)}</p>',
                _table(COMPARE_HEADERS, compare_rows(c), None),
            ]
        body += ["</div>", "</div>", "</section>"]
    return _page("hypoprobe compare", body)
