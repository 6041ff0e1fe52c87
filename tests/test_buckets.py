"""Bucket layouts: bounded relative error, clamping at the ends, and the share arithmetic.

The layout module is private, so its properties are checked directly (cheaply, on many
values) and then once more end to end through probes, scopes and ``snapshot()``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hypoprobe
from conftest import FakeClock
from hypoprobe._core import _buckets
from hypoprobe.model import Histogram, Snapshot

US = 1_000
HOUR = 3_600 * 1_000_000_000
MAX_RELATIVE_ERROR = 0.05


def test_layouts_have_strictly_increasing_integer_bounds() -> None:
    for layout in (_buckets.DURATION, _buckets.SHARE, _buckets.CALLS):
        assert all(isinstance(b, int) for b in layout.bounds)
        assert all(lo < hi for lo, hi in zip(layout.bounds, layout.bounds[1:], strict=False))
        assert layout.natural_bounds == tuple(b / layout.divisor for b in layout.bounds)


def test_duration_layout_covers_one_microsecond_to_one_hour() -> None:
    bounds = _buckets.DURATION.bounds
    assert bounds[0] < US
    assert bounds[-1] > HOUR
    assert _buckets.DURATION_RELATIVE_ERROR <= MAX_RELATIVE_ERROR


@given(st.integers(min_value=US, max_value=HOUR))
@example(US)
@example(HOUR)
@example(1024)
@example(2**30)
@example(2**30 + 1)
def test_every_duration_in_range_is_bucketed_within_five_percent(ns: int) -> None:
    layout = _buckets.DURATION
    i = layout.index(ns)
    assert 0 < i < len(layout.bounds)
    lower, upper = layout.bounds[i - 1], layout.bounds[i]
    assert lower < ns <= upper  # inclusive integer upper bounds: exact membership
    assert (upper - ns) / ns <= MAX_RELATIVE_ERROR
    assert (ns - lower) / ns <= MAX_RELATIVE_ERROR


@given(st.integers(min_value=-(2**63), max_value=_buckets.DURATION.bounds[0]))
def test_durations_below_the_range_are_clamped_into_the_first_bucket(ns: int) -> None:
    assert _buckets.DURATION.index(ns) == 0


@given(st.integers(min_value=_buckets.DURATION.bounds[-1] + 1, max_value=2**80))
def test_durations_above_the_range_are_clamped_into_the_last_bucket(ns: int) -> None:
    assert _buckets.DURATION.index(ns) == len(_buckets.DURATION.bounds)


def test_the_bisect_free_duration_bucket_agrees_at_and_around_every_bound() -> None:
    bounds = _buckets.DURATION.bounds
    for value in (0, 1, (1 << 16) - 1, 1 << 16, (1 << 64) - 1):
        assert _buckets.duration_index(value) == _buckets.DURATION.index(value)
    for bound in bounds:
        for value in (bound - 1, bound, bound + 1):
            assert _buckets.duration_index(value) == _buckets.DURATION.index(value), value


@given(st.integers(0, (1 << 64) - 1) | st.integers(0, 1 << 24))
def test_the_bisect_free_duration_bucket_is_the_bisect(ns: int) -> None:
    assert _buckets.duration_index(ns) == _buckets.DURATION.index(ns)


@given(st.integers(min_value=0, max_value=10**9))
def test_every_share_lands_in_a_bucket_at_most_half_a_percent_wide(ppb: int) -> None:
    layout = _buckets.SHARE
    i = layout.index(ppb)
    assert i < len(layout.bounds)  # 1.0 is the last bound: no share overflows
    upper = layout.bounds[i]
    lower = layout.bounds[i - 1] if i else -1
    assert lower < ppb <= upper
    assert upper - lower <= 5_000_000 or i == 0


@pytest.mark.parametrize("buckets_per_octave", [1, 2, 4, 8, 16])
def test_exposed_duration_bounds_are_internal_bounds(buckets_per_octave: int) -> None:
    exposed = _buckets.duration_exposed(buckets_per_octave)
    assert exposed == tuple(sorted(set(exposed)))
    assert all(0 <= i < len(_buckets.DURATION.bounds) for i in exposed)
    natural = [_buckets.DURATION.natural_bounds[i] for i in exposed]
    step = 2 ** (1 / buckets_per_octave)
    assert all(b2 / b1 == pytest.approx(step, rel=2e-3) for b1, b2 in pairwise(natural))
    coarse = set(_buckets.duration_exposed(1))
    assert coarse <= set(exposed)  # finer settings only add bounds


# -- end to end: values recorded through the public API -----------------------------------


def _only(snap: Snapshot, hid: str, endpoint: str = "<none>") -> Histogram:
    (hist,) = [p.duration for p in snap.probes if (p.hypothesis, p.endpoint) == (hid, endpoint)]
    return hist


@pytest.mark.parametrize(
    ("ns", "where"),
    [(0, "first"), (1, "first"), (500, "first"), (5 * US, "inside"), (10 * HOUR, "last")],
)
def test_recorded_values_land_in_the_right_bucket(
    unique_id: Callable[..., str], fake_clock: FakeClock, ns: int, where: str
) -> None:
    hid = unique_id()
    with hypoprobe.probe(hid, name="p"):
        fake_clock.advance(ns)
    hist = _only(hypoprobe.snapshot(), hid)
    assert hist.count == 1
    assert hist.sum == ns / 1e9  # the sum is exact even where the bucket is clamped
    i = hist.counts.index(1)
    if where == "first":
        assert i == 0
    elif where == "last":
        assert i == len(hist.bounds)
    else:
        assert hist.bounds[i - 1] < ns / 1e9 <= hist.bounds[i]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    endpoint_ns=st.integers(min_value=0, max_value=10 * HOUR),
    fraction=st.fractions(min_value=0, max_value=1),
)
@example(endpoint_ns=0, fraction=Fraction(0))
@example(endpoint_ns=3, fraction=Fraction(1))
@example(endpoint_ns=1_500_000_000, fraction=Fraction(4, 5))
def test_share_of_one_request_is_probe_over_endpoint_time(
    fake_clock: FakeClock,
    registered_hypothesis: Callable[..., tuple[str, str]],
    endpoint_ns: int,
    fraction: Fraction,
) -> None:
    probe_ns = int(endpoint_ns * fraction)
    hid, ep = registered_hypothesis()
    block = hypoprobe.probe(hid, name="p")
    with hypoprobe.endpoint(ep):
        with block:
            fake_clock.advance(probe_ns)
        fake_clock.advance(endpoint_ns - probe_ns)
    snap = hypoprobe.snapshot()

    (request,) = [r for r in snap.requests if r.hypothesis == hid]
    expected_ppb = probe_ns * 10**9 // endpoint_ns if endpoint_ns else 0
    assert request.share.count == 1
    assert request.share.sum == expected_ppb / 1e9
    i = request.share.counts.index(1)
    assert i < len(request.share.bounds)
    assert request.share.bounds[i] >= expected_ppb / 1e9
    assert i == 0 or request.share.bounds[i - 1] < expected_ppb / 1e9
    mo = snap.moments_for(hid, ep)
    assert (mo.requests, mo.probe_seconds, mo.endpoint_seconds) == (
        1,
        probe_ns / 1e9,
        endpoint_ns / 1e9,
    )
    assert mo.probe_endpoint_seconds_squared == pytest.approx(
        (probe_ns / 1e9) * (endpoint_ns / 1e9), rel=1e-12, abs=1e-300
    )
