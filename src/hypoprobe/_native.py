"""hypoprobe's histograms as Prometheus native (sparse exponential) histograms, schema 4.

Native bucket ``i`` of schema 4 holds the values in ``(2**((i-1)/16), 2**(i/16)]`` (natural
units: seconds, a ratio, calls); the zero bucket holds ``[0, zero_threshold]``.

hypoprobe's own buckets do not line up with those: the duration layout steps by 2**(1/16)
in *nanoseconds*, and 1 ns is 2**(-29.897...) s, so every internal bucket straddles two
schema-4 buckets (about 64% / 36% of its width); shares and calls have linear bounds. The
mapping therefore never moves a whole internal bucket. It samples the cumulative
distribution the snapshot itself assumes — linear inside each internal bucket, exactly as
:meth:`Histogram.quantile` interpolates (for calls, whole numbers spread evenly over the
bucket's integers) — at every schema-4 boundary, rounded to a whole count. Cumulative
counts at native boundaries are thus within half an observation of the internal
histogram's own interpolation, and a quantile read from the native histogram differs from
the snapshot's by less than one native bucket (4.4%), with no systematic shift. Values
above the last internal bound (clamped, counted in ``hypoprobe_clamped_values_total``) go
into the native bucket just above it.

See ``docs/metrics.md`` ("Native histograms").
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client.metrics_core import HistogramMetricFamily

from . import _buckets
from .snapshot import Histogram

__all__: list[str] = []

#: Native schema: hypoprobe's own scale, 2**4 buckets per power of two.
SCHEMA = _buckets.DURATION_SCALE
_PER_OCTAVE = 1 << SCHEMA
#: Zero buckets in a row kept inside one span rather than starting a new span (a span
#: costs two varints; an empty bucket one byte).
_MAX_GAP = 2


def boundary(index: int) -> float:
    """Upper bound of native bucket ``index``: ``2 ** (index / 16)``.

    Example::

        assert boundary(0) == 1.0 and boundary(-16) == 0.5
    """
    return math.ldexp(2.0 ** ((index % _PER_OCTAVE) / _PER_OCTAVE), index // _PER_OCTAVE)


def index_at_or_below(value: float) -> int:
    """The largest native index whose upper bound is <= ``value`` (> 0)."""
    i = math.floor(math.log2(value) * _PER_OCTAVE)
    while boundary(i) > value:
        i -= 1
    while boundary(i + 1) <= value:
        i += 1
    return i


@dataclass(frozen=True)
class NativeHistogram:
    """A histogram in Prometheus' native form: zero bucket, then spans of positive buckets.

    ``spans`` are (offset, length) as the wire carries them: the first offset is the index of
    the first bucket, later ones the gap since the previous span. ``deltas`` are each
    bucket's count minus the previous bucket's (the first minus zero).
    """

    schema: int
    zero_threshold: float
    zero_count: int
    spans: tuple[tuple[int, int], ...]
    deltas: tuple[int, ...]
    count: int
    sum: float

    def buckets(self) -> dict[int, int]:
        """Absolute count per native index (the zero-count buckets inside spans included)."""
        out: dict[int, int] = {}
        index, running, k = 0, 0, 0
        for n, (offset, length) in enumerate(self.spans):
            index = offset if n == 0 else index + offset
            for _ in range(length):
                running += self.deltas[k]
                out[index] = running
                index += 1
                k += 1
        return out


def _cdf(bounds: tuple[float, ...], cum: list[int], value: float, integers: bool) -> float:
    """Count at or below ``value``, interpolated linearly inside its bucket (as the snapshot).

    With ``integers`` (calls per request: whole numbers only), bucket ``(a, b]`` holds the
    integers ``a+1 .. b`` in equal parts, so no count lands between two integers.
    """
    i = bisect_left(bounds, value)
    if i >= len(bounds):
        return float(cum[len(bounds) - 1]) if bounds else 0.0
    upper = bounds[i]
    lower = bounds[i - 1] if i > 0 else min(0.0, upper)
    below = cum[i - 1] if i > 0 else 0
    inside = cum[i] - below
    if upper <= lower or value >= upper:
        return float(below + inside)
    if integers:
        value = math.floor(value)
    return below + inside * max(0.0, value - lower) / (upper - lower)


def to_native(hist: Histogram) -> NativeHistogram:
    """Map one histogram (any bounds, values >= 0) onto native schema-4 buckets.

    Example::

        h = Histogram(bounds=(0.1, 0.2), counts=(0, 4, 0), sum=0.6)
        native = to_native(h)
        assert native.count == 4 and native.zero_count == 0
        assert sum(native.buckets().values()) == 4
    """
    bounds = hist.bounds
    cum = list(accumulate(hist.counts))
    integers = float(hist.sum).is_integer() and all(float(b).is_integer() for b in bounds)
    total = cum[-1] if cum else 0
    positive = [b for b in bounds if b > 0]
    if not positive:
        # Nothing but zeros (or negative bounds): all of it is the zero bucket, the overflow
        # (values above the last bound) just above 1.
        threshold = boundary(-_PER_OCTAVE * 128)
        overflow = hist.counts[-1]
        below = total - overflow
        return _encode(threshold, below, {0: overflow} if overflow else {}, total, hist.sum)
    # The zero bucket ends at the last native boundary strictly below the smallest positive
    # bound, so it never swallows a bucket of its own (calls: 1 is not "zero").
    z = index_at_or_below(positive[0])
    if boundary(z) >= positive[0]:
        z -= 1
    threshold = boundary(z)
    zero_count = round(_cdf(bounds, cum, threshold, integers))
    counts: dict[int, int] = {}
    last = len(bounds) - 1
    in_range = cum[last]
    if in_range > zero_count:
        # Only the boundaries where the interpolated count can change: from the lower edge
        # of the first non-empty bucket past zero to the top of the last non-empty one.
        first_nonempty = next(i for i, c in enumerate(hist.counts) if c)
        last_nonempty = max(i for i in range(last + 1) if hist.counts[i])
        low_edge = bounds[first_nonempty - 1] if first_nonempty > 0 else 0.0
        start = max(z, index_at_or_below(low_edge)) if low_edge > 0 else z
        stop = index_at_or_below(bounds[last_nonempty])
        if boundary(stop) < bounds[last_nonempty]:
            stop += 1
        previous = zero_count if start == z else round(_cdf(bounds, cum, boundary(start), integers))
        for j in range(start + 1, stop + 1):
            here = round(_cdf(bounds, cum, boundary(j), integers))
            if here > previous:
                counts[j] = here - previous
            previous = here
        if previous < in_range:  # rounding left a few at the very top
            counts[stop] = counts.get(stop, 0) + in_range - previous
    overflow = hist.counts[-1]
    if overflow:
        above = index_at_or_below(bounds[last]) + 1
        counts[above] = counts.get(above, 0) + overflow
    return _encode(threshold, zero_count, counts, total, hist.sum)


def _encode(
    threshold: float, zero_count: int, counts: Mapping[int, int], total: int, total_sum: float
) -> NativeHistogram:
    spans: list[tuple[int, int]] = []
    deltas: list[int] = []
    previous_count = 0
    end = 0  # index just past the current span
    for index in sorted(counts):
        count = counts[index]
        if spans and index - end <= _MAX_GAP:
            for _ in range(index - end):  # empty buckets inside the span
                deltas.append(-previous_count)
                previous_count = 0
            offset, length = spans[-1]
            spans[-1] = (offset, length + index - end + 1)
        else:
            spans.append((index if not spans else index - end, 1))
        deltas.append(count - previous_count)
        previous_count = count
        end = index + 1
    return NativeHistogram(
        SCHEMA, threshold, zero_count, tuple(spans), tuple(deltas), total, total_sum
    )


class NativeHistogramFamily(HistogramMetricFamily):
    """A classic histogram family that also keeps each series' hypoprobe histogram.

    Text and OpenMetrics exposition see an ordinary ``HistogramMetricFamily``; the protobuf
    exposition reads ``histograms`` (labels -> histogram) to add the native form.
    """

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        super().__init__(name, documentation, labels=labels)
        self.label_names = tuple(labels)
        self.histograms: dict[tuple[str, ...], Histogram] = {}
