"""hypoprobe's histograms as native schema-4 histograms: counts kept, quantiles unbiased."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hypoprobe import _buckets
from hypoprobe._native import SCHEMA, NativeHistogram, boundary, index_at_or_below, to_native
from hypoprobe.snapshot import Histogram

LAYOUTS = [_buckets.DURATION, _buckets.SHARE, _buckets.CALLS]
#: One native bucket: 2**(1/16) - 1, about 4.4%.
WIDTH = 2 ** (1 / 16) - 1


def native_cumulative(n: NativeHistogram) -> list[tuple[float, int]]:
    """(upper bound, cumulative count) from the zero bucket up, as Prometheus reads them."""
    out = [(n.zero_threshold, n.zero_count)]
    running = n.zero_count
    for index, count in sorted(n.buckets().items()):
        running += count
        out.append((boundary(index), running))
    return out


def native_quantile(n: NativeHistogram, q: float) -> float:
    """Prometheus' histogram_quantile on a native histogram: linear inside the bucket."""
    rank = q * n.count
    if n.zero_count >= rank and n.zero_count:
        return n.zero_threshold * rank / n.zero_count
    running = n.zero_count
    for index, count in sorted(n.buckets().items()):
        if count and running + count >= rank:
            lower, upper = boundary(index - 1), boundary(index)
            return lower + (upper - lower) * (rank - running) / count
        running += count
    raise AssertionError("rank beyond the histogram")


@st.composite
def histograms(draw: st.DrawFn, layout: _buckets.BucketLayout) -> Histogram:
    """A histogram of the layout: a run of buckets with counts, maybe overflow too."""
    n = layout.buckets
    start = draw(st.integers(0, n - 2))
    length = draw(st.integers(1, min(40, n - 1 - start)))
    counts = [0] * n
    for i in range(start, start + length):
        counts[i] = draw(st.integers(0, 2000))
    if draw(st.booleans()):
        counts[-1] = draw(st.integers(0, 50))
    # The sum is not used by the mapping except to tell integer data from real data.
    natural = layout.natural_bounds
    total = sum(c * natural[min(i, len(natural) - 1)] for i, c in enumerate(counts))
    if layout is _buckets.CALLS:
        total = float(round(total))
    return Histogram(natural, tuple(counts), total)


def decoded_is_consistent(n: NativeHistogram) -> None:
    assert n.schema == SCHEMA
    assert sum(length for _, length in n.spans) == len(n.deltas)
    buckets = n.buckets()
    assert all(c >= 0 for c in buckets.values())
    assert n.zero_count >= 0
    assert n.zero_count + sum(buckets.values()) == n.count
    # Spans after the first start after a gap: buckets never overlap or go backwards.
    assert all(offset >= 0 for offset, _ in n.spans[1:])


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_observation_is_kept_and_the_encoding_decodes(
    layout: _buckets.BucketLayout, data: st.DataObject
) -> None:
    hist = data.draw(histograms(layout))
    n = to_native(hist)
    decoded_is_consistent(n)
    assert n.count == hist.count
    assert n.sum == hist.sum


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_native_cumulative_counts_follow_the_snapshots_interpolation(data: st.DataObject) -> None:
    """At every native boundary the count below is the snapshot's estimate, rounded."""
    layout = data.draw(st.sampled_from([_buckets.DURATION, _buckets.SHARE]))
    hist = data.draw(histograms(layout))
    n = to_native(hist)
    in_range = hist.count - hist.counts[-1]
    for upper, cum in native_cumulative(n):
        if upper > hist.bounds[-1]:
            break
        expected = hist.count - hist.count_at_least(upper)
        # count_at_least counts values >= upper; the snapshot's CDF at upper is the rest.
        assert abs(cum - min(expected, in_range)) <= 0.5 + 1e-6 * max(1, hist.count), upper


@settings(max_examples=80, deadline=None)
@given(data=st.data(), q=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_duration_quantiles_match_the_snapshots_within_one_native_bucket(
    data: st.DataObject, q: float
) -> None:
    hist = data.draw(histograms(_buckets.DURATION))
    in_range = hist.count - hist.counts[-1]
    rank = q * hist.count
    # Where the rank falls into the first (clamped) bucket or above the last bound, neither
    # side knows more than "below 1 us" / "above 73 min".
    assume(hist.count >= 200 and hist.counts[0] < rank <= in_range)
    want = hist.quantile(q)
    assert want is not None
    got = native_quantile(to_native(hist), q)
    assert abs(got / want - 1) <= WIDTH, (got, want)


def test_a_single_duration_bucket_splits_between_the_two_native_buckets_it_straddles() -> None:
    layout = _buckets.DURATION
    i = 300  # internal bucket 300: (2**((159+299)/16), 2**((159+300)/16)] ns
    counts = [0] * layout.buckets
    counts[i] = 1000
    lower, upper = layout.natural_bounds[i - 1], layout.natural_bounds[i]
    n = to_native(Histogram(layout.natural_bounds, tuple(counts), 1000 * (lower + upper) / 2))
    buckets = n.buckets()
    assert sorted(buckets) == [index_at_or_below(lower) + 1, index_at_or_below(lower) + 2]
    edge = boundary(index_at_or_below(lower) + 1)
    below = round(1000 * (edge - lower) / (upper - lower))
    assert buckets[index_at_or_below(lower) + 1] == below
    assert 300 < below < 400  # 1 ns = 2**-29.897 s: the boundary sits ~36% into the bucket
    assert native_quantile(n, 0.5) == pytest.approx((lower + upper) / 2, rel=WIDTH / 2)


def test_calls_are_whole_numbers_never_in_the_zero_bucket() -> None:
    layout = _buckets.CALLS
    counts = [0] * layout.buckets
    counts[layout.index(1)] = 7  # seven requests with one call
    counts[layout.index(25)] = 3  # three with 25: the bucket (20, 25]
    counts[0] = 2  # two with none
    n = to_native(Histogram(layout.natural_bounds, tuple(counts), 7 + 75.0))
    assert n.zero_count == 2
    assert n.zero_threshold < 1
    buckets = n.buckets()
    assert buckets[0] == 7  # (2**(-1/16), 1]: exactly the value 1
    # 21..25 in equal parts; 25 lies in native bucket 75.
    assert sum(c for i, c in buckets.items() if i > 0) == 3
    assert max(buckets) == math.ceil(16 * math.log2(25))


def test_overflow_goes_just_above_the_last_bound_and_empty_is_empty() -> None:
    layout = _buckets.DURATION
    counts = [0] * layout.buckets
    counts[-1] = 5
    n = to_native(Histogram(layout.natural_bounds, tuple(counts), 1e5))
    assert n.buckets() == {index_at_or_below(layout.natural_bounds[-1]) + 1: 5}
    empty = to_native(Histogram.empty(layout.natural_bounds))
    assert (empty.count, empty.zero_count, empty.spans, empty.deltas) == (0, 0, (), ())
    assert empty.zero_threshold > 0  # what marks the histogram as native on the wire


@given(st.integers(-2000, 2000))
def test_boundaries_are_powers_of_two_to_the_sixteenth(index: int) -> None:
    assert boundary(index) == pytest.approx(2 ** (index / 16), rel=1e-15)
    assert index_at_or_below(boundary(index)) == index
    if index % 16 == 0:
        assert boundary(index) == 2.0 ** (index // 16)


def test_short_gaps_stay_inside_a_span_long_ones_start_a_new_one() -> None:
    bounds = tuple(boundary(i) for i in range(0, 20))
    counts = [0] * 21
    counts[1], counts[3], counts[10] = 4, 2, 1  # buckets 1 and 3: gap of one; then 10
    n = to_native(Histogram(bounds, tuple(counts), 0.0))
    assert n.spans == ((1, 3), (6, 1))
    assert n.deltas == (4, -4, 2, -1)
    assert n.buckets() == {1: 4, 2: 0, 3: 2, 10: 1}
