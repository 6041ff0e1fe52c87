"""Helpers for tests: a fake clock and a reset, for your tests and hypoprobe's own.

:func:`fake_clock` makes time move only when the test says so, so the durations hypoprobe
records are exact and no test sleeps; :func:`reset` forgets everything recorded so far
(counts, exemplars, slowest requests, fault counts) while hypotheses and probes stay
declared, so each test starts from zero.

Example::

    import hypoprobe
    from hypoprobe import testing

    def test_the_query_dominates() -> None:
        testing.reset()
        query = hypoprobe.probe("PERF-1", name="query")
        with testing.fake_clock() as clock:
            with hypoprobe.endpoint("GET /campaigns"):
                with query:
                    clock.advance_seconds(0.3)
                clock.advance_seconds(0.1)
        snap = hypoprobe.snapshot()
        (fast,) = [m for m in snap.moments if m.hypothesis == "PERF-1" and not m.slow]
        assert fast.probe_seconds == 0.3
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._config import HOLDER, configure
from ._core import _clock, _state
from ._core._storage import STORAGE
from .errors import ConfigurationError

__all__ = ["FakeClock", "fake_clock", "reset"]


class FakeClock:
    """A deterministic clock whose time only moves when a test says so.

    Calling it returns monotonic nanoseconds (what ``hypoprobe.configure(clock=...)``
    takes); :meth:`wall` returns the matching Unix seconds. Each thread, and each asyncio
    task, has its own time (it lives in a ContextVar), so concurrent workers advance their
    own clocks and the durations they record are exactly the amounts they advanced by.

    Example::

        clock = FakeClock()
        clock.advance_seconds(1.5)
        assert clock() == FakeClock.START + 1_500_000_000
        assert clock.wall() == FakeClock.WALL_START + 1.5
    """

    #: The monotonic time every context starts at, in nanoseconds.
    START = 1_000_000_000_000
    #: The wall time that corresponds to :attr:`START` (2023-11-14T22:13:20Z).
    WALL_START = 1_700_000_000.0

    def __init__(self) -> None:
        self._now: ContextVar[int] = ContextVar(f"fake_clock_{id(self)}", default=self.START)

    def __call__(self) -> int:
        return self._now.get()

    def wall(self) -> float:
        """Unix seconds: :attr:`WALL_START` plus the time advanced in this context."""
        return self.WALL_START + (self._now.get() - self.START) / 1e9

    def advance(self, ns: int) -> None:
        """Move the calling thread's (or task's) time forward by ``ns`` nanoseconds."""
        self._now.set(self._now.get() + ns)

    def advance_seconds(self, seconds: float) -> None:
        """Move the calling thread's (or task's) time forward by ``seconds``."""
        self.advance(round(seconds * 1e9))


@contextmanager
def fake_clock(clock: FakeClock | None = None, *, wall: bool = True) -> Iterator[FakeClock]:
    """Make ``clock`` (a new :class:`FakeClock` by default) hypoprobe's clock, then restore.

    Durations read it; with ``wall=True`` (the default) so do instants: exemplar and
    slowest-request timestamps, the slowest-requests window, expiry, ``created_at``.

    Example::

        with fake_clock() as clock:
            with hypoprobe.endpoint("GET /x"):
                clock.advance_seconds(0.25)
    """
    clock = clock if clock is not None else FakeClock()
    previous = HOLDER.config.clock
    configure(clock=clock)
    previous_wall = _clock.use_wall(clock.wall) if wall else None
    try:
        yield clock
    finally:
        configure(clock=previous)
        if previous_wall is not None:
            _clock.use_wall(previous_wall)


def reset() -> None:
    """Forget everything recorded in this process; hypotheses and probes stay declared.

    Counts start from zero (as in a freshly forked worker), and exemplars, slowest
    requests and fault counts are forgotten. Raises :class:`~hypoprobe.ConfigurationError`
    in multi-process mode, where the counts live in files other processes read too.

    Example::

        from hypoprobe import testing

        testing.reset()
        assert all(e.duration.count == 0 for e in hypoprobe.snapshot().endpoints)
    """
    if STORAGE.directory is not None:
        raise ConfigurationError(
            "hypoprobe.testing.reset() forgets this process' in-memory counts; in "
            "multi-process mode (multiproc_dir) they live in shared files: use a fresh "
            "directory per test instead"
        )
    _state.reset()
