"""``hypoprobe compare``: the impact of a fix, before and after."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import analysis, render, sources
from ..errors import UsageError
from ..model import Snapshot
from ._common import (
    Progress,
    add_filter_arguments,
    add_output_arguments,
    output_format,
    parse_time,
    parse_window,
    write_output,
)

HELP = "compare before and after a fix: latency percentiles, mean with significance, share"

EXAMPLES = """examples:
  hypoprobe compare before.json after.json
  hypoprobe compare before.json after.json -o compare.html
  hypoprobe compare --prometheus http://prometheus:9090 --window 1h \\
      --before 2026-11-20T12:00:00Z --after 2026-11-21T12:00:00Z --format markdown
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="two snapshot files: BEFORE the fix, then AFTER it",
    )
    prom = parser.add_argument_group("or two windows of a Prometheus server")
    prom.add_argument("--prometheus", metavar="URL", help="a Prometheus server's base URL")
    prom.add_argument(
        "--window", type=parse_window, metavar="DURATION", help="length of each window (e.g. 1h)"
    )
    prom.add_argument(
        "--before", type=parse_time, metavar="TIME", help="end of the window before the fix"
    )
    prom.add_argument(
        "--after",
        type=parse_time,
        metavar="TIME",
        help="end of the window after the fix (default now)",
    )
    add_filter_arguments(parser)
    add_output_arguments(parser)


def _files_after_hypotheses(args: argparse.Namespace) -> None:
    """``compare --hypothesis X a.json b.json``: the ids' ``nargs`` took the files too.

    Values that name existing files are files (a hypothesis id names no file here).
    """
    if len(args.files) >= 2 or not args.hypothesis:
        return
    ids = [h for h in args.hypothesis if not _is_file(h)]
    moved = [h for h in args.hypothesis if _is_file(h)]
    if moved:
        args.files = [*args.files, *moved]
        args.hypothesis = ids or None


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL: an id, not a file
        return False


def _load(args: argparse.Namespace) -> tuple[Snapshot, Snapshot]:
    _files_after_hypotheses(args)
    if args.prometheus:
        if args.files:
            raise UsageError("give either two snapshot files or --prometheus, not both")
        if args.window is None or args.before is None:
            raise UsageError(
                "--prometheus needs --window and --before (and optionally --after), "
                "e.g. --window 1h --before 2026-11-20T12:00:00Z"
            )
        with Progress() as progress:
            before = sources.query_prometheus(
                args.prometheus, args.window, at=args.before, progress=progress
            )
            after = sources.query_prometheus(
                args.prometheus, args.window, at=args.after, progress=progress
            )
        return before, after
    if len(args.files) != 2:
        raise UsageError(
            f"compare needs two snapshot files, BEFORE and AFTER (got {len(args.files)}), "
            "or --prometheus URL --window DURATION --before TIME"
        )
    if args.window is not None or args.before is not None or args.after is not None:
        raise UsageError("--window, --before and --after only apply to --prometheus")
    return sources.load_snapshot_file(args.files[0]), sources.load_snapshot_file(args.files[1])


def run(args: argparse.Namespace) -> int:
    before, after = _load(args)
    rep = analysis.compare(before, after, hypotheses=args.hypothesis, endpoint=args.endpoint)
    write_output(render.render_comparison(rep, output_format(args)), args.output)
    return 0
