"""The per-request accumulator slot's limit: probe time below 2^48 ns, calls above it.

A request's slot for one probe holds ``calls << 48 | probe_ns``; probe time reaching 2^48
ns (about 78 hours) would carry into the call count. Both ends keep it below: a single
call that long never reaches a slot, and a request that long is dropped at its end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hypoprobe
from conftest import FakeClock
from hypoprobe._core import _faults, _plan

LIMIT = 1 << 48


def test_the_limit_is_what_the_accumulator_assumes() -> None:
    assert _plan.TIME_LIMIT == LIMIT == _plan.ONE_CALL
    assert _plan.TIME_MASK == LIMIT - 1
    assert _plan.CALLS_SHIFT == 48


_CALL = st.integers(min_value=0, max_value=10**12)  # one call's ns, well under the limit


@given(st.lists(st.lists(_CALL, max_size=20), max_size=6))
def test_request_totals_decodes_what_the_probe_path_packs(per_site: list[list[int]]) -> None:
    # Packed as the probe path does (each call adds dt + ONE_CALL), decoded by the one decoder.
    acc = [sum(dt + _plan.ONE_CALL for dt in calls) for calls in per_site]
    positions = tuple(range(len(acc)))
    expected = (sum(map(sum, per_site)), sum(map(len, per_site)))
    assert _plan.request_totals(acc, positions) == expected
    assert _plan.request_totals(acc, positions[1:]) == (
        sum(map(sum, per_site[1:])),
        sum(map(len, per_site[1:])),
    )


def _setup(unique_id: Callable[..., str]) -> tuple[str, str]:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="long calls", endpoint=ep, min_share=0.5)
    return hid, ep


def test_a_call_just_under_the_limit_is_recorded_whole(
    unique_id: Callable[..., str], fake_clock: FakeClock, clean_faults: None
) -> None:
    hid, ep = _setup(unique_id)

    @hypoprobe.probe(hid, name="long")
    def long_call() -> None:
        fake_clock.advance(LIMIT - 1)

    with hypoprobe.endpoint(ep):
        long_call()
    (req,) = [r for r in hypoprobe.snapshot().requests if r.hypothesis == hid]
    assert req.calls.sum == 1  # nothing carried into the call count
    moments = hypoprobe.snapshot().moments_for(hid, ep)
    assert moments.probe_seconds == pytest.approx((LIMIT - 1) / 1e9)
    assert not _faults.snapshot()


def test_a_call_at_the_limit_never_reaches_the_slot(
    unique_id: Callable[..., str], fake_clock: FakeClock, clean_faults: None
) -> None:
    hid, ep = _setup(unique_id)

    @hypoprobe.probe(hid, name="too long")
    def too_long() -> None:
        fake_clock.advance(LIMIT)

    @hypoprobe.probe(hid, name="short")
    def short() -> None:
        fake_clock.advance(1_000)

    def request() -> None:
        with hypoprobe.endpoint(ep):
            short()
            too_long()
            short()
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):  # the app's own errors still pass through
        request()
    assert _faults.snapshot().get("probe_over_time_limit") == 1
    # The request itself lasted past the limit too: dropped whole, counted.
    assert _faults.snapshot().get("request_over_time_limit") == 1
    moments = hypoprobe.snapshot().moments_for(hid, ep)
    assert moments.requests == 0


def test_a_request_under_the_limit_with_a_refused_call_keeps_the_rest(
    unique_id: Callable[..., str], fake_clock: FakeClock, clean_faults: None
) -> None:
    hid, ep = _setup(unique_id)

    @hypoprobe.probe(hid, name="short")
    def short() -> None:
        fake_clock.advance(1_000)

    with hypoprobe.endpoint(ep):
        short()
        short()
    with hypoprobe.probe(hid, name="outside"):
        fake_clock.advance(LIMIT + 5)
    assert _faults.snapshot().get("probe_over_time_limit") == 1
    (req,) = [
        r for r in hypoprobe.snapshot().requests if r.hypothesis == hid and r.probe == "short"
    ]
    assert req.calls.sum == 2
