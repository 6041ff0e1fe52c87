"""The one error every source raises: what went wrong, what to do, and the CLI's exit code."""

from __future__ import annotations

from ..errors import HypoprobeError

__all__ = ["EXIT_NO_DATA", "EXIT_UNREACHABLE", "EXIT_USAGE", "SourceError"]

#: Nothing to read was given, or an argument such as the window is invalid.
EXIT_USAGE = 2
#: The source could not be reached, answered with an HTTP error, or Prometheus said "error".
EXIT_UNREACHABLE = 3
#: The source answered, but holds no hypoprobe data (or none in the window).
EXIT_NO_DATA = 4


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
