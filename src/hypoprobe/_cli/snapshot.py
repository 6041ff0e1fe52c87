"""``hypoprobe snapshot``: freeze what live processes expose into a snapshot file."""

from __future__ import annotations

import argparse

from .. import sources
from ._common import Progress, add_output_file_argument, parse_window, write_output

HELP = "scrape live /metrics endpoints and write a snapshot file for report and compare"

EXAMPLES = """examples:
  hypoprobe snapshot --metrics-url http://127.0.0.1:8000/metrics -o web-1.json
  hypoprobe snapshot --metrics-url http://web-1:8000 http://web-2:8000 --window 5m -o fleet.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-url",
        nargs="+",
        metavar="URL",
        required=True,
        help="live /metrics endpoints to scrape (one or many); merged",
    )
    parser.add_argument(
        "--window",
        type=parse_window,
        metavar="DURATION",
        help="scrape twice, this far apart, and keep only the difference",
    )
    add_output_file_argument(parser)


def run(args: argparse.Namespace) -> int:
    with Progress() as progress:
        snap = sources.scrape_metrics(
            args.metrics_url, window_seconds=args.window, progress=progress
        )
    write_output(snap.to_json(indent=2) + "\n", args.output)
    return 0
