"""Every probe form records the same: the guard on the recording code's inlined copies.

The decorator of functions and coroutine functions carries an inlined copy of
``_probe._record`` (a call costs as much as half the rest), made per signature (a plain
function's own parameters, else ``*args, **kwargs``); the other forms call it. Each form
here times the same work (5 ms per call, two calls per request, 2 ms of the request
outside the probe) in a scope, outside one, and raising, and must leave exactly the same
numbers behind.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import hypoprobe

MS = 1_000_000


class SharedClock:
    """A fake clock shared by every context (asyncio.run's task included)."""

    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


@pytest.fixture
def clock(restore_config: None) -> SharedClock:
    made = SharedClock()
    hypoprobe.configure(clock=made)
    return made


def _form(kind: str, hid: str, clock: SharedClock, fail: bool) -> Callable[[], Any]:
    """One call of ``kind``: 5 ms inside the probe; raises ValueError when ``fail``."""

    def work() -> None:
        clock.advance(5 * MS)
        if fail:
            raise ValueError("work failed")

    if kind.startswith("decorator"):

        def sync() -> None:
            work()

        # A partial is not a plain function: its wrapper forwards *args, **kwargs.
        target = sync if kind == "decorator" else functools.partial(sync)
        return hypoprobe.probe(hid, name="p")(target)
    if kind == "coroutine":

        @hypoprobe.probe(hid, name="p")
        async def coro() -> None:
            work()

        return lambda: asyncio.run(coro())
    if kind == "generator":

        @hypoprobe.probe(hid, name="p")
        def gen() -> Iterator[int]:
            work()
            yield 1

        return lambda: list(gen())
    if kind == "async generator":

        @hypoprobe.probe(hid, name="p")
        async def agen() -> AsyncIterator[int]:
            work()
            yield 1

        async def drain() -> None:
            async for _ in agen():
                pass

        return lambda: asyncio.run(drain())
    if kind == "with":

        def with_block() -> None:
            with hypoprobe.probe(hid, name="p"):
                work()

        return with_block
    assert kind == "async with"

    async def async_with() -> None:
        async with hypoprobe.probe(hid, name="p"):
            work()

    return lambda: asyncio.run(async_with())


FORMS = [
    "decorator",
    "decorator, *args",
    "coroutine",
    "generator",
    "async generator",
    "with",
    "async with",
]


def _recorded(hid: str, ep: str) -> dict[str, Any]:
    snap = hypoprobe.snapshot()
    per_call = {
        p.endpoint: (p.duration.count, round(p.duration.sum, 9))
        for p in snap.probes
        if p.hypothesis == hid
    }
    requests = [r for r in snap.requests if r.hypothesis == hid and r.endpoint == ep]
    moments = snap.moments_for(hid, ep)
    return {
        "per_call": per_call,
        "request_probe": [(r.probe_seconds.count, round(r.probe_seconds.sum, 9)) for r in requests],
        "request_calls": [(r.calls.count, r.calls.sum) for r in requests],
        "share": [(r.share.count, round(r.share.sum, 9)) for r in requests],
        "moments": (
            moments.requests,
            moments.requests_with_probe,
            round(moments.probe_seconds, 9),
            round(moments.endpoint_seconds, 9),
        ),
        "exceptions": sorted(
            (e.exception, e.count) for e in snap.exceptions if e.hypothesis == hid
        ),
    }


@pytest.mark.parametrize("fail", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("kind", FORMS)
def test_every_probe_form_records_identically(
    kind: str, fail: bool, unique_id: Callable[..., str], clock: SharedClock
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="forms", endpoint=ep, min_share=0.5)
    call = _form(kind, hid, clock, fail)

    def guarded() -> None:
        try:
            call()
        except ValueError:
            assert fail
        else:
            assert not fail

    for _ in range(3):  # three requests of two calls, 2 ms outside the probe each
        with hypoprobe.endpoint(ep):
            guarded()
            clock.advance(2 * MS)
            guarded()
    guarded()  # and one call outside any scope
    assert _recorded(hid, ep) == {
        "per_call": {ep: (6, 0.03), "<none>": (1, 0.005)},
        "request_probe": [(3, 0.03)],
        "request_calls": [(3, 6)],
        "share": [(3, round(3 * (10 * 10**9 // 12) / 1e9, 9))],
        "moments": (3, 3, 0.03, 0.036),
        "exceptions": [("ValueError", 7)] if fail else [],
    }
