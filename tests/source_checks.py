"""What the report-source tests share: traffic with known times, and exact comparisons."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe.model import Histogram, Moments

#: The sums a source must rebuild to float precision.
MOMENT_SUMS = (
    "probe_seconds",
    "endpoint_seconds",
    "probe_seconds_squared",
    "endpoint_seconds_squared",
    "probe_endpoint_seconds_squared",
)


def requester(
    clock: FakeClock, hid: str, endpoint: str, probe: str = "query"
) -> Callable[..., None]:
    """``request(rest, *probe_seconds)``: one request of known probe and endpoint times."""

    @hypoprobe.probe(hid, name=probe)
    def query(seconds: float) -> None:
        clock.advance_seconds(seconds)

    def request(rest: float, *probe_seconds: float) -> None:
        with hypoprobe.endpoint(endpoint):
            clock.advance_seconds(rest)
            for p in probe_seconds:
                query(p)

    return request


def assert_same_histogram(got: Histogram, truth: Histogram) -> None:
    """Cumulative counts exact at every bound the source has; the sum to float precision."""
    assert len(got.bounds) > 10, "the source should carry many buckets"
    expected = truth.restrict(got.bounds)
    assert got.bounds == expected.bounds
    assert got.counts == expected.counts
    assert got.sum == pytest.approx(expected.sum, rel=1e-12, abs=1e-15)


def assert_same_moments(have: Moments, want: Moments) -> None:
    assert (have.requests, have.requests_with_probe) == (want.requests, want.requests_with_probe)
    for name in MOMENT_SUMS:
        assert getattr(have, name) == pytest.approx(getattr(want, name), rel=1e-12)
