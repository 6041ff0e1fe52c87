"""What one callable adds over another, measured so that a busy machine cannot fake it.

Both callables run in *interleaved rounds*: each round times a batch of the bare callable
and a batch of the probed one back to back (alternating which goes first, so a drift in
the machine's speed cancels), and the figure is the **median over rounds** of the paired
per-call difference. Rounds in which either batch was interrupted (a batch over twice as
long as the lower quartile of its side: the scheduler gave the core away for a time
slice) are left out; on a machine so busy that most rounds are interrupted, more
rounds are run until enough are clean, or the time cap takes all of them.

The batch size is calibrated first: calls are added until a batch of the probed callable
takes at least ``BATCH_NS``, so the clock's resolution and the timing calls weigh
nothing, and no batch is so long that the scheduler interrupts most of them. Rounds then
continue until the figure is settled: the 95% interval of the median (distribution-free,
from order statistics) is narrow enough (``PRECISION`` of the bare or the added cost, or
``FLOOR_NS``), or lies wholly on one side of a budget the caller is judging, or the time
cap is reached. ``FLOOR_NS`` is the documented minimum resolution: differences smaller
than that are within the noise of the calling loop itself.

Used by the ``probe_overhead`` pytest fixture and by the self-cost calibration; nothing
here touches hypoprobe's recording state.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BATCH_NS", "FLOOR_NS", "Measured", "measure"]

#: A probed batch lasts at least this long (200 µs): the clock's granularity is negligible.
BATCH_NS = 200_000
#: The minimum resolution (ns per call): below it, differences are loop noise.
FLOOR_NS = 2.0
#: Rounds stop once the 95% interval's half-width is within this fraction of the bare cost
#: or of the added cost, whichever is larger.
PRECISION = 0.02
MIN_ROUNDS = 15
#: A batch this much slower than its side's lower quartile was interrupted: its round is
#: left out.
DISTURBED = 1.0
#: At least this fraction of MIN_ROUNDS must be undisturbed before the rounds may stop.
MIN_KEPT = 0.6
MAX_ROUNDS = 400
#: Time cap of one measurement (both callables, all rounds), in seconds.
MAX_SECONDS = 3.0
_Z95 = 1.959964
_clock = time.perf_counter_ns


@dataclass(frozen=True)
class Measured:
    """The added cost per call of ``probed`` over ``bare``, with its 95% interval.

    Example::

        m = measure(lambda: probed(1), lambda: bare(1))
        print(f"{m.added_ns:.0f} ns per call (±{m.resolution_ns:.0f}), bare {m.bare_ns:.0f} ns")
    """

    bare_ns: float
    probed_ns: float
    added_ns: float
    low_ns: float
    high_ns: float
    #: Rounds the figures are medians of: the undisturbed ones (all, if too few were).
    rounds: int
    calls_per_round: int
    seconds: float

    @property
    def resolution_ns(self) -> float:
        """Half the 95% interval of ``added_ns``, never below :data:`FLOOR_NS`."""
        return max(FLOOR_NS, (self.high_ns - self.low_ns) / 2)

    @property
    def ratio(self) -> float:
        """Added cost / bare cost (``inf`` when the bare call costs nothing measurable)."""
        return self.added_ns / self.bare_ns if self.bare_ns > 0 else math.inf


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """(median, low, high): the median and its distribution-free 95% interval.

    The interval is between order statistics ``n/2 ∓ 1.96·√n/2`` (the binomial
    approximation); it needs no assumption about the noise's distribution.

    Example::

        assert median_interval([1.0, 2.0, 3.0]) == (2.0, 1.0, 3.0)
    """
    s = sorted(values)
    n = len(s)
    half = _Z95 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return _median(s), s[lo], s[max(lo, hi)]


def _undisturbed(bare_t: list[float], probed_t: list[float]) -> list[int]:
    """Rounds in which neither batch was interrupted: each under ``1 + DISTURBED`` times
    its side's lower quartile. A batch the scheduler preempted lasts a time slice longer
    (milliseconds, several times a batch); a neighbour slowing the core (at most about
    twofold) is not an interruption, and every round shares it."""
    bare_limit = _lower_quartile(bare_t) * (1 + DISTURBED)
    probed_limit = _lower_quartile(probed_t) * (1 + DISTURBED)
    return [
        i
        for i, (b, p) in enumerate(zip(bare_t, probed_t, strict=True))
        if b <= bare_limit and p <= probed_limit
    ]


def _lower_quartile(values: list[float]) -> float:
    return sorted(values)[len(values) // 4]


def _batch(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], n: int) -> int:
    loop = range(n)
    if kwargs:
        t0 = _clock()
        for _ in loop:
            fn(*args, **kwargs)
        return _clock() - t0
    t0 = _clock()
    for _ in loop:
        fn(*args)
    return _clock() - t0


def _calls_per_batch(
    bare: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], batch_ns: int
) -> int:
    n = 1
    while True:
        took = min(_batch(bare, args, kwargs, n) for _ in range(3))
        if took >= batch_ns or n >= 1 << 24:
            return n
        # aim a little past the target, at most 10x per step (the first batches are noisy)
        n = max(n + 1, min(n * 10, math.ceil(n * 1.2 * batch_ns / max(took, 1))))


def measure(
    probed: Callable[..., Any],
    bare: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    settled: Callable[[float, float, float], bool] | None = None,
    batch_ns: int = BATCH_NS,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    max_seconds: float = MAX_SECONDS,
    precision: float = PRECISION,
) -> Measured:
    """Measure ``probed(*args, **kwargs)`` against ``bare(*args, **kwargs)``, per call.

    ``settled(low_ns, high_ns, bare_ns)``, if given, ends the rounds early once the 95%
    interval of the added cost decides the caller's question (a budget wholly above or
    below it).
    The garbage collector is paused while timing, as ``timeit`` does.

    Example::

        m = measure(probed_fn, probed_fn.__wrapped__, (42,))
    """
    kw = kwargs or {}
    started = time.monotonic()
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):  # warm both paths: caches, the probe's first-call slow path
            probed(*args, **kw)
            bare(*args, **kw)
        # sized on the probed side, the longer: a long batch is one the scheduler interrupts
        n = _calls_per_batch(probed, args, kw, batch_ns)
        bare_t: list[float] = []
        probed_t: list[float] = []
        diffs: list[float] = []
        while True:
            if len(diffs) % 2:
                p = _batch(probed, args, kw, n)
                b = _batch(bare, args, kw, n)
            else:
                b = _batch(bare, args, kw, n)
                p = _batch(probed, args, kw, n)
            bare_t.append(b / n)
            probed_t.append(p / n)
            diffs.append((p - b) / n)
            rounds = len(diffs)
            if rounds < min_rounds:
                continue
            capped = rounds >= max_rounds or time.monotonic() - started >= max_seconds
            kept = _undisturbed(bare_t, probed_t)
            if len(kept) < min_rounds * MIN_KEPT and not capped:
                continue  # too many rounds were interrupted: more rounds, not a guess
            if len(kept) < 3:
                kept = list(range(rounds))
            kept_diffs = [diffs[i] for i in kept]
            mid, low, high = median_interval(kept_diffs)
            bare_mid = _median([bare_t[i] for i in kept])
            probed_mid = _median([probed_t[i] for i in kept])
            if capped or (high - low) / 2 <= max(FLOOR_NS, precision * max(bare_mid, abs(mid))):
                break
            if settled is not None and settled(low, high, bare_mid):
                break
    finally:
        if gc_was_on:
            gc.enable()
    return Measured(
        bare_ns=bare_mid,
        probed_ns=probed_mid,
        added_ns=mid,
        low_ns=low,
        high_ns=high,
        rounds=len(kept),
        calls_per_round=n,
        seconds=time.monotonic() - started,
    )
