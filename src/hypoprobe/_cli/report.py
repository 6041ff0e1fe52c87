"""``hypoprobe report``: one verdict per hypothesis and endpoint, from any source."""

from __future__ import annotations

import argparse

from .. import analysis, render
from ._common import (
    add_filter_arguments,
    add_output_arguments,
    add_source_arguments,
    load_source,
    write_output,
)

HELP = "judge each hypothesis: CONFIRMED, DISPROVED, INCONCLUSIVE or UNMEASURED, with the numbers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    add_filter_arguments(parser)
    add_output_arguments(parser)
    parser.add_argument(
        "--fail-on-unmeasured",
        action="store_true",
        help="exit 5 when a verdict is UNMEASURED (a probe never ran or a target failed); "
        "without it the report exits 0 once written",
    )


def run(args: argparse.Namespace) -> int:
    from ..cli import EXIT_UNMEASURED

    snap = load_source(args)
    rep = analysis.report(snap, hypotheses=args.hypothesis, endpoint=args.endpoint)
    write_output(render.render_report(rep, args.format), args.output)
    if args.fail_on_unmeasured and any(v.verdict == analysis.UNMEASURED for v in rep.verdicts):
        return EXIT_UNMEASURED
    return 0
