"""A one-line progress bar on a terminal; a single summary line anywhere else."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Call it with (done, total); call :meth:`close` at the end.

    Example::

        bar = ProgressBar("load")
        for i in range(100):
            bar(i + 1, 100)
        bar.close()
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self._tty = self.stream.isatty()
        self._shown = -1.0
        self._last = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        now = time.monotonic()
        # Redraw at most ten times a second: a terminal write per request would cost more
        # than the requests themselves on a fast app.
        if self._tty and (now - self._shown >= 0.1 or done == total):
            self._shown = now
            self.stream.write("\r" + self._line(done, total, now))
            self.stream.flush()

    def _line(self, done: int, total: int, now: float) -> str:
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        return f"  {self.label} [{bar}] {done}/{total}  {now - self.start:5.1f} s"

    def close(self) -> None:
        done, total = self._last
        line = self._line(done, total, time.monotonic())
        self.stream.write(("\r" + line if self._tty else line) + "\n")
        self.stream.flush()
