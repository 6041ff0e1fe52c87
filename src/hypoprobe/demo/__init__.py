"""``hypoprobe demo``: the whole story on a realistic example app, in one command.

1. One slow request for a huge account, profiled: "the subscriber query took 81% of it".
2. The team's hypotheses registered from a TOML file; the campaigns app served on
   127.0.0.1 and driven by a seeded load generator.
3. The verdicts in aggregate (a table here; Markdown, JSON and HTML in the output folder):
   the anecdote's query DISPROVED, the N+1 CONFIRMED, the rare export INCONCLUSIVE.
4. The fix the verdicts point at, the same load again, and before vs after compared.

Example::

    hypoprobe demo                       # SQLite, 2000 requests per phase, ./hypoprobe-out/
    hypoprobe demo --requests 300 --seed 7 --out /tmp/demo
    hypoprobe demo --database-url postgresql://user@127.0.0.1/campaigns
    python -m hypoprobe.demo --keep-running    # then browse the app and its /metrics
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import HypoprobeError
from ._story import DatabaseUnavailable, DemoOptions, DemoResult, run_demo

__all__ = ["HELP", "DemoOptions", "DemoResult", "add_arguments", "main", "run", "run_demo"]

#: One line for the CLI's list of subcommands.
HELP = "run the whole story on an example app: anecdote, hypotheses, load, verdicts, fix"

EXAMPLES = """examples:
  hypoprobe demo
  hypoprobe demo --requests 500 --seed 7 --out /tmp/demo
  hypoprobe demo --database-url postgresql://localhost/campaigns --keep-running
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options, for ``hypoprobe demo`` and ``python -m hypoprobe.demo``.

    Example::

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(["--requests", "300"])
    """
    defaults = DemoOptions()
    parser.add_argument(
        "--requests",
        type=int,
        default=defaults.requests,
        help=f"requests per load phase, before and after the fix (default {defaults.requests})",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the load mix (default 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=defaults.out,
        help=f"folder for reports and snapshots (default ./{defaults.out})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql://... to run on PostgreSQL (default: $DATABASE_URL, else SQLite "
        "in the user's cache directory)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the app and its /metrics up at the end, until Ctrl-C",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed ``args``.

    Exit codes as the rest of the CLI: 0 the story ran, 2 usage (a bad option, an
    unwritable ``--out``, or the demo's extra not installed), 3 the database could not be
    opened or built, 4 no data (e.g. the hypotheses expired, so their probes recorded
    nothing).
    """
    if args.requests < 1:
        return _fail("--requests must be at least 1", 2)
    options = DemoOptions(
        requests=args.requests,
        seed=args.seed,
        out=args.out,
        database_url=args.database_url,
        keep_running=args.keep_running,
    )
    try:
        run_demo(options, sys.stdout)
    except ImportError as exc:
        print(
            f"hypoprobe demo: {exc}; install the demo's extra: pip install 'hypoprobe[demo]'",
            file=sys.stderr,
        )
        return 2
    except DatabaseUnavailable as exc:
        return _fail(str(exc), 3)
    except HypoprobeError as exc:
        return _fail(str(exc), 4)
    except OSError as exc:
        return _fail(f"{exc}; choose another --out folder", 2)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"hypoprobe demo: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hypoprobe.demo [options]``: the same as ``hypoprobe demo``.

    Example::

        exit_code = main(["--requests", "300", "--out", "/tmp/demo"])
    """
    parser = argparse.ArgumentParser(prog="hypoprobe demo", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
