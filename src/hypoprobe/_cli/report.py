"""``hypoprobe report``: one verdict per hypothesis and endpoint, from any source."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from .. import analysis, render, sources
from ..cli import UsageError
from ..model import Snapshot
from ..sources._errors import EXIT_NO_DATA
from ._common import (
    Progress,
    add_filter_arguments,
    add_output_arguments,
    add_source_arguments,
    load_source,
    output_format,
    parse_window,
    write_output,
)

HELP = "judge each hypothesis: CONFIRMED, DISPROVED, INCONCLUSIVE or UNMEASURED, with the numbers"

EXAMPLES = """examples:
  hypoprobe report --snapshot before.json
  hypoprobe report --snapshot web-1.json web-2.json --format markdown
  hypoprobe report --over-time --snapshot t0.json t1.json t2.json -o report.html
      (one process at several times: verdicts from the newest, the share over time)
  hypoprobe report --metrics-url http://127.0.0.1:8000/metrics --window 60s
  hypoprobe report --prometheus http://prometheus:9090 --window 1h -o report.html
  hypoprobe report --prometheus http://prometheus:9090 --window 6h --over-time --step 30m \\
      -o report.html      (and the share in each half hour)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument(
        "--over-time",
        action="store_true",
        help="the share over time as well: with several --snapshot files, they are one "
        "source at successive times (cumulative, as a process writes them), the newest is "
        "judged instead of their sum; with --prometheus, the window is also read interval "
        "by interval (see --step)",
    )
    parser.add_argument(
        "--step",
        type=parse_window,
        metavar="DURATION",
        help=f"with --prometheus --over-time: the length of each interval (default: the "
        f"window / {INTERVALS})",
    )
    add_filter_arguments(parser)
    add_output_arguments(parser)
    parser.add_argument(
        "--fail-on-unmeasured",
        action="store_true",
        help="exit 5 when a verdict is UNMEASURED (a probe never ran or a target failed); "
        "without it the report exits 0 once written",
    )


#: Intervals of a Prometheus window read --over-time, unless --step says otherwise.
INTERVALS = 12
#: ...and at most this many (each is one set of queries).
MAX_INTERVALS = 200


def _series(args: argparse.Namespace) -> list[Snapshot]:
    """With ``--over-time``: the snapshot files, checked to be one source at distinct times."""
    if not args.over_time or args.prometheus:
        return []
    if not args.snapshot or len(args.snapshot) < 2:
        raise UsageError(
            "--over-time needs two or more --snapshot files of one source, or --prometheus"
        )
    snaps = [sources.load_snapshot_file(p) for p in args.snapshot]
    if not analysis.is_series(snaps):
        names = sorted({s.source for s in snaps})
        raise UsageError(
            "--over-time reads one source at several distinct times; these files are "
            + (f"from {len(names)} sources ({', '.join(names[:3])})" if len(names) > 1 else "")
            + ("" if len(names) > 1 else "taken at the same time")
        )
    return snaps


def _prometheus_timeline(args: argparse.Namespace) -> tuple[analysis.SharePoint, ...]:
    """The window read again interval by interval, each a window of its own."""
    window: float = args.window
    step: float = args.step or window / INTERVALS
    count = round(window / step)
    if count < 2 or count > MAX_INTERVALS:
        raise UsageError(
            f"--step {step:g} s cuts the {window:g} s window into {count} intervals; "
            f"choose a step that gives 2 to {MAX_INTERVALS}"
        )
    end = time.time() if args.at is None else args.at
    windows = []
    with Progress() as progress:
        for k in range(count):
            at = end - (count - 1 - k) * step
            progress(f"interval {k + 1}/{count}")
            try:
                snap = sources.query_prometheus(args.prometheus, step, at=at)
            except sources.SourceError as exc:
                if exc.exit_code != EXIT_NO_DATA:
                    raise
                continue  # no requests in this interval: no point
            windows.append((at - step, at, snap))
    return analysis.window_timeline(windows)


def run(args: argparse.Namespace) -> int:
    from ..errors import EXIT_UNMEASURED

    if args.step is not None and not (args.over_time and args.prometheus):
        raise UsageError("--step only applies to --prometheus --over-time")
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
        rep = replace(rep, timeline=analysis.timeline(series), notes=(*rep.notes, note))
    elif args.over_time and args.prometheus:
        rep = replace(rep, timeline=_prometheus_timeline(args))
    write_output(render.render_report(rep, output_format(args)), args.output)
    if args.fail_on_unmeasured and any(v.verdict == analysis.UNMEASURED for v in rep.verdicts):
        return EXIT_UNMEASURED
    return 0
