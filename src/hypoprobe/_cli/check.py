"""``hypoprobe check``: preflight a configuration file before the server runs it.

Loads the TOML file the way the server will (``HYPOPROBE_CONFIG``: before the application
is imported), imports the modules the server would import, then settles what is still
pending, and prints one row per target: hypothesis, target, state, reason. Exits 5 when any
target failed, 2 when the file itself is invalid or a module cannot be imported.

It takes ``hypoprobe run``'s options (each also from the environment: ``HYPOPROBE_CONFIG``,
...), so a ``run`` command line preflights by changing ``run`` to ``check``: given the
command after ``--``, the application module of a ``gunicorn`` or ``uvicorn`` command is
imported the way the server would import it (``--chdir`` / ``--app-dir`` and
``--pythonpath`` on ``sys.path``). ``--import`` names modules explicitly; the working
directory is on the import path, as ``hypoprobe run`` puts it on the command's.

Example::

    $ hypoprobe check --config perf.toml --import myapp.wsgi
    $ hypoprobe check --config perf.toml -- gunicorn -w 2 --chdir /srv/app wsgi:app
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import _load
from .._core import _targets
from ..errors import ConfigurationError
from ..run import _options
from ._common import add_output_file_argument, import_modules, write_output

HELP = "preflight a TOML file: import the app, resolve every probe target, print its state"

EXAMPLES = """examples:
  hypoprobe check --config perf.toml
  hypoprobe check --config perf.toml --import myapp.wsgi -o check.txt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--chdir",
        metavar="DIR",
        help="change to DIR and put it on the import path before importing, as gunicorn's "
        "--chdir does (taken from a gunicorn or uvicorn command after -- too)",
    )
    parser.add_argument(
        "--pythonpath",
        action="append",
        default=[],
        metavar="DIR[,DIR]",
        help="more directories on the import path (as gunicorn's --pythonpath)",
    )
    add_output_file_argument(parser)
    # hypoprobe run's options and its command, so that `run` can be replaced by `check`;
    # the metrics options are checked as run checks them, and otherwise unused here.
    _options.add_arguments(parser)


@dataclass
class _Server:
    """What a server command would import, and from where."""

    imports: list[str] = field(default_factory=list)
    chdir: str | None = None
    pythonpath: list[str] = field(default_factory=list)


#: ``module:variable`` (or ``module:factory()``): gunicorn's and uvicorn's APP argument.
_APP = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(.*\))?")
#: Options of the servers whose value is a directory for the import path.
_DIR_OPTIONS = {"--chdir": "chdir", "--app-dir": "chdir", "--pythonpath": "pythonpath"}


def _server(command: Sequence[str]) -> _Server:
    """The application module of a gunicorn / uvicorn command line, and its directories."""
    args = list(command)
    name = os.path.basename(args[0]) if args else ""
    if name.startswith("python") and len(args) > 2 and args[1] == "-m":
        name, args = args[2], args[2:]
    found = _Server()
    if name not in ("gunicorn", "uvicorn"):
        return found
    i = 1
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        if key in _DIR_OPTIONS:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if _DIR_OPTIONS[key] == "chdir":
                found.chdir = value
            else:
                found.pythonpath += [p for p in value.split(",") if p]
        elif not arg.startswith("-") and _APP.fullmatch(arg):
            found.imports.append(arg.partition(":")[0])
        i += 1
    return found


def _config(args: argparse.Namespace) -> str:
    from ..cli import UsageError

    given = args.config or os.environ.get(_options.ENVIRONMENT["config"], "").strip()
    if not given:
        raise UsageError("check needs --config FILE (or HYPOPROBE_CONFIG)")
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if args.command:
        _options.parse(args)  # the same validation as hypoprobe run's
    return str(given)


def _import_path(chdir: str | None, pythonpath: Sequence[str]) -> None:
    """The server's import path at the moment it imports the application."""
    from ..cli import UsageError

    if chdir is not None:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise UsageError(f"--chdir {chdir}: {exc.strerror or exc}") from None
    for entry in [*pythonpath, os.getcwd()][::-1]:
        path = os.path.abspath(entry)
        if path not in sys.path:
            sys.path.insert(0, path)


def run(args: argparse.Namespace) -> int:
    from ..errors import EXIT_UNMEASURED, UsageError
    from ..render._table import grid

    config = os.path.abspath(_config(args))
    output = None if args.output in (None, "-") else os.path.abspath(args.output)
    server = _server(args.command or ())
    pythonpath = [p for entry in args.pythonpath for p in entry.split(",") if p]
    # Only this file: hypoprobe's import loaded $HYPOPROBE_CONFIG, which may name another.
    _load.unload()
    try:
        # First, as the bootstrap does: the application's directory is not on the path yet.
        hyps = _load.load(config)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    _import_path(args.chdir or server.chdir, [*pythonpath, *server.pythonpath])
    imports = list(dict.fromkeys([*args.imports, *server.imports]))
    import_modules(imports)
    _load.settle_pending(
        "not imported by "
        + (", ".join(imports) if imports else "anything")
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
    write_output("\n".join([*lines, "", summary]) + "\n", output or args.output)
    return EXIT_UNMEASURED if failed else 0
