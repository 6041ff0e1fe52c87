"""Float counters that never step back by a rounding.

A float total over shards is a left fold in a fixed order. Folding a retired thread's shard
into the retired sum, or a dead worker's file into the archive, regroups those additions,
and floating-point addition is not associative: the same squared seconds (the float sums
behind the share's confidence interval; counts and durations are integers) can then add up
to a value an ulp or so *below* the one reported before. Prometheus and OpenTelemetry take
any decrease of a counter for a reset and count its whole value again, so one ulp would
become a spike in ``increase()`` of those sums, and a confidence interval far too wide.
Two guards keep every total steady:

* :class:`SteadyFloats`, per process: a collection never reports a float below what the
  previous one reported when the difference is a rounding (far smaller than any count);
* :func:`raise_archive`, at compaction, shared by every process of a host: the new archive's
  sums are raised by the ulps the regrouping lost, so whichever worker answers the next
  scrape reports no less than any worker did before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._multiproc import Totals

__all__: list[str] = []

#: A step back of at most this fraction of the value is rounding, not a reset: regrouping n
#: additions moves a sum by at most about n ulps of 2.2e-16, while a reset or a lost file
#: takes away whole counts.
ROUNDING = 1e-9

#: Raising an archive sum by the gap lost converges in one round; a few more cover rounding
#: in the fold that follows it.
_ROUNDS = 8


class SteadyFloats:
    """Remembers the float totals last reported and holds each at least there.

    Example::

        steady = SteadyFloats()
        steady.hold([6.6000000000000005])   # [6.6000000000000005]
        steady.hold([6.6])                  # [6.6000000000000005]: an ulp, not a reset
        steady.hold([0.5])                  # [0.5]: a real reset passes
    """

    def __init__(self) -> None:
        self._last: list[float] = []
        self._lock = threading.Lock()

    def hold(self, floats: list[float]) -> list[float]:
        """``floats``, each raised to the last reported value where it fell by a rounding."""
        with self._lock:
            last = self._last
            held = [
                was if now < was and was - now <= was * ROUNDING else now
                for now, was in zip(floats, last, strict=False)
            ]
            held.extend(floats[len(held) :])
            self._last = held
            return list(held)

    def forget(self) -> None:
        """Start over (the counts were reset on purpose)."""
        with self._lock:
            self._last = []


def raise_archive(archive: Totals, before: Totals, after_of: Callable[[Totals], Totals]) -> None:
    """Raise ``archive``'s float sums until ``after_of(archive)`` is nowhere below ``before``.

    ``before`` is the host's total as readers fold it before the compaction (the old archive,
    then every shard file in name order); ``after_of(archive)`` folds it as they will after
    (the new archive, then the files it did not absorb, in the same order). A sum is raised
    only by what the regrouping lost: a few ulps.
    """
    for _ in range(_ROUNDS):
        after = after_of(archive)
        short: list[tuple[int, float]] = []
        for key, (_, _, _, offset, width) in archive.index.items():
            was = before.index.get(key)
            now = after.index.get(key)
            if was is None or now is None or was[4] != width or now[4] != width:
                continue
            for j in range(width):
                want, got = before.floats[was[3] + j], after.floats[now[3] + j]
                if got < want:
                    short.append((offset + j, want - got))
        if not short:
            return
        for slot, gap in short:
            value = archive.floats[slot]
            archive.floats[slot] = max(value + gap, math.nextafter(value, math.inf))
