"""The exception tree of hypoprobe, and the command line's exit codes.

Every error hypoprobe raises on purpose derives from :class:`HypoprobeError`. Errors are
raised at configuration time only (decoration, hypothesis registration, ``configure()``,
CLI arguments); a probe never raises on its own account while the application runs.

The tree (``exit_code`` is what ``hypoprobe`` exits with when the error reaches it)::

    HypoprobeError                      exit 3 unless a subclass says otherwise
    ├── ConfigurationError (ValueError) a hypothesis, probe, scope or setting is wrong
    ├── SnapshotError (ValueError)      a snapshot document is empty, corrupt or too new
    ├── SourceError                     a report source failed; exit 2, 3 or 4 per instance
    ├── NoDataError                     nothing to judge                            exit 4
    └── UsageError                      CLI arguments unusable after parsing         exit 2

Exit codes of the ``hypoprobe`` command (documented in ``docs/cli.md``): :data:`EXIT_OK`,
:data:`EXIT_INTERNAL` (a bug in hypoprobe), :data:`EXIT_USAGE`, :data:`EXIT_SOURCE`,
:data:`EXIT_NO_DATA`, :data:`EXIT_UNMEASURED`.

Example::

    import hypoprobe

    try:
        hypoprobe.hypothesis("not an id", claim="...", endpoint="GET /x", min_share=0.5)
    except hypoprobe.ConfigurationError as exc:
        print(exc)
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_NO_DATA",
    "EXIT_OK",
    "EXIT_SOURCE",
    "EXIT_UNMEASURED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ConfigurationError",
    "HypoprobeError",
    "NoDataError",
    "SnapshotError",
    "SourceError",
    "UsageError",
]

#: The command did its work (verdicts, comparison or snapshot written).
EXIT_OK = 0
#: A bug in hypoprobe: an unexpected exception, reported in one line.
EXIT_INTERNAL = 1
#: Usage: a bad or missing argument, an unwritable output file, an invalid window.
EXIT_USAGE = 2
#: A source is unreachable or failed (connection refused, HTTP or Prometheus error).
EXIT_SOURCE = 3
#: The sources' name for :data:`EXIT_SOURCE`.
EXIT_UNREACHABLE = EXIT_SOURCE
#: No data: a non-hypoprobe ``/metrics``, an empty or corrupt snapshot, an unknown
#: hypothesis, a window without requests.
EXIT_NO_DATA = 4
#: ``hypoprobe check`` found a failed probe target, or ``report --fail-on-unmeasured``
#: printed an UNMEASURED verdict.
EXIT_UNMEASURED = 5


class HypoprobeError(Exception):
    """Base class of every error hypoprobe raises on purpose.

    ``exit_code`` is the exit code of the ``hypoprobe`` command when the error reaches it.

    Example::

        try:
            hypoprobe.Snapshot.from_json("{}")
        except hypoprobe.HypoprobeError:
            ...
    """

    exit_code: int = EXIT_SOURCE


class ConfigurationError(HypoprobeError, ValueError):
    """A hypothesis, probe, scope or setting is misconfigured.

    It is also a :class:`ValueError`, so code that guards configuration with
    ``except ValueError`` keeps working.

    Example::

        try:
            hypoprobe.hypothesis("PERF-1", claim="c", endpoint="GET /", min_share=2.0)
        except hypoprobe.ConfigurationError as exc:
            assert "min_share" in str(exc)
    """


class SnapshotError(HypoprobeError, ValueError):
    """A snapshot document is empty, corrupt, or of an unsupported schema version.

    Example::

        try:
            hypoprobe.Snapshot.from_json("not json")
        except hypoprobe.SnapshotError as exc:
            print(exc)
    """


class SourceError(HypoprobeError):
    """A report source could not deliver a snapshot; ``exit_code`` says which way it failed.

    The message is one line that names the problem and what to do about it, ready to be
    printed on stderr as-is. ``exit_code`` is 3 when the source is unreachable or answered
    with an error (HTTP error, Prometheus ``status: error``), 4 when it answered but holds
    no hypoprobe data (a non-hypoprobe ``/metrics``, a window with no data, an empty or
    corrupt snapshot file), 2 when the call itself was unusable (no URL, a bad window).

    Example::

        from hypoprobe.sources import SourceError, scrape_metrics

        try:
            snap = scrape_metrics(["http://127.0.0.1:9100/metrics"])
        except SourceError as exc:
            print(f"hypoprobe: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
    """

    def __init__(self, message: str, exit_code: int = EXIT_UNREACHABLE) -> None:
        # Messages go to a terminal as one line: fold whatever a server said onto it.
        one_line = " ".join(str(message).split())
        super().__init__(one_line)
        self.exit_code = exit_code


class NoDataError(HypoprobeError):
    """There is nothing to judge: an unknown hypothesis or endpoint, or no requests at all.

    Example::

        try:
            analysis.report(snapshot, hypotheses=["PERF-999"])
        except analysis.NoDataError as exc:
            print(exc)
    """

    exit_code = EXIT_NO_DATA


class UsageError(HypoprobeError):
    """A subcommand found its arguments unusable after parsing (exit code 2).

    Example::

        raise UsageError("--window must be positive; pass e.g. --window 3600")
    """

    exit_code = EXIT_USAGE
