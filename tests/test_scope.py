"""hypoprobe.endpoint(): request scopes, per-request shares and moments, with exact arithmetic.

Every duration here comes from the deterministic ``fake_clock``, so each expected number is
computed by hand from the amounts the test advanced the clock by.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError
from hypoprobe.model import Histogram, Moments, RequestData, Snapshot

MS = 1_000_000  # nanoseconds


def _request(snap: Snapshot, hid: str, name: str, endpoint: str) -> RequestData:
    found = [
        r for r in snap.requests if (r.hypothesis, r.probe, r.endpoint) == (hid, name, endpoint)
    ]
    assert len(found) == 1, f"no single request series for {(hid, name, endpoint)}"
    return found[0]


def _calls(snap: Snapshot, hid: str, name: str, endpoint: str) -> Histogram:
    found = [
        p.duration
        for p in snap.probes
        if (p.hypothesis, p.probe, p.endpoint) == (hid, name, endpoint)
    ]
    assert len(found) == 1
    return found[0]


def _endpoint_count(snap: Snapshot, endpoint: str) -> int:
    data = snap.endpoint(endpoint)
    return 0 if data is None else data.duration.count


def _at(hist: Histogram, *bounds: float) -> list[int]:
    """Cumulative counts at the given bounds (which must be bounds of the histogram)."""
    cumulative = hist.cumulative()
    return [cumulative[hist.bounds.index(b)] for b in bounds]


def test_moments_and_per_request_histograms_match_hand_computed_sums(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(
        hid, claim="a and b dominate", endpoint=ep, min_share=0.5, slow_threshold=0.5
    )

    @hypoprobe.probe(hid, name="a")
    def a(ns: int) -> None:
        fake_clock.advance(ns)

    @hypoprobe.probe(hid, name="b")
    def b(ns: int) -> None:
        fake_clock.advance(ns)

    def request(endpoint_ns: int, *calls: tuple[Callable[[int], None], int]) -> None:
        with hypoprobe.endpoint(ep):
            for fn, ns in calls:
                fn(ns)
            fake_clock.advance(endpoint_ns - sum(ns for _, ns in calls))

    request(1000 * MS, (a, 100 * MS), (b, 100 * MS), (a, 200 * MS))  # slow, p = 0.4
    request(200 * MS, (a, 50 * MS))  # fast, p = 0.05
    request(100 * MS)  # fast, probes not called: share 0
    request(600 * MS, (b, 600 * MS))  # slow, p = 0.6, share 1

    snap = hypoprobe.snapshot()
    fast = snap.moments_for(hid, ep, slow=False)
    slow = snap.moments_for(hid, ep, slow=True)
    assert (fast.requests, fast.requests_with_probe) == (2, 1)
    assert (slow.requests, slow.requests_with_probe) == (2, 2)
    assert fast.probe_seconds == pytest.approx(0.05, abs=1e-12)
    assert fast.endpoint_seconds == pytest.approx(0.3, abs=1e-12)
    assert fast.probe_seconds_squared == pytest.approx(0.05**2)
    assert fast.endpoint_seconds_squared == pytest.approx(0.2**2 + 0.1**2)
    assert fast.probe_endpoint_seconds_squared == pytest.approx(0.05 * 0.2)
    assert slow.probe_seconds == pytest.approx(1.0, abs=1e-12)
    assert slow.endpoint_seconds == pytest.approx(1.6, abs=1e-12)
    assert slow.probe_seconds_squared == pytest.approx(0.4**2 + 0.6**2)
    assert slow.endpoint_seconds_squared == pytest.approx(1.0**2 + 0.6**2)
    assert slow.probe_endpoint_seconds_squared == pytest.approx(0.4 * 1.0 + 0.6 * 0.6)
    both = snap.moments_for(hid, ep)
    assert both.requests == 4
    assert both.probe_seconds / both.endpoint_seconds == pytest.approx(1.05 / 1.9)

    ra = _request(snap, hid, "a", ep)
    assert ra.probe_seconds_fast.count == 2
    assert ra.probe_seconds_fast.sum == pytest.approx(0.05)
    assert ra.probe_seconds_slow.count == 2
    assert ra.probe_seconds_slow.sum == pytest.approx(0.3)
    assert ra.probe_seconds.count == 4
    assert ra.share.count == 4
    assert ra.share.sum == pytest.approx(0.3 + 0.25)
    assert _at(ra.share, 0.0, 0.25, 0.3, 1.0) == [2, 3, 4, 4]
    assert (ra.calls.count, ra.calls.sum) == (4, 3)
    assert _at(ra.calls, 0, 1, 2) == [2, 3, 4]

    rb = _request(snap, hid, "b", ep)
    assert (rb.probe_seconds_fast.count, rb.probe_seconds_fast.sum) == (2, 0.0)
    assert rb.probe_seconds_slow.count == 2
    assert rb.probe_seconds_slow.sum == pytest.approx(0.7)
    assert rb.share.count == 4
    assert rb.share.sum == pytest.approx(1.1)
    assert _at(rb.share, 0.0, 0.1, 0.995, 1.0) == [2, 3, 3, 4]
    assert (rb.calls.count, rb.calls.sum) == (4, 2)

    assert _calls(snap, hid, "a", ep).count == 3
    assert _calls(snap, hid, "a", ep).sum == pytest.approx(0.35)
    assert _calls(snap, hid, "b", ep).count == 2
    duration = snap.endpoint(ep)
    assert duration is not None
    assert duration.duration.count == 4
    assert duration.duration.sum == pytest.approx(1.9)


def test_without_slow_threshold_every_request_is_not_slow(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    for seconds in (0.001, 10.0, 3000.0):
        with hypoprobe.endpoint(ep):
            fake_clock.advance_seconds(seconds)
    snap = hypoprobe.snapshot()
    assert snap.moments_for(hid, ep, slow=False).requests == 3
    assert snap.moments_for(hid, ep, slow=True).requests == 0


def test_slow_means_strictly_slower_than_the_threshold(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis(slow_threshold=0.25)
    for ns in (250 * MS, 250 * MS + 1):
        with hypoprobe.endpoint(ep):
            fake_clock.advance(ns)
    snap = hypoprobe.snapshot()
    assert snap.moments_for(hid, ep, slow=False).requests == 1
    assert snap.moments_for(hid, ep, slow=True).requests == 1


def test_endpoint_decorator_sync_and_async(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(MS)

    @hypoprobe.endpoint(ep)
    def view(x: int) -> int:
        """View docs."""
        query()
        fake_clock.advance(3 * MS)
        return x + 1

    @hypoprobe.endpoint(ep)
    async def async_view(x: int) -> int:
        query()
        await asyncio.sleep(0)
        fake_clock.advance(MS)
        return x * 2

    @hypoprobe.endpoint(ep)
    def failing_view() -> None:
        query()
        raise KeyError("missing")

    assert view(1) == 2
    assert view.__doc__ == "View docs."
    assert inspect.signature(view) == inspect.signature(view.__wrapped__)  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(async_view)
    assert asyncio.run(async_view(4)) == 8
    with pytest.raises(KeyError, match="missing"):
        failing_view()

    snap = hypoprobe.snapshot()
    mo = snap.moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (3, 3)
    assert mo.probe_seconds == pytest.approx(0.003)
    assert mo.endpoint_seconds == pytest.approx(0.004 + 0.002 + 0.001)


def test_async_context_manager_scope(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()

    fetch = hypoprobe.probe(hid, name="fetch")

    async def handler() -> None:
        async with hypoprobe.endpoint(ep):
            async with fetch:
                fake_clock.advance(2 * MS)
                await asyncio.sleep(0)
            fake_clock.advance(2 * MS)

    asyncio.run(handler())
    mo = hypoprobe.snapshot().moments_for(hid, ep)
    assert mo.requests == 1
    assert mo.probe_seconds == pytest.approx(0.002)
    assert mo.endpoint_seconds == pytest.approx(0.004)


def test_nested_scopes_are_ignored_and_time_flows_to_the_outer_request(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, outer, inner = unique_id(), unique_id("outer"), unique_id("inner")
    hypoprobe.hypothesis(hid, claim="c", endpoint=[outer, inner], min_share=0.5)

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(3 * MS)

    @hypoprobe.endpoint(inner)
    def inner_job() -> None:
        query()

    with hypoprobe.endpoint(outer):
        fake_clock.advance(MS)
        with hypoprobe.endpoint(inner):
            query()
        inner_job()
        fake_clock.advance(MS)

    snap = hypoprobe.snapshot()
    assert _endpoint_count(snap, outer) == 1
    assert _endpoint_count(snap, inner) == 0
    assert snap.moments_for(hid, inner).requests == 0
    mo = snap.moments_for(hid, outer)
    assert mo.requests == 1
    assert mo.probe_seconds == pytest.approx(0.006)
    assert mo.endpoint_seconds == pytest.approx(0.008)
    assert _calls(snap, hid, "q", outer).count == 2
    assert _request(snap, hid, "q", outer).calls.sum == 2


def test_probes_outside_scopes_are_recorded_without_shares(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, _ = registered_hypothesis()

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(5 * MS)

    query()
    query()
    snap = hypoprobe.snapshot()
    outside = _calls(snap, hid, "q", "<none>")
    assert outside.count == 2
    assert outside.sum == pytest.approx(0.01)
    assert [r for r in snap.requests if r.hypothesis == hid and r.endpoint == "<none>"] == []
    assert [mo for mo in snap.moments if mo.hypothesis == hid and mo.endpoint == "<none>"] == []
    assert snap.endpoint("<none>") is None


def test_probe_in_an_endpoint_its_hypothesis_does_not_name_takes_no_share(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, named, other = unique_id(), unique_id("named"), unique_id("other")
    hypoprobe.hypothesis(hid, claim="c", endpoint=named, min_share=0.5)

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(MS)

    with hypoprobe.endpoint(other):
        query()
    snap = hypoprobe.snapshot()
    assert _calls(snap, hid, "q", other).count == 1
    assert _endpoint_count(snap, other) == 1
    assert [r for r in snap.requests if r.hypothesis == hid and r.endpoint == other] == []
    assert snap.moments_for(hid, other).requests == 0


def test_share_zero_is_recorded_for_requests_without_probe_calls(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()

    @hypoprobe.probe(hid, name="rare")
    def rare() -> None:
        fake_clock.advance(MS)

    for i in range(10):
        with hypoprobe.endpoint(ep):
            if i == 0:
                rare()
            fake_clock.advance(MS)
    snap = hypoprobe.snapshot()
    r = _request(snap, hid, "rare", ep)
    assert r.share.count == 10
    assert _at(r.share, 0.0, 0.5) == [9, 10]
    assert _at(r.calls, 0, 1) == [9, 10]
    assert r.probe_seconds_fast.count == 10
    mo = snap.moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (10, 1)


def test_every_hypothesis_on_an_endpoint_gets_its_own_moments(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    h1, h2, ep = unique_id("one"), unique_id("two"), unique_id("ep")
    hypoprobe.hypothesis(h1, claim="c1", endpoint=ep, min_share=0.5)
    hypoprobe.hypothesis(h2, claim="c2", endpoint=[ep, "GET /elsewhere"], min_share=0.2)
    x, y = hypoprobe.probe(h1, name="x"), hypoprobe.probe(h2, name="y")
    with hypoprobe.endpoint(ep):
        with x:
            fake_clock.advance(2 * MS)
        with y:
            fake_clock.advance(MS)
        fake_clock.advance(MS)
    snap = hypoprobe.snapshot()
    m1, m2 = snap.moments_for(h1, ep), snap.moments_for(h2, ep)
    assert (m1.requests, m2.requests) == (1, 1)
    assert m1.probe_seconds == pytest.approx(0.002)
    assert m2.probe_seconds == pytest.approx(0.001)
    assert m1.endpoint_seconds == m2.endpoint_seconds == pytest.approx(0.004)


def test_hypothesis_registered_after_probes_and_scopes_exist_is_picked_up(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, ep = unique_id(), unique_id("ep")

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(MS)

    with hypoprobe.endpoint(ep):
        query()
    assert hypoprobe.snapshot().moments_for(hid, ep).requests == 0
    hypoprobe.hypothesis(hid, claim="late", endpoint=ep, min_share=0.5)
    with hypoprobe.endpoint(ep):
        query()
        fake_clock.advance(MS)
    mo = hypoprobe.snapshot().moments_for(hid, ep)
    assert mo.requests == 1
    assert mo.probe_seconds == pytest.approx(0.001)
    assert mo.endpoint_seconds == pytest.approx(0.002)


def test_a_probe_first_used_inside_a_request_counts_for_that_request(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    for _ in range(2):
        with hypoprobe.endpoint(ep):
            with hypoprobe.probe(hid, name="created-in-request"):
                fake_clock.advance(MS)
            fake_clock.advance(MS)
    mo = hypoprobe.snapshot().moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (2, 2)
    assert mo.probe_seconds == pytest.approx(0.002)


@pytest.mark.parametrize("bad", ["", "  ", None, 5, "<none>", "x" * 201])
def test_bad_endpoint_names_raise_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        hypoprobe.endpoint(bad)  # type: ignore[arg-type]


def test_moments_plus_and_minus_are_inverse() -> None:
    a = Moments("H", "E", False, 3, 2, 1.5, 3.0, 1.0, 4.0, 2.0)
    b = Moments("H", "E", False, 1, 1, 0.5, 1.0, 0.25, 1.0, 0.5)
    assert a.plus(b).plus(b, sign=-1) == a


@pytest.mark.parametrize("kind", ["generator", "async generator"])
def test_endpoint_on_a_generator_function_is_refused_or_covers_the_iteration(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock, kind: str
) -> None:
    hid, ep = registered_hypothesis()

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(MS)

    def rows() -> Iterator[int]:
        for i in range(3):
            query()
            yield i

    async def arows() -> AsyncIterator[int]:
        for i in range(3):
            query()
            yield i

    async def consume(gen: AsyncIterator[int]) -> list[int]:
        return [i async for i in gen]

    try:
        if kind == "generator":
            assert list(hypoprobe.endpoint(ep)(rows)()) == [0, 1, 2]
        else:
            assert asyncio.run(consume(hypoprobe.endpoint(ep)(arows)())) == [0, 1, 2]
    except ConfigurationError:
        return  # refusing at decoration time is a fine answer too
    mo = hypoprobe.snapshot().moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (1, 1)
    assert mo.probe_seconds == pytest.approx(0.003)


@pytest.mark.parametrize("named", [True, False])
def test_scope_made_by_begin_has_every_slot(named: bool, unique_id: Callable[..., str]) -> None:
    # begin() builds its scope without Scope.__init__ (a cheaper request): every slot
    # __init__ sets must be set there too, to the same value.
    from hypoprobe._core import _plan, _scope

    name = unique_id("ep") if named else None
    made = _scope.begin(name, "GET <unmatched>", None, None, _scope.MIDDLEWARE)
    assert made is not None
    try:
        reference = _scope.Scope(made.plan, made.start, _scope.MIDDLEWARE)
        reference.pending, reference.token = made.pending, made.token
        assert (made.plan is _plan.PENDING_PLAN) is not named
        for slot in _scope.Scope.__slots__:
            if slot != "__dict__":
                assert getattr(made, slot) == getattr(reference, slot), slot
    finally:
        _scope.end(made)


def test_finish_and_detach_names_by_the_resolver_and_unsets_in_one_call(
    unique_id: Callable[..., str],
) -> None:
    # A middleware ends its request with one finish(scope, None, True): the resolver is
    # asked once, the request recorded under its name, and the scope unset here.
    from hypoprobe._core import _scope

    ep = unique_id("ep")
    asked: list[object] = []

    def resolve(arg: object) -> str:
        asked.append(arg)
        return ep

    made = _scope.begin(None, "GET <unmatched>", resolve, "the request", _scope.MIDDLEWARE)
    assert made is not None
    _scope.finish(made, None, True)
    assert _scope.CURRENT.get() is None  # detached in the same call
    assert asked == ["the request"]
    found = hypoprobe.snapshot().endpoint(ep)
    assert found is not None
    assert found.duration.count == 1
