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

HELP = "judge each hypothesis: CONFIRMED, DISPROVED or INCONCLUSIVE, with the numbers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    add_filter_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    snap = load_source(args)
    rep = analysis.report(snap, hypotheses=args.hypothesis, endpoint=args.endpoint)
    write_output(render.render_report(rep, args.format), args.output)
    return 0
