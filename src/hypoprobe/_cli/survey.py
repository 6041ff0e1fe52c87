"""``hypoprobe survey``: where the time goes, per endpoint, from a survey's data; and the
hypotheses to state next (``--propose``)."""

from __future__ import annotations

import argparse

from ..analysis._survey import survey_of
from ..errors import UsageError
from ..render._survey import FORMATS, propose, render_survey
from ._common import add_output_file_argument, add_source_arguments, load_source, write_output

HELP = "step zero: rank each endpoint's statements and functions by their measured share"

EXAMPLES = """examples:
  hypoprobe survey --metrics-url http://127.0.0.1:9464/metrics
  hypoprobe survey --snapshot survey.json --endpoint "GET /campaigns" --format markdown
  hypoprobe survey --snapshot survey.json --propose -o perf.toml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--endpoint", metavar="NAME", help="only this endpoint")
    parser.add_argument(
        "--top",
        type=int,
        default=10,
        metavar="N",
        help="candidates shown per endpoint (default 10); with --propose, proposed (default 3)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default), markdown, json (hypoprobe.survey/1) or html",
    )
    parser.add_argument(
        "--propose",
        action="store_true",
        help="write [[hypothesis]] TOML for the top candidates instead of the findings",
    )
    parser.add_argument(
        "--min-share",
        type=float,
        default=0.05,
        metavar="FRACTION",
        help="with --propose: only candidates with at least this share (default 0.05)",
    )
    parser.add_argument(
        "--expires-days",
        type=int,
        default=30,
        metavar="DAYS",
        help="with --propose: the proposed hypotheses expire this many days from today",
    )
    add_output_file_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    if not 0 <= args.min_share <= 1:
        raise UsageError("--min-share must be a fraction from 0 to 1, such as 0.1")
    if args.expires_days < 1:
        raise UsageError("--expires-days must be at least 1")
    snap = load_source(args)
    if args.propose:
        top = args.top if args.top != 10 else 3
        found = survey_of(snap, endpoint=args.endpoint)
        text = propose(found, top=top, min_share=args.min_share, expires_days=args.expires_days)
    else:
        text = render_survey(survey_of(snap, endpoint=args.endpoint, top=args.top), args.format)
    write_output(text, args.output)
    return 0
