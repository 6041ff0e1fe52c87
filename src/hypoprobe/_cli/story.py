"""``hypoprobe story ID``: the ticket's Markdown, the method's questions answered with numbers.

How does it impact the customer (latency), how many customers (distinct, share of all), how
much do they pay, when (how often a request looks like the anecdote, slow requests), the
verdict, and, with ``--after SNAPSHOT``, the measured impact of the fix.
"""

from __future__ import annotations

import argparse
import itertools
from datetime import datetime, timezone

from .. import analysis, sources
from ..analysis import NoDataError, Verdict
from ..analysis._impact import CustomerImpact, customer_impact
from ..analysis._text import pct, pct_claim, pct_range, seconds
from ..model import Snapshot
from ._common import add_source_arguments, load_source, write_output

HELP = "the ticket's story in Markdown: how slow, for how many customers, worth how much"

EXAMPLES = """examples:
  hypoprobe story PERF-412 --snapshot before.json
  hypoprobe story PERF-412 --snapshot before.json --after after.json -o PERF-412.md
  hypoprobe story PERF-412 --snapshot t2.json --over-time t0.json t1.json t2.json
"""


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _customers(impact: CustomerImpact | None, min_share: float) -> list[str]:
    if impact is None:
        return [
            "No request named its customer: call `hypoprobe.customer(account_id, value)` in "
            "the endpoint (or pass `customer=` to the middleware) to answer this."
        ]
    approx = "at most " if impact.cumulative else "" if impact.exact else "about "
    share = f" ({pct(impact.affected_fraction)} of them)" if impact.seen else ""
    lines = [
        f"- {approx}**{impact.affected:,}** of {impact.seen:,} customers{share} had at least "
        f"one request where the probed code took {pct_claim(min_share)} or more of the latency."
    ]
    if impact.affected_value is not None and impact.seen_value:
        lines.append(
            f"- They are worth **{_num(impact.affected_value)}** of {_num(impact.seen_value)} "
            f"({pct(impact.affected_value / impact.seen_value)} of the value)."
        )
    else:
        lines.append("- No customer values were given, so what they pay is unknown.")
    if impact.affected_requests:
        lines.append(
            f"- In their {impact.affected_requests:,} affected requests the probed code added "
            f"{seconds(impact.affected_probe_seconds / impact.affected_requests)} on average."
        )
    return lines


def timeline(snaps: list[Snapshot], hypothesis_id: str, endpoint: str) -> list[str]:
    """The share per window between consecutive snapshots (taken in time order)."""

    def at(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    ordered = sorted(snaps, key=lambda s: s.created_at)
    rows = []
    for earlier, later in itertools.pairwise(ordered):
        window = later.minus(earlier)
        mo = window.moments_for(hypothesis_id, endpoint)
        share = mo.probe_seconds / mo.endpoint_seconds if mo.endpoint_seconds > 0 else None
        impact = customer_impact(window, hypothesis_id, endpoint)
        affected = "-"
        if impact is not None and impact.requests:
            affected = pct(impact.affected_requests / impact.requests)
        rows.append(
            f"| {at(earlier.created_at)} → {at(later.created_at)} | {round(mo.requests):,} "
            f"| {pct(share)} | {affected} |"
        )
    if not rows:
        return []
    return [
        "| window | requests | share | requests affected |",
        "|---|---|---|---|",
        *rows,
    ]


def story(
    snap: Snapshot,
    hypothesis_id: str,
    after: Snapshot | None = None,
    over_time: list[Snapshot] | None = None,
) -> str:
    """The story of one hypothesis as Markdown (see the module docstring).

    ``over_time``: snapshots of the same processes taken at different times, for the
    share per window between them.
    """
    rep = analysis.report(snap, hypotheses=[hypothesis_id])
    verdicts = sorted(rep.verdicts, key=lambda v: -v.requests)
    v: Verdict = verdicts[0]
    lines = [f"## {v.hypothesis}: {v.claim}", ""]
    meta = [
        f"{label}: {value}"
        for label, value in (("Ticket", v.ticket), ("Owner", v.owner), ("Endpoint", v.endpoint))
        if value
    ]
    lines += [" · ".join(meta), ""]
    lines += ["### The anecdote", ""]
    if v.anecdote_share is not None:
        lines.append(
            f"One request: the probed code took {seconds(v.anecdote_probe_seconds)} of "
            f"{seconds(v.anecdote_endpoint_seconds)} ({pct(v.anecdote_share)}). "
            f"{pct(v.anecdote_percentile)} of all requests had a share at least that high."
        )
    else:
        lines.append("No anecdote was recorded with the hypothesis.")
    lines += ["", "### How it impacts the customer", ""]
    lines.append(
        f"Over {v.requests:,} requests the probed code is {pct(v.aggregate_share)} of "
        f"{v.endpoint}'s latency (95% CI {pct_range(v.ci_low, v.ci_high)}); the endpoint's "
        f"p50 is {seconds(v.endpoint_p50)}, p95 {seconds(v.endpoint_p95)}; one call's p95 is "
        f"{seconds(v.probe_p95)}."
    )
    lines += ["", "### How many customers, and how much they pay", ""]
    impact = customer_impact(snap, v.hypothesis, v.endpoint)
    lines += _customers(impact, v.min_share)
    lines += ["", "### When", ""]
    when = []
    if v.anecdote_percentile is not None:
        when.append(f"{pct(v.anecdote_percentile)} of requests had a share at least the anecdote's")
    if v.slow_share is not None:
        when.append(
            f"among the {v.slow_requests:,} requests slower than "
            f"{seconds(v.slow_threshold)} the share is {pct(v.slow_share)}"
        )
    if impact is not None and impact.requests:
        when.append(
            f"{pct(impact.affected_requests / impact.requests)} of the requests naming a "
            "customer were affected"
        )
    text = "; ".join(when)
    lines.append(
        text[:1].upper() + text[1:] + "." if when else "Unknown: no anecdote, no slow threshold."
    )
    if over_time and (table := timeline(over_time, v.hypothesis, v.endpoint)):
        lines += ["", *table]
    lines += ["", f"### Verdict: **{v.verdict}**", "", v.meaning, ""]
    lines += ["### Expected saving", ""]
    saving = f"If the probed code cost nothing: {seconds(v.saving_seconds_per_request)} per request"
    if impact is not None and impact.saving_seconds_per_day is not None:
        saving += f", {_num(impact.saving_seconds_per_day)} s per day"
        if impact.value_saving_per_day is not None:
            saving += f" ({_num(impact.value_saving_per_day)} value-weighted seconds per day)"
    lines.append(saving + ".")
    if after is not None:
        lines += ["", "### After the fix", ""]
        try:
            comp = analysis.compare(snap, after, hypotheses=[v.hypothesis], endpoint=v.endpoint)
            lines += [c.meaning for c in comp.comparisons]
        except NoDataError as exc:
            lines.append(f"No comparison: {exc}.")
        later = customer_impact(after, v.hypothesis, v.endpoint)
        if impact is not None and later is not None:
            lines.append("")
            bound = "at most " if later.cumulative and later.affected else ""
            lines.append(
                f"Customers affected: {impact.affected:,} of {impact.seen:,} before, "
                f"{bound}{later.affected:,} after ({later.affected_requests:,} affected of "
                f"{later.requests:,} requests naming a customer)."
            )
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="the hypothesis id, e.g. PERF-123")
    add_source_arguments(parser)
    parser.add_argument(
        "--after", metavar="SNAPSHOT", nargs="+", help="snapshot file(s) taken after the fix"
    )
    parser.add_argument(
        "--over-time",
        metavar="SNAPSHOT",
        nargs="+",
        help="snapshots of the same processes at different times: the share per window",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    snap = load_source(args)
    after = sources.load_snapshot_files(args.after) if args.after else None
    over = [sources.load_snapshot_files([path]) for path in args.over_time or ()]
    write_output(story(snap, args.id, after, over), args.output)
    return 0
