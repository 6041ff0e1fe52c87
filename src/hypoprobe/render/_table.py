"""The terminal format: a fixed-width table, then each verdict's sentence, wrapped."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from ..analysis import UNMEASURED, ComparisonReport, Report, Verdict
from ..analysis._impact import sentence as customers_sentence
from ..analysis._text import MISSING, pct, pct_range, seconds
from ._common import (
    COMPACT_LEAD,
    COMPARE_HEADERS,
    compact_lead,
    compare_rows,
    printable,
    quantile,
    self_cost_lines,
    slowest_lines,
    when,
)

__all__ = ["comparison", "report"]

WIDTH = 100

#: The terminal's columns: fewer than the full table of the other formats, to fit.
HEADERS = (
    *COMPACT_LEAD,
    "top",
    "slow share",
    "p95",
    "calls/req",
    "saving/req",
)


def row(v: Verdict) -> tuple[str, ...]:
    """A verdict as the cells of the terminal table."""
    share = f"{pct(v.aggregate_share)} ({pct_range(v.ci_low, v.ci_high)})"
    calls = "-" if v.calls_per_request_mean is None else f"{v.calls_per_request_mean:.1f}"
    if v.verdict == UNMEASURED:
        share = MISSING  # a share of probes that did not run is no evidence
    elif v.ci_low is None:
        share = pct(v.aggregate_share)
    return (
        *compact_lead(v, share),
        pct(v.anecdote_percentile),
        pct(v.slow_share),
        quantile(v, "endpoint_p95"),
        calls,
        seconds(v.saving_seconds_per_request),
    )


def grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart, a rule under the headers."""
    # A list, not max(len(h), *cells): with no rows that would be max() of one int.
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return [line.rstrip() for line in lines]


def _wrapped(label: str, text: str) -> list[str]:
    return textwrap.wrap(
        f"{label}: {text}", width=WIDTH, subsequent_indent="    ", break_on_hyphens=False
    )


def report(rep: Report) -> str:
    """The verdicts as a terminal table followed by their sentences."""
    lines = [f"hypoprobe report: {rep.source}, {when(rep.created_at)}", ""]
    lines += grid(HEADERS, [row(v) for v in rep.verdicts])
    lines.append("")
    for v in rep.verdicts:
        lines += _wrapped(f"{v.hypothesis} {v.endpoint}", v.meaning)
        if (who := customers_sentence(v.customers)) is not None:
            lines += textwrap.wrap(
                who, width=WIDTH, initial_indent="    ", subsequent_indent="    "
            )
        for warning in v.warnings:
            lines += ["    " + line for line in _wrapped("warning", warning)]
        lines += [f"    {line}" for line in slowest_lines(v, per_kind=3)]
        lines += [f"    {line}" for line in self_cost_lines(v)]
    for note in rep.notes:
        lines += _wrapped("note", note)
    return printable("\n".join(lines)) + "\n"


def comparison(rep: ComparisonReport) -> str:
    """Before/after: a small table and one sentence per hypothesis and endpoint."""
    lines = [
        "hypoprobe compare",
        f"  before: {rep.before_source}",
        f"  after:  {rep.after_source}",
    ]
    for c in rep.comparisons:
        lines += ["", f"{c.hypothesis} {c.endpoint}", ""]
        lines += grid(COMPARE_HEADERS, compare_rows(c))
        lines.append("")
        lines += textwrap.wrap(c.meaning, width=WIDTH, break_on_hyphens=False)
    return printable("\n".join(lines)) + "\n"
