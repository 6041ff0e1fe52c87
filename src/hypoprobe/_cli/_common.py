"""What the subcommands share: source arguments, durations and times, progress, output."""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from .. import sources
from ..errors import UsageError
from ..model import MAX_INSTANT, Snapshot
from ..render import FORMATS
from ..render._common import printable
from ..sources.scrape import MAX_WINDOW_SECONDS

__all__ = [
    "Progress",
    "add_filter_arguments",
    "add_output_arguments",
    "add_output_file_argument",
    "add_source_arguments",
    "import_modules",
    "join_option_values",
    "load_source",
    "output_format",
    "parse_time",
    "parse_window",
    "write_output",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")


def parse_window(text: str) -> float:
    """A duration such as ``60s``, ``5m``, ``1h30m``, ``2d`` or plain seconds, in seconds."""
    raw = text.strip()
    if raw.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"the window must be positive, got {text!r}; use e.g. 60s, 5m or 1h"
        )
    try:
        seconds = float(raw)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _PART.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or not raw:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration; use e.g. 60s, 5m, 1h or 1h30m"
            ) from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"the window must be positive, got {text!r}")
    if not seconds <= MAX_WINDOW_SECONDS:  # also inf (and NaN, which failed above)
        raise argparse.ArgumentTypeError(f"the window must be at most 10 years, got {text!r}")
    return seconds


def parse_time(text: str) -> float:
    """A point in time: Unix seconds, ISO 8601 (UTC unless it says otherwise) or ``now``."""
    raw = text.strip()
    if raw == "now":
        return time.time()
    try:
        when = float(raw)
    except ValueError:
        try:
            stamp = _dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a time; use Unix seconds or ISO 8601 such as 2026-11-23T14:00:00Z"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=_dt.timezone.utc)
        when = stamp.timestamp()
    # Also refuses inf and NaN: a time must be one a date (and Prometheus) can show.
    if not 0 <= when < MAX_INSTANT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time between 1970 and 9999")
    return when


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--snapshot FILE...`` | ``--metrics-url URL...`` | ``--prometheus URL``, and windows."""
    group = parser.add_argument_group("source (exactly one)")
    # Not required= here: a missing source gets a message saying which to give (and a
    # bare FILE.json is pointed to --snapshot), not argparse's list of options.
    sources = group.add_mutually_exclusive_group()
    sources.add_argument(
        "--snapshot",
        nargs="+",
        metavar="FILE",
        help="snapshot JSON files (hypoprobe.snapshot() or `hypoprobe snapshot`); merged",
    )
    sources.add_argument(
        "--metrics-url",
        nargs="+",
        metavar="URL",
        help="live /metrics endpoints to scrape (one or many); merged",
    )
    sources.add_argument(
        "--prometheus", metavar="URL", help="a Prometheus server's base URL (needs --window)"
    )
    parser.add_argument("stray", nargs="*", help=argparse.SUPPRESS)
    group.add_argument(
        "--window",
        type=parse_window,
        metavar="DURATION",
        help="with --metrics-url: scrape twice, this far apart, and use the difference; "
        "with --prometheus: the range to read (e.g. 60s, 1h)",
    )
    group.add_argument(
        "--at",
        type=parse_time,
        metavar="TIME",
        help="with --prometheus: end of the window (Unix seconds or ISO 8601; default now)",
    )


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hypothesis",
        action="extend",
        nargs="+",
        metavar="ID",
        help="only these hypotheses: --hypothesis A B, or the flag repeated (default: all)",
    )
    parser.add_argument("--endpoint", metavar="NAME", help="only this endpoint")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default=None,
        help="table (default), markdown (for the ticket), json or html (one file with plots); "
        "default: from the -o file's suffix (.md, .json, .html), else table",
    )
    add_output_file_argument(parser)


def add_output_file_argument(parser: argparse.ArgumentParser) -> None:
    """``-o FILE``: where :func:`write_output` writes (default: standard output)."""
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )


def import_modules(names: Iterable[str]) -> None:
    """Import each ``--import`` module; one that fails to import is a usage error (exit 2)."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise UsageError(
                f"--import {name}: {type(exc).__name__}: {exc}; check the module path"
            ) from None


#: Output file suffix -> format, when --format is not given.
_SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".json": "json"}
_SUFFIX_FORMATS.update({".html": "html", ".htm": "html", ".txt": "table"})


def output_format(args: argparse.Namespace) -> str:
    """``--format``, or the one the ``-o`` file's suffix names (``report.html``), or table."""
    if args.format:
        fmt: str = args.format
        return fmt
    if args.output and args.output != "-":
        return _SUFFIX_FORMATS.get(Path(args.output).suffix.lower(), "table")
    return "table"


#: Options whose value may start with "-" (a negative window is refused with a reason,
#: not argparse's "expected one argument").
VALUE_OPTIONS = ("--window", "--at", "--before", "--after")


#: The subcommands that have those options (``run`` passes its command line on untouched).
_WITH_VALUE_OPTIONS = ("report", "compare", "snapshot", "survey")


def join_option_values(argv: Sequence[str]) -> list[str]:
    """``--window -5s`` -> ``--window=-5s``, so the value reaches its own check.

    Only for the subcommands that have these options, and never after ``--``.
    """
    out: list[str] = []
    args = list(argv)
    if not args or args[0] not in _WITH_VALUE_OPTIONS:
        return args
    i = 0
    while i < len(args):
        if args[i] == "--":
            return out + args[i:]
        if args[i] in VALUE_OPTIONS and i + 1 < len(args) and args[i + 1].startswith("-"):
            value = args[i + 1]
            if value[1:2].isdigit() or value[1:2] == ".":
                out.append(f"{args[i]}={value}")
                i += 2
                continue
        out.append(args[i])
        i += 1
    return out


class Progress:
    """A one-line progress indicator on stderr, shown only on a terminal and only once a
    source has taken more than ``delay`` seconds. Call it with a short status line.

    Example::

        with Progress() as progress:
            snap = query_prometheus(url, 3600, progress=progress)
    """

    def __init__(self, stream: TextIO | None = None, delay: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._message = "reading the source"
        self._start = time.monotonic()
        self._shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, message: str) -> None:
        self._message = message

    def _tick(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            elapsed = time.monotonic() - self._start
            # The status quotes URLs as given: their control characters are shown, not obeyed.
            status = printable(" ".join(self._message.split()))
            self.stream.write(f"\r\x1b[Khypoprobe: {status} ({elapsed:.0f} s)")
            self.stream.flush()
            self._shown = True
            if self._stop.wait(0.25):
                return

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, name="hypoprobe-progress")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _check_source_options(args: argparse.Namespace) -> None:
    stray = getattr(args, "stray", None) or []
    if not (args.snapshot or args.metrics_url or args.prometheus):
        if stray:
            raise UsageError(
                f"snapshot files are given with --snapshot: try "
                f"`hypoprobe {args.command} --snapshot {' '.join(stray)}`"
            )
        raise UsageError(
            "no source given: pass --snapshot FILE..., --metrics-url URL... or "
            "--prometheus URL --window DURATION"
        )
    if stray:
        raise UsageError(f"unexpected argument {stray[0]!r}; see `hypoprobe {args.command} -h`")
    if args.prometheus and args.window is None:
        raise UsageError("--prometheus needs --window, e.g. --window 1h")
    if args.at is not None and not args.prometheus:
        raise UsageError("--at only applies to --prometheus")
    if args.snapshot and args.window is not None:
        raise UsageError("--window does not apply to --snapshot files")


def load_source(args: argparse.Namespace) -> Snapshot:
    """Read the snapshot the arguments name, with a progress indicator for slow sources."""
    _check_source_options(args)
    if args.snapshot:
        return sources.load_snapshot_files(args.snapshot)
    with Progress() as progress:
        if args.metrics_url:
            return sources.scrape_metrics(
                args.metrics_url, window_seconds=args.window, progress=progress
            )
        return sources.query_prometheus(args.prometheus, args.window, at=args.at, progress=progress)


def _discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so the interpreter's last flush of what could
    not be written fails silently instead of printing a second error after ours."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture it)
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def write_output(text: str, path: str | None) -> None:
    """Write to ``path`` (``-`` or None: standard output)."""
    if path is None or path == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise  # the reader went away (``| head``): the command line handles it
        except OSError as exc:  # ``> /dev/full``, a full or vanished volume
            _discard_stdout()
            raise UsageError(
                f"cannot write the output: {exc.strerror or exc}; free some space or "
                "write elsewhere with -o FILE"
            ) from None
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(
            f"cannot write {path!r}: {reason}; choose a writable path for -o"
        ) from None
