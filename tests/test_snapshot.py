"""The frozen snapshot model: Histogram algebra, windows, merging and the JSON document."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hypoprobe
from conftest import FakeClock
from hypoprobe import SnapshotError
from hypoprobe.model import SCHEMA, EndpointData, Histogram, Moments, Snapshot

POOL = (0.001, 0.0025, 0.005, 0.01, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@st.composite
def histograms(draw: st.DrawFn, bounds: tuple[float, ...] | None = None) -> Histogram:
    """Histograms over subsets of one pool of bounds, with integer-valued sums (exact)."""
    if bounds is None:
        chosen = draw(st.sets(st.sampled_from(POOL)))
        bounds = tuple(sorted(chosen))
    counts = draw(
        st.lists(st.integers(0, 10**6), min_size=len(bounds) + 1, max_size=len(bounds) + 1)
    )
    total = draw(st.integers(0, 10**9))
    return Histogram(bounds, tuple(counts), float(total))


def _cumulative_at(h: Histogram, bound: float) -> int:
    return h.cumulative()[h.bounds.index(bound)]


# -- Histogram algebra -------------------------------------------------------------------


@given(histograms(), histograms())
def test_merge_is_commutative(a: Histogram, b: Histogram) -> None:
    assert a.merge(b) == b.merge(a)


@given(histograms(), histograms(), histograms())
def test_merge_is_associative(a: Histogram, b: Histogram, c: Histogram) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(histograms(), histograms())
def test_merge_is_exact_at_shared_bounds(a: Histogram, b: Histogram) -> None:
    merged = a.merge(b)
    assert set(merged.bounds) == set(a.bounds) & set(b.bounds)
    for bound in merged.bounds:
        assert _cumulative_at(merged, bound) == _cumulative_at(a, bound) + _cumulative_at(b, bound)
    assert merged.count == a.count + b.count
    assert merged.sum == a.sum + b.sum


@given(histograms(), st.sets(st.sampled_from(POOL)))
def test_restrict_keeps_counts_at_the_kept_bounds(h: Histogram, keep: set[float]) -> None:
    restricted = h.restrict(keep)
    assert set(restricted.bounds) == keep & set(h.bounds)
    assert (restricted.count, restricted.sum) == (h.count, h.sum)
    for bound in restricted.bounds:
        assert _cumulative_at(restricted, bound) == _cumulative_at(h, bound)


@given(histograms(bounds=POOL), histograms(bounds=POOL))
def test_minus_undoes_merge(a: Histogram, b: Histogram) -> None:
    assert a.merge(b).minus(a) == b


@given(histograms(), histograms())
def test_minus_across_different_bounds_is_exact_at_shared_bounds(
    a: Histogram, b: Histogram
) -> None:
    later = a.merge(b)
    window = later.minus(a)
    assert window.count == b.count
    for bound in window.bounds:
        assert _cumulative_at(window, bound) == _cumulative_at(b.restrict(window.bounds), bound)


def test_minus_after_a_restart_returns_the_later_histogram() -> None:
    before = Histogram((1.0,), (5, 5), 20.0)
    after_restart = Histogram((1.0,), (1, 0), 0.5)
    assert after_restart.minus(before) == after_restart


@given(histograms(bounds=POOL), st.floats(0, 1), st.floats(0, 1))
def test_quantile_is_monotone_and_within_the_bounds(h: Histogram, q1: float, q2: float) -> None:
    lo, hi = sorted((q1, q2))
    if h.count == 0:
        assert h.quantile(lo) is None
        return
    a, b = h.quantile(lo), h.quantile(hi)
    assert a is not None
    assert b is not None
    assert min(0.0, POOL[0]) <= a <= b <= POOL[-1]


@given(histograms(bounds=POOL), st.floats(0, 20), st.floats(0, 20))
def test_count_at_least_is_monotone(h: Histogram, v1: float, v2: float) -> None:
    lo, hi = sorted((v1, v2))
    assert h.count >= h.count_at_least(lo) >= h.count_at_least(hi) >= 0
    assert h.count_at_least(POOL[-1] * 2) == h.counts[-1]


def test_histogram_shape_is_checked() -> None:
    with pytest.raises(SnapshotError, match="needs 3 counts"):
        Histogram((0.1, 1.0), (1, 2), 0.0)
    h = Histogram((0.1, 1.0), (3, 1, 0), 0.9)
    assert h.count == 4
    assert h.cumulative() == [3, 4, 4]
    assert h.mean == pytest.approx(0.225)
    assert Histogram.from_cumulative((0.1, 1.0), (3, 4, 4), 0.9) == h
    assert Histogram.empty((0.1,)).mean is None


# -- snapshots of real recordings ---------------------------------------------------------


def _record(hid: str, ep: str, clock: FakeClock, requests: int) -> None:
    block = hypoprobe.probe(hid, name="p")
    for _ in range(requests):
        with hypoprobe.endpoint(ep):
            with block:
                clock.advance(3_000_000)
            clock.advance(1_000_000)


def test_snapshot_is_frozen(unique_id: Callable[..., str]) -> None:
    snap = hypoprobe.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.source = "changed"  # type: ignore[misc]


def test_minus_gives_exactly_the_activity_of_the_window(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis(slow_threshold=1.0)
    _record(hid, ep, fake_clock, 3)
    before = hypoprobe.snapshot()
    _record(hid, ep, fake_clock, 5)
    window = hypoprobe.snapshot().minus(before)

    mo = window.moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (5, 5)
    assert mo.probe_seconds == pytest.approx(0.015)
    assert mo.endpoint_seconds == pytest.approx(0.020)
    endpoint = window.endpoint(ep)
    assert endpoint is not None
    assert endpoint.duration.count == 5
    (request,) = [r for r in window.requests if r.hypothesis == hid]
    assert request.share.count == 5
    assert request.share.sum == pytest.approx(3.75)
    (probe,) = [p for p in window.probes if (p.hypothesis, p.endpoint) == (hid, ep)]
    assert probe.duration.count == 5


def test_merge_sums_snapshots(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    _record(hid, ep, fake_clock, 2)
    snap = hypoprobe.snapshot()
    doubled = Snapshot.merge([snap, snap], source="two workers")
    assert doubled.source == "two workers"
    assert doubled.moments_for(hid, ep).requests == 4
    assert doubled.moments_for(hid, ep).probe_seconds == pytest.approx(0.012)
    assert [h.id for h in doubled.hypotheses].count(hid) == 1
    assert doubled.minus(snap).moments_for(hid, ep).requests == 2
    with pytest.raises(SnapshotError, match="nothing to merge"):
        Snapshot.merge([])


def test_json_round_trip_of_a_real_snapshot(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(
        hid,
        claim="round trip",
        endpoint=[ep, "GET /other"],
        min_share=0.3,
        observed=hypoprobe.Observation(probe_seconds=0.2, endpoint_seconds=0.5),
        slow_threshold=0.002,
        owner="me",
        ticket="T-1",
        expires="2999-01-01",
    )
    _record(hid, ep, fake_clock, 3)
    with pytest.raises(KeyError), hypoprobe.probe(hid, name="raises"):
        raise KeyError("x")
    snap = hypoprobe.snapshot()
    text = snap.to_json(indent=2)
    assert json.loads(text)["schema"] == SCHEMA == "hypoprobe.snapshot/1"
    again = Snapshot.from_json(text)
    assert again == snap
    assert again.to_json() == snap.to_json()


@settings(max_examples=30)
@given(st.lists(histograms(), max_size=4), st.text(max_size=20))
def test_json_round_trip_of_any_histograms(hists: list[Histogram], source: str) -> None:
    snap = Snapshot(
        created_at=1.5,
        source=source,
        endpoints=tuple(EndpointData(f"e{i}", h) for i, h in enumerate(hists)),
        moments=(Moments("H", "E", True, 3, 2, 0.5, 1.0, 0.1, 0.4, 0.2),),
        internal_errors={"probe_record": 2},
    )
    assert Snapshot.from_json(snap.to_json()) == snap


# -- rejected documents ------------------------------------------------------------------


def _valid_document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(hypoprobe.snapshot().to_json())
    return doc


@pytest.mark.parametrize("text", ["", "   \n", "not json", "{", "[]", "42", "null", '"text"', "{}"])
def test_empty_or_corrupt_documents_raise_snapshot_error(text: str) -> None:
    with pytest.raises(SnapshotError):
        Snapshot.from_json(text)


@pytest.mark.parametrize("schema", [None, "hypoprobe.snapshot/2", "hypoprobe.snapshot/0", 1])
def test_wrong_schema_is_rejected(schema: object) -> None:
    doc = _valid_document()
    doc["schema"] = schema
    with pytest.raises(SnapshotError, match="schema"):
        Snapshot.from_json(json.dumps(doc))


BAD_HISTOGRAMS: list[object] = [
    {"layout": "no_such_layout", "counts": [], "sum": 0},
    {"bounds": [0.1], "counts": [[5, 1]], "sum": 0},  # index past the last bucket
    {"bounds": [0.1], "counts": [[-1, 1]], "sum": 0},  # negative index
    {"bounds": [0.1], "counts": [[0, -3]], "sum": 0},  # negative count
    {"bounds": [0.1], "counts": "12", "sum": 0},
    {"bounds": [0.1], "counts": [[0, 1]], "sum": "many"},
    {"bounds": [0.1], "counts": [[0, 1]]},
    {"bounds": [1.0, 0.1], "counts": [], "sum": 0},  # bounds out of order
    {"counts": [], "sum": 0},
    [],
]


@pytest.mark.parametrize("hist", BAD_HISTOGRAMS)
def test_corrupt_histograms_are_rejected(hist: object) -> None:
    doc = _valid_document()
    doc["endpoints"] = [{"endpoint": "GET /x", "duration": hist}]
    with pytest.raises(SnapshotError):
        Snapshot.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("created_at", None),
        ("created_at", "yesterday"),
        ("hypotheses", [{"id": "H"}]),
        ("hypotheses", 5),
        ("hypotheses", [{"id": "H", "claim": "c", "endpoints": ["E"], "min_share": "half"}]),
        ("hypotheses", [{"id": "H", "claim": "c", "endpoints": [7], "min_share": 0.5}]),
        ("hypotheses", [{"id": "H", "claim": None, "endpoints": ["E"], "min_share": 0.5}]),
        ("hypotheses", [{"id": "H", "claim": "c", "endpoints": "E", "min_share": 0.5, "x": 1}]),
        ("moments", [{"hypothesis": "H", "endpoint": "E", "slow": False, "bogus": 1}]),
        ("moments", [{"hypothesis": "H", "endpoint": "E", "slow": False, "requests": "x"}]),
        ("requests", [{"hypothesis": "H"}]),
        ("exceptions", [[1, 2]]),
        ("internal_errors", [1, 2, 3]),
    ],
)
def test_corrupt_fields_are_rejected(key: str, value: object) -> None:
    doc = _valid_document()
    doc[key] = value
    with pytest.raises(SnapshotError):
        Snapshot.from_json(json.dumps(doc))


def test_snapshot_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        Snapshot.from_json("")
