"""``hypoprobe report``: one verdict per hypothesis and endpoint, from any source."""

from __future__ import annotations

import argparse
from dataclasses import replace

from .. import analysis, render, sources
from ..cli import UsageError
from ..snapshot import Snapshot
from ._common import (
    add_filter_arguments,
    add_output_arguments,
    add_source_arguments,
    load_source,
    output_format,
    write_output,
)

HELP = "judge each hypothesis: CONFIRMED, DISPROVED or INCONCLUSIVE, with the numbers"

EXAMPLES = """examples:
  hypoprobe report --snapshot before.json
  hypoprobe report --snapshot web-1.json web-2.json --format markdown
  hypoprobe report --over-time --snapshot t0.json t1.json t2.json -o report.html
      (one process at several times: verdicts from the newest, the share over time)
  hypoprobe report --metrics-url http://127.0.0.1:8000/metrics --window 60s
  hypoprobe report --prometheus http://prometheus:9090 --window 1h -o report.html
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument(
        "--over-time",
        action="store_true",
        help="with several --snapshot files: they are one source at successive times "
        "(cumulative, as a process writes them); judge the newest and plot the share per "
        "interval, instead of summing the files as separate processes",
    )
    add_filter_arguments(parser)
    add_output_arguments(parser)


def _series(args: argparse.Namespace) -> list[Snapshot]:
    """With ``--over-time``: the snapshot files, checked to be one source at distinct times."""
    if not args.over_time:
        return []
    if not args.snapshot or len(args.snapshot) < 2:
        raise UsageError("--over-time needs two or more --snapshot files of one source")
    snaps = [sources.load_snapshot_file(p) for p in args.snapshot]
    if not analysis.is_series(snaps):
        names = sorted({s.source for s in snaps})
        raise UsageError(
            "--over-time reads one source at several distinct times; these files are "
            + (f"from {len(names)} sources ({', '.join(names[:3])})" if len(names) > 1 else "")
            + ("" if len(names) > 1 else "taken at the same time")
        )
    return snaps


def run(args: argparse.Namespace) -> int:
    series = _series(args)
    # One process's snapshots are cumulative: summing them would count its early requests
    # several times. The newest holds everything; the intervals show when the share was what.
    snap = max(series, key=lambda s: s.created_at) if series else load_source(args)
    rep = analysis.report(snap, hypotheses=args.hypothesis, endpoint=args.endpoint)
    if not series and args.snapshot and len(args.snapshot) > 1:
        names = {s.strip() for s in snap.source.split(" + ")}
        if len(names) == 1:
            rep = replace(
                rep,
                notes=(
                    *rep.notes,
                    f"the {len(args.snapshot)} files all come from {names.pop()} and were "
                    "summed as separate processes; if they are one process at successive "
                    "times, pass --over-time",
                ),
            )
    if series:
        note = (
            f"the {len(series)} snapshot files are {snap.source} at successive times: the "
            "verdicts are from the newest (everything it had recorded)"
        )
        if output_format(args) == "html":
            note += "; the share over time is plotted per interval"
        rep = replace(rep, timeline=analysis.timeline(series), notes=(*rep.notes, note))
    write_output(render.render_report(rep, output_format(args)), args.output)
    return 0
