"""What every renderer shares: the summary columns, and times shown as text."""

from __future__ import annotations

import datetime as _dt
import math
import re

from ..analysis import MIN_REQUESTS, UNMEASURED, Comparison, Verdict
from ..analysis._text import DASH, MISSING, count, pct, pct_claim, pct_range, seconds

__all__ = [
    "COMPACT_LEAD",
    "COMPARE_HEADERS",
    "HEADERS",
    "NO_TRACE_HINT",
    "SHOWN_PER_KIND",
    "UNSAFE_FOR_TERMINALS",
    "compact_lead",
    "compare_rows",
    "printable",
    "quantile",
    "row",
    "self_cost_lines",
    "slowest_lines",
    "when",
]

#: The last of the single-request lines when none has a trace id.
NO_TRACE_HINT = "(no trace ids: find these in the access log by endpoint, end time and duration)"

#: Single requests shown per kind (highest share, slowest) in every format but JSON.
SHOWN_PER_KIND = 3

#: Characters a terminal acts on or that reorder text: C0 controls but the newline (ESC
#: starts escape sequences, BEL rings), DEL, C1 controls (0x9b is a one-byte CSI), and the
#: bidirectional overrides and isolates. Labels, claims and sources come from the monitored
#: application or a snapshot file, so none of these may reach the reader raw.
UNSAFE_FOR_TERMINALS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """``text`` with every character of :data:`UNSAFE_FOR_TERMINALS` shown as an escape.

    Example: ``printable("a\x1b[2Jb")`` is ``"a\\x1b[2Jb"``.
    """
    return UNSAFE_FOR_TERMINALS.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


HEADERS = (
    "hypothesis",
    "endpoint",
    "verdict",
    "share",
    "95% CI",
    "claim",
    "requests",
    "anecdote",
    "top",
    "slow share",
    "p50",
    "p95",
    "p99",
    "probe p95",
    "calls/req",
    "saving/req",
)


#: The first columns of the compact tables (terminal, HTML): a share and its interval in one.
COMPACT_LEAD = ("hypothesis", "endpoint", "verdict", "share (95% CI)", "claim", "requests")


def compact_lead(v: Verdict, share: str) -> tuple[str, ...]:
    """The cells of :data:`COMPACT_LEAD` for ``v``, its share as the format shows it.

    Example: ``compact_lead(v, "7.1% (6.5-7.8%)")[3]`` is ``"7.1% (6.5-7.8%)"``.
    """
    return (v.hypothesis, v.endpoint, v.verdict, share, pct_claim(v.min_share), count(v.requests))


def quantile(v: Verdict, name: str) -> str:
    """A quantile field as text; in a wide bucket, the bucket's bounds joined by an en dash.

    Example: ``quantile(v, "endpoint_p95")`` -> ``'168 ms'`` from a snapshot file, or
    ``'134 ms-268 ms'`` from classic /metrics buckets.
    """
    bucket = v.quantile_buckets.get(name)
    if bucket is None:
        return seconds(getattr(v, name))
    lower, upper = bucket
    if math.isinf(upper):
        return f"> {seconds(lower)}"
    return f"{seconds(lower)}{DASH}{seconds(upper)}"


def _calls(v: Verdict) -> str:
    if v.calls_per_request_mean is None:
        return MISSING
    bucket = v.quantile_buckets.get("calls_per_request_p95")
    if bucket is not None:
        p95 = (
            f"> {bucket[0] - 1:g}" if math.isinf(bucket[1]) else f"{bucket[0]:g}{DASH}{bucket[1]:g}"
        )
    else:
        p95 = MISSING if v.calls_per_request_p95 is None else f"{v.calls_per_request_p95:g}"
    return f"{v.calls_per_request_mean:.1f} (p95 {p95})"


def row(v: Verdict) -> tuple[str, ...]:
    """One verdict as the cells of the summary table (same columns in every format)."""
    unmeasured = v.verdict == UNMEASURED  # a share of probes that did not run is no evidence
    return (
        v.hypothesis,
        v.endpoint,
        v.verdict,
        MISSING if unmeasured else pct(v.aggregate_share),
        MISSING if unmeasured else pct_range(v.ci_low, v.ci_high),
        pct_claim(v.min_share),
        count(v.requests),
        pct(v.anecdote_share),
        pct(v.anecdote_percentile),
        pct(v.slow_share),
        quantile(v, "endpoint_p50"),
        quantile(v, "endpoint_p95"),
        quantile(v, "endpoint_p99"),
        quantile(v, "probe_p95"),
        _calls(v),
        seconds(v.saving_seconds_per_request),
    )


COMPARE_HEADERS = ("", "before", "after", "change")


def _change(change: float | None) -> str:
    if change is None:
        return MISSING
    return f"{'+' if change >= 0 else '-'}{pct(abs(change))}"


def _significance(c: Comparison) -> str:
    if c.mean_change_significant is None:
        return f"too few requests to test (need {MIN_REQUESTS} each)"
    p = c.mean_change_p_value
    p_text = "" if p is None else (", p<0.001" if p < 0.001 else f", p={p:.3f}")
    word = "significant" if c.mean_change_significant else "not significant"
    return f"{word} (Welch{p_text})"


def compare_rows(c: Comparison) -> list[tuple[str, str, str, str]]:
    """One comparison as rows of (measure, before, after, change)."""
    rows = [("requests", count(c.requests_before), count(c.requests_after), "")]
    for name in ("p50", "p95", "p99", "mean"):
        before = getattr(c, f"endpoint_{name}_before")
        after = getattr(c, f"endpoint_{name}_after")
        rows.append(
            (name, seconds(before), seconds(after), _change(getattr(c, f"endpoint_{name}_change")))
        )
    rows.append(("mean change", "", "", _significance(c)))
    share_change = MISSING
    if c.share_before is not None and c.share_after is not None:
        points = (c.share_after - c.share_before) * 100
        share_change = f"{points:+.1f} points"
        if c.share_change_significant is not None:
            share_change += " (significant)" if c.share_change_significant else " (not significant)"
    rows.append(("share", pct(c.share_before), pct(c.share_after), share_change))
    rows.append(("verdict", c.verdict_before, c.verdict_after, ""))
    return rows


def _utc(at: float, fmt: str) -> str:
    try:
        return _dt.datetime.fromtimestamp(at, _dt.timezone.utc).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        # A time no date can show (a hand-built snapshot): the number itself, not a crash.
        return f"{at!r} (Unix seconds)"


def when(created_at: float) -> str:
    """A snapshot time as people read it, in UTC."""
    return _utc(created_at, "%Y-%m-%d %H:%M:%S UTC")


def slowest_lines(v: Verdict, per_kind: int | None = None) -> list[str]:
    """One line per single request kept beside the aggregate, highest first.

    ``per_kind`` keeps only the first few of each kind (the terminal and the ticket).

    Example: ``highest share: 86%, 31 ms of 36 ms (13 calls), ended 15:12:45.120 UTC,
    trace 4bf9…``; without any trace id, a last line says how to find them instead.
    """
    out = []
    shown = {"share": 0, "latency": 0}
    for r in v.slowest_requests:
        if per_kind is not None and shown.get(r.kind, 0) >= per_kind:
            continue
        shown[r.kind] = shown.get(r.kind, 0) + 1
        if r.kind == "share":
            what = f"highest share: {pct(r.share)}, {seconds(r.probe_seconds)} of "
            what += seconds(r.endpoint_seconds)
        else:
            what = f"slowest: {seconds(r.endpoint_seconds)}, {pct(r.share)} in the probes"
        calls = f"{count(r.calls)} call" + ("" if r.calls == 1 else "s")
        # To the millisecond: without a trace id, the end time and the duration are how
        # the request is found in an access log.
        at = re.sub(r"\.(\d{3})\d{3} UTC$", r".\1 UTC", _utc(r.at, "%H:%M:%S.%f UTC"))
        trace = f", trace {r.trace_id}" if r.trace_id else ""
        out.append(f"{what} ({calls}), ended {at}{trace}")
    if out and not any(r.trace_id for r in v.slowest_requests):
        out.append(NO_TRACE_HINT)
    return out


def self_cost_lines(v: Verdict) -> list[str]:
    """hypoprobe's own share of the endpoint's latency, as one line (none without an estimate).

    Example: ``probes cost 0.02% of GET /campaigns (hypoprobe's own time, estimated: 41 ms
    over 12,400 requests)``
    """
    if v.self_share is None:
        return []
    return [
        f"probes cost {pct(v.self_share)} of {v.endpoint} (hypoprobe's own time, estimated: "
        f"{seconds(v.self_seconds)} over {count(v.requests)} requests)"
    ]
