"""Interleaved rounds: cases timed in turn, so machine noise hits them all alike.

On a machine shared with other work, timing case A for a second and then case B for a
second compares two different machines. Here every round times each case once, in an
order that alternates between rounds (ABC, CBA, ...) so slow drifts cancel, and a budget is
judged on the *paired* added costs of each round, ``case - bare`` and ``reference - bare``:
the ratio of their medians over the rounds, with a bootstrap interval as its spread.

Why not the median of the per-round ratios ``(case - bare) / (reference - bare)``: when a
round's noise is as large as the reference's added cost (a framework request of 60 us
that a middleware makes 5 us dearer), that ratio's denominator is small or negative in
many rounds, and the median of such ratios sits well below the true one (simulated with
a true ratio of 1.33 and the noise of the Django rounds: 1.06 to 1.26; dropping the rounds
with a negative denominator only hides it). Medians of the paired differences are robust
to the same noise and their ratio is not biased by it (tests/test_interleave.py).

Rounds are timed in the thread's CPU time (``time.thread_time_ns``), not wall time: on a
machine whose cores are oversubscribed, wall time mostly measures how often the process
was preempted, which has nothing to do with the code. CPU time still carries the cache
and frequency effects of the neighbours, which is what the spread reports.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Bootstrap resamples behind a ratio's interval; seeded, so a run's figures repeat.
RESAMPLES = 400


@dataclass(frozen=True)
class Ratio:
    """A budget's measured ratio over interleaved rounds."""

    median: float  # median(case - bare) / median(reference - bare), over the rounds
    low: float  # 5th percentile of the ratio's bootstrap distribution
    high: float  # 95th percentile
    rounds: int
    #: Added cost per unit (call or request) in seconds, case and reference: the medians
    #: of the paired per-round differences (so ``case_added / reference_added == median``).
    case_added: float
    reference_added: float

    @property
    def spread(self) -> float:
        """Width of the 90% bootstrap interval relative to the ratio."""
        return (self.high - self.low) / self.median if self.median else float("inf")


def run(cases: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each case; each round times every case once, alternating order."""
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.thread_time_ns
    for fn in cases.values():  # warm-up: caches, plans, shards
        fn()
    gc.collect()
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            fn = cases[name]
            t0 = clock()
            fn()
            times[name].append((clock() - t0) / 1e9)
    return times


def ratio(
    times: dict[str, list[float]],
    case: str,
    reference: str,
    bare: str,
    per: int,
    *,
    resamples: int = RESAMPLES,
) -> Ratio:
    """Ratio of the median paired added costs; ``per``: units (calls, requests) per round.

    The interval resamples whole rounds (each with its three timings), so it carries the
    pairing and the noise the rounds had.
    """
    added = [c - b for c, b in zip(times[case], times[bare], strict=True)]
    added_ref = [r - b for r, b in zip(times[reference], times[bare], strict=True)]
    median = statistics.median
    ref = median(added_ref)
    if ref <= 0:
        raise RuntimeError(f"{reference} was not measurably dearer than {bare}")
    n = len(added)
    rng = random.Random(0)
    estimates = []
    for _ in range(resamples):
        picked = [rng.randrange(n) for _ in range(n)]
        r = median([added_ref[i] for i in picked])
        if r > 0:
            estimates.append(median([added[i] for i in picked]) / r)
    cuts = statistics.quantiles(estimates, n=20) if len(estimates) > 1 else [float("inf")] * 19
    point = median(added)
    return Ratio(point / ref, cuts[0], cuts[-1], n, point / per, ref / per)
