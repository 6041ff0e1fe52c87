"""Bucket layouts: which bucket a recorded integer falls into, and what its bounds are.

Every histogram stores integers in a raw unit (nanoseconds, parts per billion, calls) in
buckets with *inclusive integer upper bounds*, found with one ``bisect`` in C. Because the
values are integers, "value <= integer bound" is exact, so every bound exposed to
Prometheus or OpenTelemetry is an exact aggregate of internal buckets, never an
interpolation.

The duration layout is the OpenTelemetry base-2 exponential layout at scale 4 (Prometheus
native-histogram schema 4): bucket ``k`` holds ``(2**((k-1)/16), 2**(k/16)]`` nanoseconds.
A bucket's upper bound is at most 2**(1/16) ~ 4.43% above its lower bound, so any value is
known to within 4.5% of its true value (half that from the bucket's geometric middle).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

__all__: list[str] = []

#: Scale of the duration layout: 2**SCALE buckets per power of two.
DURATION_SCALE = 4
_PER_OCTAVE = 1 << DURATION_SCALE
#: Exponential indices of the first and last finite duration bounds: 2**(159/16) ns is
#: 980 ns (just below 1 microsecond), 2**(672/16) ns = 2**42 ns is 73 minutes (above 1 hour).
DURATION_FIRST_INDEX = 159
DURATION_LAST_INDEX = 672


def _floor_root_of_power_of_two(k: int) -> int:
    """Return floor(2 ** (k / 16)) exactly, with integer arithmetic only."""
    target = 1 << k
    x = int(2.0 ** (k / _PER_OCTAVE))
    while (x + 1) ** _PER_OCTAVE <= target:
        x += 1
    while x**_PER_OCTAVE > target:
        x -= 1
    return x


@dataclass(frozen=True)
class BucketLayout:
    """A fixed, ordered set of inclusive integer upper bounds plus an overflow bucket.

    A series with this layout occupies ``slots`` consecutive integers in a shard: one count
    per bucket, then the exact integer sum of the recorded raw values.
    """

    name: str
    bounds: tuple[int, ...]
    #: Divide a raw value by ``divisor`` to get the natural unit (seconds, ratio, calls);
    #: dividing (rather than multiplying by 1e-9) keeps bounds such as 0.15 exact in text.
    divisor: int
    #: Indices (into ``bounds``) that the classic Prometheus exposition shows by default.
    default_exposed: tuple[int, ...]
    natural_bounds: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "natural_bounds", tuple(b / self.divisor for b in self.bounds))

    @property
    def buckets(self) -> int:
        """Number of buckets, the overflow bucket (above the last bound) included."""
        return len(self.bounds) + 1

    @property
    def slots(self) -> int:
        """Integers one series needs: a count per bucket and the sum."""
        return len(self.bounds) + 2

    @property
    def sum_slot(self) -> int:
        return len(self.bounds) + 1

    def index(self, raw: int) -> int:
        """Bucket of a raw value; below the first bound is bucket 0, above the last is overflow."""
        return bisect_left(self.bounds, raw)


def _duration_layout() -> BucketLayout:
    ks = range(DURATION_FIRST_INDEX, DURATION_LAST_INDEX + 1)
    bounds = tuple(_floor_root_of_power_of_two(k) for k in ks)
    exposed = tuple(i for i, k in enumerate(ks) if k % _PER_OCTAVE == 0)
    return BucketLayout("duration_ns", bounds, 1_000_000_000, exposed)


def duration_exposed(buckets_per_octave: int) -> tuple[int, ...]:
    """Indices of the duration bounds shown at ``buckets_per_octave`` (1, 2, 4, 8 or 16)."""
    step = _PER_OCTAVE // buckets_per_octave
    first = DURATION_FIRST_INDEX
    return tuple(
        k - first
        for k in range(first, DURATION_LAST_INDEX + 1)
        if k % step == 0 and k >= _PER_OCTAVE * 10
    )


def _share_layout() -> BucketLayout:
    # Shares are stored in parts per billion. Fine steps below 1% keep small shares apart;
    # 0.5% steps above.
    ppb = 1_000_000_000
    small = (0, ppb // 1000, ppb // 400, ppb // 200)
    linear = tuple(i * ppb // 200 for i in range(2, 201))
    bounds = small + linear
    shown = {0.0, 0.01, 0.025, 0.05, *(i / 20 for i in range(2, 20)), 0.99, 1.0}
    exposed = tuple(i for i, b in enumerate(bounds) if any(abs(b / ppb - s) < 1e-12 for s in shown))
    return BucketLayout("share_ppb", bounds, ppb, exposed)


def _calls_layout() -> BucketLayout:
    bounds = (
        *range(11),
        12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500,
        1000, 2000, 5000, 10_000,
    )  # fmt: skip
    shown = {0, 1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 10_000}
    return BucketLayout("calls", bounds, 1, tuple(i for i, b in enumerate(bounds) if b in shown))


DURATION = _duration_layout()
SHARE = _share_layout()
CALLS = _calls_layout()
LAYOUTS = {layout.name: layout for layout in (DURATION, SHARE, CALLS)}

#: Duration buckets found without a bisect (the hot path's form of ``DURATION.index``):
#: below ``FAST_LIMIT`` ns by a table of every value; above it by the value's top nine
#: bits, ``DURATION_PREFIX[shift][value >> shift]`` with ``shift = bit_length - 9``,
#: which is the bucket of the smallest value with those bits, or one below the right one.
#:
#: Why one step is enough: the values sharing nine top bits span ``2**shift``, while two
#: bounds of that octave lie at least ``2**(shift + 8) * (2**(1/16) - 1)`` (about
#: ``2**(shift + 3.5)``) apart, so at most one bound falls among them. Then
#: ``if value > DURATION_CEILINGS[i]: i += 1`` finishes, ``DURATION_CEILINGS`` being the
#: bounds and one more, above any value, for the overflow bucket. tests/test_buckets.py
#: checks it against the bisect at and around every bound. Example::
#:
#:     shift = v.bit_length() - 9
#:     i = DURATION_PREFIX[shift][v >> shift]
#:     if v > DURATION_CEILINGS[i]:
#:         i += 1
FAST_LIMIT = 1 << 16
DURATION_FAST = [bisect_left(DURATION.bounds, v) for v in range(FAST_LIMIT)]
DURATION_CEILINGS = (*DURATION.bounds, 1 << 64)
DURATION_PREFIX = [
    [bisect_left(DURATION.bounds, top << shift) if top >= 256 else 0 for top in range(512)]
    for shift in range(64 - 8)
]


def duration_index(value: int) -> int:
    """``DURATION.index(value)`` for ``0 <= value < 2**64``, without a bisect.

    Example::

        assert duration_index(1_000_000) == DURATION.index(1_000_000)
    """
    if value < FAST_LIMIT:
        return DURATION_FAST[value]
    shift = value.bit_length() - 9
    i = DURATION_PREFIX[shift][value >> shift]
    if value > DURATION_CEILINGS[i]:
        i += 1
    return i


#: The largest relative width of a duration bucket inside the documented range.
DURATION_RELATIVE_ERROR = max(
    (hi - lo) / lo for lo, hi in zip(DURATION.bounds, DURATION.bounds[1:], strict=False)
)
