"""Markdown to paste into the ticket: a short narrative per verdict, then the table."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..analysis import ComparisonReport, Report
from ..analysis._impact import sentence as customers_sentence
from ..analysis._text import pct_claim
from ._common import (
    COMPARE_HEADERS,
    HEADERS,
    compare_rows,
    printable,
    row,
    self_cost_lines,
    slowest_lines,
    when,
)

__all__ = ["comparison", "report"]

#: Markdown's inline punctuation (emphasis, code, links, tables, strikethrough), escaped
#: with a backslash, as CommonMark allows for any ASCII punctuation. Not ``_``: probe and
#: function names are full of it, and inside a word it never starts emphasis.
_MARKUP = re.compile(r"([\\`*\[\]|~])")
#: Where raw HTML can begin (a tag, a closing tag, a comment, a processing instruction);
#: a ``<`` elsewhere, as in "p < 0.001", is plain text to every Markdown renderer.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")


def _text(text: str) -> str:
    """Text from the application or a snapshot, shown as itself: no markup, no raw HTML
    (``<script>``, ``<img onerror>``: many Markdown renderers pass HTML through) and no
    terminal control characters (the ticket text is often read in a terminal first)."""
    escaped = _MARKUP.sub(r"\\\1", printable(text))
    return _HTML_START.sub("&lt;", escaped)


def _cell(text: str) -> str:
    return _text(text).replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines


def report(rep: Report) -> str:
    """The verdicts as Markdown: heading, claim and sentence per verdict, then a table."""
    lines = ["## hypoprobe report", "", f"Source: {_cell(rep.source)}, {when(rep.created_at)}.", ""]
    for v in rep.verdicts:
        lines.append(f"### {_cell(v.hypothesis)} · {_cell(v.endpoint)}: **{v.verdict}**")
        lines.append("")
        lines.append(f"> {_cell(v.claim)} (needs {pct_claim(v.min_share)} of the latency)")
        lines.append("")
        lines.append(_cell(v.meaning))
        lines.append("")
        if (who := customers_sentence(v.customers)) is not None:
            lines += [who, ""]
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
        lines += ["", f"Note: {_cell(note)}"]
    return "\n".join(lines) + "\n"


def comparison(rep: ComparisonReport) -> str:
    """Before/after as Markdown: per hypothesis and endpoint, a sentence and a table."""
    lines = [
        "## hypoprobe compare",
        "",
        f"Before: {_cell(rep.before_source)}.  ",
        f"After: {_cell(rep.after_source)}.",
        "",
    ]
    for c in rep.comparisons:
        lines += [f"### {_cell(c.hypothesis)} · {_cell(c.endpoint)}", "", _cell(c.meaning), ""]
        lines += table(COMPARE_HEADERS, compare_rows(c))
        lines.append("")
    lines.append(
        "Significance: Welch's test on the mean endpoint latency at the 5% level; "
        "share: Σ probe time / Σ endpoint time."
    )
    return "\n".join(lines) + "\n"
