"""The one route to time: monotonic nanoseconds for durations, wall seconds for instants.

Durations come from ``Config.clock`` (``time.perf_counter_ns`` unless
``hypoprobe.configure(clock=...)`` says otherwise), which the request scope and the probes
copy into their module globals for the hot path. Instants (exemplar and slowest-request
timestamps, the slowest-requests window, a snapshot's ``created_at``, expiry deadlines)
come from :func:`wall`. :func:`hypoprobe.testing.fake_clock` replaces both.

Example::

    previous = _clock.use_wall(lambda: 1_700_000_000.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__: list[str] = []

_wall: Callable[[], float] = time.time


def wall() -> float:
    """Wall time, Unix seconds."""
    return _wall()


def use_wall(fn: Callable[[], float]) -> Callable[[], float]:
    """Make ``fn`` the wall clock; return the previous one (to restore it)."""
    global _wall
    previous, _wall = _wall, fn
    return previous
