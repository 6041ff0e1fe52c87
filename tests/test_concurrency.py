"""Exact counts under threads, thread churn and asyncio: nothing lost, nothing misattributed.

Durations come from ``fake_clock``, whose time is private to each thread and asyncio task,
so the exact sum every worker recorded is known in advance.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from itertools import pairwise

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe.model import Histogram, Snapshot

MS = 1_000_000


def _probe_hist(snap: Snapshot, hid: str, name: str, endpoint: str) -> Histogram:
    found = [
        p.duration
        for p in snap.probes
        if (p.hypothesis, p.probe, p.endpoint) == (hid, name, endpoint)
    ]
    assert len(found) == 1
    return found[0]


def _expected_counts(bounds: tuple[float, ...], values_ns: Counter[int]) -> list[int]:
    counts = [0] * (len(bounds) + 1)
    for ns, n in values_ns.items():
        counts[bisect_left(bounds, ns / 1e9)] += n
    return counts


def test_eight_threads_times_200000_calls_are_counted_exactly(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    threads_n, requests_n, calls_per_request = 8, 200, 1000
    start = threading.Barrier(threads_n)

    @hypoprobe.probe(hid, name="hot")
    def hot(ns: int) -> None:
        fake_clock.advance(ns)

    def worker(k: int) -> None:
        base = 1_000 * (k + 1)
        start.wait()  # all threads record at the same time
        for _ in range(requests_n):
            with hypoprobe.endpoint(ep):
                for i in range(calls_per_request):
                    hot(base + i % 13)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    per_request = Counter(i % 13 for i in range(calls_per_request))
    values: Counter[int] = Counter()
    for k in range(threads_n):
        for offset, n in per_request.items():
            values[1_000 * (k + 1) + offset] += n * requests_n
    expected_sum_ns = sum(ns * n for ns, n in values.items())
    total_calls = threads_n * requests_n * calls_per_request
    assert total_calls == 1_600_000

    snap = hypoprobe.snapshot()
    hist = _probe_hist(snap, hid, "hot", ep)
    assert hist.count == total_calls
    assert hist.sum == expected_sum_ns / 1e9
    assert list(hist.counts) == _expected_counts(hist.bounds, values)
    mo = snap.moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (threads_n * requests_n,) * 2
    assert mo.probe_seconds == expected_sum_ns / 1e9
    assert mo.endpoint_seconds == expected_sum_ns / 1e9  # the probe is all the request does
    (request,) = [r for r in snap.requests if r.hypothesis == hid]
    assert (request.calls.count, request.calls.sum) == (threads_n * requests_n, total_calls)


def test_thread_churn_loses_no_counts(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    threads_n, calls = 200, 50

    @hypoprobe.probe(hid, name="short")
    def short(ns: int) -> None:
        fake_clock.advance(ns)

    def worker(k: int) -> None:
        with hypoprobe.endpoint(ep):
            for _ in range(calls):
                short(k + 1_000)

    seen: list[int] = []
    batch = 40
    for first in range(0, threads_n, batch):
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(first, first + batch)]
        for t in threads:
            t.start()
        # Collect while threads come and go: a count never goes down, nor jumps twice.
        seen.append(_probe_hist(hypoprobe.snapshot(), hid, "short", ep).count)
        for t in threads:
            t.join()
        del threads
        gc.collect()
        seen.append(_probe_hist(hypoprobe.snapshot(), hid, "short", ep).count)

    assert seen == sorted(seen)
    assert seen[-1] == threads_n * calls
    snap = hypoprobe.snapshot()
    hist = _probe_hist(snap, hid, "short", ep)
    assert hist.sum == sum((k + 1_000) * calls for k in range(threads_n)) / 1e9
    mo = snap.moments_for(hid, ep)
    assert mo.requests == threads_n
    assert mo.probe_seconds == hist.sum
    gc.collect()  # the dead threads' shards are garbage now: their counts must stay
    assert threading.active_count() < 10
    assert _probe_hist(hypoprobe.snapshot(), hid, "short", ep).count == threads_n * calls


def test_thousand_concurrent_asyncio_tasks_attribute_exactly(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    tasks_n = 1000

    @hypoprobe.probe(hid, name="query")
    async def query(ns: int) -> None:
        fake_clock.advance(ns // 2)
        await asyncio.sleep(0)  # let every other request run in between
        fake_clock.advance(ns - ns // 2)

    def plan(i: int) -> tuple[int, int, int]:
        """Task i: calls, probe time per call, other time: all different across tasks."""
        return i % 3 + 1, (i % 10 + 1) * MS, ((i * 7) % 11 + 1) * MS

    async def main() -> None:
        entered = 0
        all_in = asyncio.Event()

        async def handler(i: int) -> None:
            nonlocal entered
            calls, per_call, other = plan(i)
            async with hypoprobe.endpoint(ep):
                entered += 1
                if entered == tasks_n:
                    all_in.set()
                await all_in.wait()  # every request is in flight at once
                for _ in range(calls):
                    await query(per_call)
                fake_clock.advance(other)
                await asyncio.sleep(0)

        await asyncio.gather(*(handler(i) for i in range(tasks_n)))

    asyncio.run(main())

    p = [plan(i)[0] * plan(i)[1] / 1e9 for i in range(tasks_n)]
    e = [(plan(i)[0] * plan(i)[1] + plan(i)[2]) / 1e9 for i in range(tasks_n)]
    snap = hypoprobe.snapshot()
    mo = snap.moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (tasks_n, tasks_n)
    assert mo.probe_seconds == pytest.approx(sum(p), rel=1e-12)
    assert mo.endpoint_seconds == pytest.approx(sum(e), rel=1e-12)
    # Misattributed time would keep the sums but change every per-request product.
    assert mo.probe_seconds_squared == pytest.approx(sum(x * x for x in p), rel=1e-9)
    assert mo.endpoint_seconds_squared == pytest.approx(sum(x * x for x in e), rel=1e-9)
    assert mo.probe_endpoint_seconds_squared == pytest.approx(
        sum(x * y for x, y in zip(p, e, strict=True)), rel=1e-9
    )
    (request,) = [r for r in snap.requests if r.hypothesis == hid]
    calls_seen = request.calls.cumulative()
    by_calls = Counter(plan(i)[0] for i in range(tasks_n))
    assert calls_seen[:4] == [0, by_calls[1], by_calls[1] + by_calls[2], tasks_n]
    share_sum = sum(int(x * 1e9) * 1_000_000_000 // int(y * 1e9) for x, y in zip(p, e, strict=True))
    assert request.share.sum == pytest.approx(share_sum / 1e9, rel=1e-12)
    endpoint = snap.endpoint(ep)
    assert endpoint is not None
    assert endpoint.duration.count == tasks_n


def test_threads_each_see_their_own_request(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    threads_n = 11  # 0 to 10 calls: the calls histogram has a bucket for each
    inside = threading.Barrier(threads_n)

    @hypoprobe.probe(hid, name="q")
    def query(ns: int) -> None:
        fake_clock.advance(ns)

    def worker(k: int) -> None:
        with hypoprobe.endpoint(ep):
            inside.wait()  # every thread's request is open at once
            for _ in range(k):
                query(MS)
            fake_clock.advance(MS)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    snap = hypoprobe.snapshot()
    (request,) = [r for r in snap.requests if r.hypothesis == hid]
    assert request.calls.counts[:threads_n] == (1,) * threads_n
    mo = snap.moments_for(hid, ep)
    assert mo.probe_endpoint_seconds_squared == pytest.approx(
        sum(k * 1e-3 * (k + 1) * 1e-3 for k in range(threads_n)), rel=1e-12
    )


def test_one_endpoint_object_shared_by_concurrent_tasks(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    campaigns = hypoprobe.endpoint(ep)  # created once, at import time, in a real app
    tasks_n = 200

    @hypoprobe.probe(hid, name="q")
    async def query(ns: int) -> None:
        await asyncio.sleep(0)
        fake_clock.advance(ns)

    async def handler(i: int) -> None:
        async with campaigns:
            await query((i % 5 + 1) * MS)
            fake_clock.advance(MS)

    async def main() -> None:
        await asyncio.gather(*(handler(i) for i in range(tasks_n)))

    asyncio.run(main())
    snap = hypoprobe.snapshot()
    mo = snap.moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (tasks_n, tasks_n)
    p = [(i % 5 + 1) * 1e-3 for i in range(tasks_n)]
    assert mo.probe_seconds == pytest.approx(sum(p), rel=1e-12)
    assert mo.probe_endpoint_seconds_squared == pytest.approx(
        sum(x * (x + 1e-3) for x in p), rel=1e-9
    )
    assert not snap.internal_errors.get("scope_context")


def test_one_endpoint_object_shared_by_threads_and_nested(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    shared = hypoprobe.endpoint(ep)
    threads_n, requests_n = 4, 50
    inside = threading.Barrier(threads_n)

    def worker() -> None:
        for i in range(requests_n):
            with shared:
                if i == 0:
                    inside.wait()  # all threads hold a request of the same object
                with shared, hypoprobe.probe(hid, name="q"):  # nested use: ignored
                    fake_clock.advance(MS)
                fake_clock.advance(MS)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mo = hypoprobe.snapshot().moments_for(hid, ep)
    assert (mo.requests, mo.requests_with_probe) == (threads_n * requests_n,) * 2
    assert mo.endpoint_seconds == pytest.approx(threads_n * requests_n * 2e-3, rel=1e-12)


def test_collecting_while_threads_record_sees_counts_only_grow(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    hid, ep = registered_hypothesis()
    threads_n, requests_n = 4, 2_000

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(1_000)

    def worker() -> None:
        for _ in range(requests_n):
            with hypoprobe.endpoint(ep):
                query()

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    seen: list[tuple[int, int]] = []
    while any(t.is_alive() for t in threads):
        snap = hypoprobe.snapshot()  # a scrape in the middle of the load
        seen.append((_probe_hist(snap, hid, "q", ep).count, snap.moments_for(hid, ep).requests))
    for t in threads:
        t.join()
    snap = hypoprobe.snapshot()
    final = (_probe_hist(snap, hid, "q", ep).count, snap.moments_for(hid, ep).requests)
    assert final == (threads_n * requests_n,) * 2
    for (calls_a, requests_a), (calls_b, requests_b) in pairwise([*seen, final]):
        assert calls_a <= calls_b
        assert requests_a <= requests_b


def test_a_thread_that_exits_never_steps_a_float_total_back(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock
) -> None:
    # Sums of squares (the variance of the share) are float totals over every thread's
    # shard. An exiting thread's shard is folded into the retired sum, which regroups the
    # additions: with these three requests, (a + b) + c is an ulp above (c + a) + b.
    # Prometheus would take that ulp down for a counter reset.
    hid, ep = registered_hypothesis()
    durations = [574 * MS, 249 * MS, 206 * MS]
    a, b, c = ((ns / 1e9) ** 2 for ns in durations)
    assert (c + a) + b < (a + b) + c

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(MS)

    def worker(ns: int, recorded: threading.Event, leave: threading.Event) -> None:
        with hypoprobe.endpoint(ep):
            query()
            fake_clock.advance(ns - MS)
        recorded.set()
        leave.wait(30)

    threads, leave = [], [threading.Event() for _ in durations]
    for ns, go in zip(durations, leave, strict=True):  # one after the other: shards in order
        recorded = threading.Event()
        thread = threading.Thread(target=worker, args=(ns, recorded, go))
        thread.start()
        assert recorded.wait(30)
        threads.append(thread)
    try:
        before = hypoprobe.snapshot().moments_for(hid, ep).endpoint_seconds_squared
        leave[2].set()
        threads[2].join()  # its shard is retired as its thread state is cleared
        gc.collect()
        after = hypoprobe.snapshot().moments_for(hid, ep).endpoint_seconds_squared
    finally:
        for go in leave:
            go.set()
        for thread in threads:
            thread.join()
    assert before == (a + b) + c
    assert after >= before
    assert hypoprobe.snapshot().moments_for(hid, ep).endpoint_seconds_squared >= before
