"""``hypoprobe backlog``: every hypothesis ranked by value-weighted time saved per day."""

from __future__ import annotations

import argparse
import json
from html import escape

from ..analysis import NoDataError
from ..analysis._backlog import SECONDS, TOTAL, VALUE, BacklogRow, backlog
from ..analysis._text import pct
from ..render._json import _finite
from ..render._markdown import table as markdown_table
from ..render._table import grid
from ._common import add_source_arguments, load_source, write_output

HELP = "rank every hypothesis by impact: value-weighted seconds saved per day, customers affected"

EXAMPLES = """examples:
  hypoprobe backlog --snapshot web-1.json web-2.json
  hypoprobe backlog --prometheus http://127.0.0.1:9090 --window 7d --format markdown -o backlog.md
"""

HEADERS = (
    "#",
    "hypothesis",
    "verdict",
    "share",
    "customers affected",
    "value affected",
    "saving/day",
    "value-weighted/day",
    "owner",
    "ticket",
    "expires",
)

SCHEMA = "hypoprobe.backlog/1"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return text + unit


def cells(row: BacklogRow) -> tuple[str, ...]:
    affected = "-"
    if row.customers_affected is not None:
        affected = f"{row.customers_affected:,} of {row.customers_seen or 0:,}"
    return (
        str(row.rank),
        row.hypothesis,
        row.verdict,
        pct(row.share),
        affected,
        _num(row.value_affected),
        _num(row.saving_seconds_per_day, " s"),
        _num(row.value_saving_per_day),
        row.owner or "-",
        row.ticket or "-",
        (row.expires or "-")[:10],
    )


def explain(rows: tuple[BacklogRow, ...]) -> list[str]:
    """How the rows were ranked, and which lacked the figures the first key needs."""
    lines = [
        "Ranked by value-weighted seconds saved per day (probe seconds in each request times "
        "its customer's value), then seconds per day, then the probe's seconds in the source; "
        "ties by customers affected, then id."
    ]
    seconds_only = [r.hypothesis for r in rows if r.ranked_by == SECONDS]
    total_only = [r.hypothesis for r in rows if r.ranked_by == TOTAL]
    if seconds_only:
        lines.append(
            f"No customer values for {', '.join(seconds_only)}: ranked after every "
            "hypothesis with values, by seconds per day."
        )
    if total_only:
        lines.append(
            f"No customers named for {', '.join(total_only)}: no window to scale to a day; "
            "ranked last, by probe seconds (call hypoprobe.customer() to rank them by impact)."
        )
    return lines


def render(rows: tuple[BacklogRow, ...], fmt: str, source: str) -> str:
    if fmt == "json":
        doc = {
            "schema": SCHEMA,
            "source": source,
            "ranked_by": [VALUE, SECONDS, TOTAL],
            "rows": [r.to_dict() for r in rows],
            "notes": explain(rows),
        }
        return json.dumps(_finite(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    body = [cells(r) for r in rows]
    if fmt == "markdown":
        lines = ["## hypoprobe backlog", "", f"Source: {source}.", ""]
        lines += [*markdown_table(HEADERS, body), "", *explain(rows)]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
        trs = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in body)
        notes = "".join(f"<p>{escape(n)}</p>" for n in explain(rows))
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>hypoprobe backlog</title></head><body>"
            f"<h1>hypoprobe backlog</h1><p>Source: {escape(source)}.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"
            f"{notes}</body></html>\n"
        )
    lines = [f"hypoprobe backlog: {source}", "", *grid(HEADERS, body), "", *explain(rows)]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--format", choices=("table", "markdown", "json", "html"), default="table")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    snap = load_source(args)
    rows = backlog(snap)
    if not rows:
        raise NoDataError(
            f"no hypothesis with requests in {snap.source}: nothing to rank; "
            "let some requests run, or widen the window"
        )
    write_output(render(rows, args.format, snap.source), args.output)
    return 0
