"""The ``hypoprobe`` command: argument parsing only; the work is done by the subcommands.

Subcommands live in modules listed in :data:`COMMANDS`. Each module has ``HELP`` (one
line), ``add_arguments(parser)`` and ``run(args) -> int``; adding a subcommand is one
module and one entry here.

Exit codes (documented in ``docs/cli.md``; defined with the exception tree in
:mod:`hypoprobe.errors`, each error carrying its ``exit_code``):

* 0 — verdicts (or the comparison, or the snapshot) were written;
* 2 — usage: a bad or missing argument, an unwritable output file;
* 3 — a source is unreachable or failed (connection refused, HTTP or Prometheus error);
* 4 — no data: a non-hypoprobe ``/metrics``, an empty or corrupt snapshot, an unknown
  hypothesis, a window without requests, snapshots with nothing in common to compare;
* 5 — unmeasured: ``hypoprobe check`` found a probe target that failed, or
  ``report --fail-on-unmeasured`` printed an UNMEASURED verdict (without the flag an
  UNMEASURED verdict still exits 0: the report was written).
* 1 — a bug in hypoprobe (an unexpected exception), reported in one line too; set
  ``HYPOPROBE_DEBUG=1`` to see its traceback.

User errors print one line on stderr, ``hypoprobe: <problem>; <what to do>``, never a
traceback.

Example::

    $ hypoprobe report --snapshot web-1.json web-2.json --format markdown
    $ python -m hypoprobe compare before.json after.json
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from .errors import (
    EXIT_INTERNAL,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_SOURCE,
    EXIT_UNMEASURED,
    EXIT_USAGE,
    HypoprobeError,
    UsageError,
)

__all__ = [
    "COMMANDS",
    "EXIT_INTERNAL",
    "EXIT_NO_DATA",
    "EXIT_OK",
    "EXIT_SOURCE",
    "EXIT_UNMEASURED",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "main",
]

#: Subcommand name -> module path. Each module: HELP, add_arguments(parser), run(args).
COMMANDS: dict[str, str] = {
    "report": "hypoprobe._cli.report",
    "compare": "hypoprobe._cli.compare",
    "snapshot": "hypoprobe._cli.snapshot",
    "backlog": "hypoprobe._cli.backlog",
    "story": "hypoprobe._cli.story",
    "demo": "hypoprobe.demo",
    "rules": "hypoprobe._cli.rules",
    "dashboard": "hypoprobe._cli.dashboard",
    "check": "hypoprobe._cli.check",
    "run": "hypoprobe._cli.run",
    "survey": "hypoprobe._cli.survey",
}


class Command(Protocol):
    """What a subcommand module provides."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse, with the arguments it quotes in errors shown as text: a control character
    in an argument (``$'\\r'``, ESC) would otherwise reach the terminal raw."""

    def error(self, message: str) -> NoReturn:
        from .render._common import printable

        self.print_usage(sys.stderr)
        shown = printable(message).replace("\n", "\\n")
        self.exit(EXIT_USAGE, f"{self.prog}: error: {shown}\n")


def _load(path: str) -> Command:
    return cast(Command, importlib.import_module(path))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand included."""
    from . import __version__

    parser = _Parser(
        prog="hypoprobe",
        description="Judge performance hypotheses from hypoprobe's metrics.",
        epilog="exit codes: 0 ok, 2 usage, 3 source unreachable or failed, 4 no data, "
        "5 unmeasured (check: a target failed; report --fail-on-unmeasured)",
    )
    parser.add_argument("--version", action="version", version=f"hypoprobe {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, path in COMMANDS.items():
        module = _load(path)
        sub = subs.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EXAMPLES", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _fail(message: str, code: int) -> int:
    from .render._common import printable

    # One line, and nothing a terminal would act on: messages quote URLs, paths and labels.
    print(f"hypoprobe: {printable(' '.join(message.split()))}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code (the console script exits with it).

    Example::

        from hypoprobe.cli import main
        code = main(["report", "--snapshot", "snapshot.json", "--format", "json"])
    """
    try:
        from ._cli._common import join_option_values

        # Parsing inside the same guard: a loaded machine can still be importing or
        # parsing when Ctrl-C comes.
        parser = build_parser()
        args = parser.parse_args(join_option_values(sys.argv[1:] if argv is None else argv))
        code: int = args._run(args)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except HypoprobeError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # a bug: still one line, not a traceback, unless asked for
        if os.environ.get("HYPOPROBE_DEBUG"):
            raise
        try:
            what = f"{type(exc).__name__}: {str(exc)[:200]}"
        except Exception:  # an exception whose message itself fails
            what = type(exc).__name__
        return _fail(
            f"internal error ({what}); please report it with the command that caused it "
            "(HYPOPROBE_DEBUG=1 shows the traceback)",
            EXIT_INTERNAL,
        )
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
