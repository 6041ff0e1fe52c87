"""Past the series cap, memory and time stay bounded, and overflow counts series.

A bad naming function (raw URLs as endpoint names) or probe names built from data must
not grow the process without bound: past ``max_series`` new endpoint names share the one
``__overflow__`` endpoint and new probe names the hypothesis' one ``__overflow__`` probe,
so the name lists, plans and per-site lists stop growing; ``hypoprobe_series_overflow_total``
counts each series that could not be made once, however often plans are rebuilt.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Callable

import pytest

import hypoprobe
from hypoprobe import _plan
from hypoprobe._storage import STORAGE


@pytest.fixture
def nearly_full(restore_config: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A series cap a few series above what exists now (and fresh refusal memos, so what
    these tests refuse does not bound what later tests count)."""
    monkeypatch.setattr(_plan, "_COLLAPSED", set())
    monkeypatch.setattr(_plan, "_REFUSED", {})
    hypoprobe.configure(max_series=len(STORAGE.own_series()) + 30)


def _overflow_total() -> int:
    return sum(hypoprobe.snapshot().series_overflow.values())


def test_endpoint_names_past_the_cap_use_bounded_memory(
    nearly_full: None, unique_id: Callable[..., str]
) -> None:
    prefix = unique_id("raw")

    def requests(start: int, stop: int) -> None:
        for i in range(start, stop):
            with hypoprobe.endpoint(f"GET {prefix}/{i}"):
                pass

    requests(0, 100)  # fills the cap
    names = len(_plan.ENDPOINT_NAMES)
    tracemalloc.start()
    try:
        requests(100, 15_000)
        gc.collect()
        middle, _ = tracemalloc.get_traced_memory()
        requests(15_000, 30_000)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(_plan.ENDPOINT_NAMES) - names <= 1  # at most the __overflow__ endpoint
    assert len(_plan.PLANS) == len(_plan.ENDPOINT_NAMES) == len(_plan.OUTCOMES)
    # 15,000 more distinct names cost (next to) nothing: ~0.6 KB each before.
    assert end - middle < 200_000, f"{end - middle} bytes for 15,000 names past the cap"
    overflow = hypoprobe.snapshot().endpoint("__overflow__")
    assert overflow is not None
    assert overflow.duration.count >= 29_900


def test_distinct_probe_names_past_the_cap_stay_bounded(
    nearly_full: None, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="probe names from data", endpoint=ep, min_share=0.5)

    def request(n: int) -> None:
        with hypoprobe.endpoint(ep):
            for i in range(n):
                with hypoprobe.probe(hid, name=f"query {i}"):
                    pass

    request(2_000)
    sites = _plan.SITES_BY_HYPOTHESIS[hid]
    assert len(sites) <= 31  # what fitted, and the one overflow probe
    assert any(s.name == "__overflow__" for s in sites)
    before = _overflow_total()
    for _ in range(3):  # every request rebuilds nothing and refuses nothing new
        request(2_000)
    assert _overflow_total() == before
    moments = hypoprobe.snapshot().moments_for(hid, ep)
    assert moments.requests == 4
    assert moments.requests_with_probe == 4


def test_overflow_counts_series_not_plan_rebuilds(
    nearly_full: None, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="rebuilds", endpoint=ep, min_share=0.5)
    before = _overflow_total()
    for i in range(100):
        hypoprobe.probe(hid, name=f"probe {i}")(lambda: None)()
        with hypoprobe.endpoint(ep):  # each new probe name rebuilds the plan
            pass
    counted = _overflow_total() - before
    # At most the series of the 100 names and the endpoint's own (6 per probe name and
    # endpoint, 1 outside scopes); counting lookups gave 17,390 for the same workload.
    assert 0 < counted <= 100 * 7 + 10


def test_a_rebuilt_plan_is_not_kept_alive(unique_id: Callable[..., str]) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="plans", endpoint=ep, min_share=0.5)
    with hypoprobe.endpoint(ep):
        pass
    eidx = _plan.KNOWN_ENDPOINTS[ep]
    old = _plan.PLANS[eidx]
    assert old is not None
    ref = weakref.ref(old)
    del old
    hypoprobe.probe(hid, name="new")(lambda: None)()  # a new site: plans are rebuilt
    with hypoprobe.endpoint(ep):
        pass
    gc.collect()
    assert ref() is None
