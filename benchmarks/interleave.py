"""Interleaved rounds: cases timed in turn, so machine noise hits them all alike.

On a machine shared with other work, timing case A for a second and then case B for a
second compares two different machines. Here every round times each case once, in an
order that alternates between rounds (ABC, CBA, ...) so slow drifts cancel, and a budget is
judged on the *per-round* ratio of added costs, ``(case - bare) / (reference - bare)``: its
median over the rounds, with the quartiles as its spread.

Rounds are timed in the thread's CPU time (``time.thread_time_ns``), not wall time: on a
machine whose cores are oversubscribed, wall time mostly measures how often the process
was preempted, which has nothing to do with the code. CPU time still carries the cache
and frequency effects of the neighbours, which is what the spread reports.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Ratio:
    """A budget's measured ratio over interleaved rounds."""

    median: float
    low: float  # first quartile
    high: float  # third quartile
    rounds: int
    #: Added cost per unit (call or request) in seconds, case and reference (medians).
    case_added: float
    reference_added: float

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
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


def ratio(times: dict[str, list[float]], case: str, reference: str, bare: str, per: int) -> Ratio:
    """Per-round ratio of added costs; ``per``: units (calls, requests) per round."""
    ratios = []
    for c, r, b in zip(times[case], times[reference], times[bare], strict=True):
        if r - b > 0:
            ratios.append((c - b) / (r - b))
    if len(ratios) < 4:
        raise RuntimeError(f"{reference} was not measurably dearer than {bare}")
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    bare_median = statistics.median(times[bare])
    return Ratio(
        q2,
        q1,
        q3,
        len(ratios),
        (statistics.median(times[case]) - bare_median) / per,
        (statistics.median(times[reference]) - bare_median) / per,
    )
