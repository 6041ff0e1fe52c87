"""Markdown to paste into the ticket: a short narrative per verdict, then the table."""

from __future__ import annotations

from collections.abc import Sequence

from ..analysis import ComparisonReport, Report
from ..analysis._text import pct_claim
from ._common import (
    COMPARE_HEADERS,
    HEADERS,
    compare_rows,
    row,
    self_cost_lines,
    slowest_lines,
    when,
)

__all__ = ["comparison", "report"]


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines


def report(rep: Report) -> str:
    """The verdicts as Markdown: heading, claim and sentence per verdict, then a table."""
    lines = ["## hypoprobe report", "", f"Source: {rep.source}, {when(rep.created_at)}.", ""]
    for v in rep.verdicts:
        lines.append(f"### {v.hypothesis} · {_cell(v.endpoint)}: **{v.verdict}**")
        lines.append("")
        lines.append(f"> {_cell(v.claim)} (needs {pct_claim(v.min_share)} of the latency)")
        lines.append("")
        lines.append(v.meaning)
        lines.append("")
        if v.warnings:
            lines += [f"- **Warning:** {_cell(w)}" for w in v.warnings] + [""]
        if v.slowest_requests:
            lines += [f"- {_cell(line)}" for line in slowest_lines(v, per_kind=3)] + [""]
        for line in self_cost_lines(v):
            lines += [f"_{_cell(line)}_", ""]
    lines += table(HEADERS, [row(v) for v in rep.verdicts])
    lines.append("")
    lines.append(
        "Share: Σ probe time / Σ endpoint time over all requests, 95% interval by the ratio "
        "estimator; top: the fraction of requests whose share was at least the anecdote's."
    )
    for note in rep.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def comparison(rep: ComparisonReport) -> str:
    """Before/after as Markdown: per hypothesis and endpoint, a sentence and a table."""
    lines = [
        "## hypoprobe compare",
        "",
        f"Before: {rep.before_source}.  ",
        f"After: {rep.after_source}.",
        "",
    ]
    for c in rep.comparisons:
        lines += [f"### {c.hypothesis} · {_cell(c.endpoint)}", "", c.meaning, ""]
        lines += table(COMPARE_HEADERS, compare_rows(c))
        lines.append("")
    lines.append(
        "Significance: Welch's test on the mean endpoint latency at the 5% level; "
        "share: Σ probe time / Σ endpoint time."
    )
    return "\n".join(lines) + "\n"
