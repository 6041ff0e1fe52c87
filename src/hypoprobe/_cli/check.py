"""``hypoprobe check``: preflight a configuration file before the server runs it.

Loads the TOML file the way the server will (``HYPOPROBE_CONFIG``: before the application
is imported), imports the modules the server would import (``--import``, the application's
entry module), then settles what is still pending, and prints one row per target:
hypothesis, target, state, reason. Exits 5 when any target failed, 2 when the file itself
is invalid or a module cannot be imported.

Example::

    $ hypoprobe check --config perf.toml --import myapp.wsgi
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import _load, _targets
from ..errors import ConfigurationError
from ._common import write_output

HELP = "preflight a TOML file: import the app, resolve every probe target, print its state"

EXAMPLES = """examples:
  hypoprobe check --config perf.toml
  hypoprobe check --config perf.toml --import myapp.wsgi -o check.txt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="the TOML file of hypotheses and probes"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="extend",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="modules the server imports (its entry module; repeatable; the current "
        "directory is on the import path)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )


def run(args: argparse.Namespace) -> int:
    from ..cli import EXIT_UNMEASURED, UsageError
    from ..render._table import grid

    if "" not in sys.path:
        sys.path.insert(0, "")  # as ``python -m``: the application's directory
    try:
        hyps = _load.load(args.config)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    for name in args.imports:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise UsageError(
                f"--import {name}: {type(exc).__name__}: {exc}; check the module path"
            ) from None
    _load.settle_pending(
        "not imported by "
        + (", ".join(args.imports) if args.imports else "anything")
        + "; pass the application's entry module with --import"
    )
    ids = {h.id for h in hyps}
    rows = [
        (t.hypothesis_id, t.target, t.state, t.reason or "-", t.where or "-")
        for t in _targets.all_targets()
        if t.hypothesis_id in ids and t.kind == _targets.CONFIG
    ]
    lines = grid(("hypothesis", "target", "state", "reason", "declared at"), rows)
    failed = sum(1 for r in rows if r[2] == _targets.FAILED)
    attached = sum(1 for r in rows if r[2] == _targets.ATTACHED)
    late = sum(1 for r in rows if r[3].startswith("late:"))
    summary = f"{len(rows)} targets: {attached} attached, {failed} failed"
    if late:
        summary += f" ({late} attached late: see docs/integrations.md#early-binding)"
    write_output("\n".join([*lines, "", summary]) + "\n", args.output)
    return EXIT_UNMEASURED if failed else 0
