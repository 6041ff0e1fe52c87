"""A clock that raises never breaks the host, and never leaves a request scope behind.

The clock is read first thing in every probe form and at every scope's end; a raising
clock (a broken ``configure(clock=...)``, or a monotonic-clock failure) must leave the
wrapped call's result and exceptions alone, count a fault, and leave no scope current
(else every later request of the context would be an inner scope recording nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import hypoprobe
from hypoprobe._core import _faults, _scope
from hypoprobe.integrations.wsgi import HypoprobeMiddleware


class BreakableClock:
    """Integer nanoseconds, 1 ms per read; raises while ``broken``."""

    def __init__(self) -> None:
        self.now = 10**12
        self.broken = False

    def __call__(self) -> int:
        if self.broken:
            raise RuntimeError("clock failed")
        self.now += 1_000_000
        return self.now


@pytest.fixture
def clock(restore_config: None, clean_faults: None) -> BreakableClock:
    made = BreakableClock()
    hypoprobe.configure(clock=made)
    return made


def _faults_counted() -> int:
    # Straight from the fault counters: a snapshot reads the (broken) clock itself.
    return sum(_faults.snapshot().values())


def _forms(hid: str) -> dict[str, Callable[[], Any]]:
    """Each probe form, as a call returning the probed code's result (or raising its error)."""

    @hypoprobe.probe(hid, name="sync")
    def sync() -> str:
        return "sync"

    @hypoprobe.probe(hid, name="coro")
    async def coro() -> str:
        return "coro"

    @hypoprobe.probe(hid, name="gen")
    def gen() -> Iterator[str]:
        yield "gen"

    @hypoprobe.probe(hid, name="agen")
    async def agen() -> AsyncIterator[str]:
        yield "agen"

    async def collect() -> list[str]:
        return [x async for x in agen()]

    def with_block() -> str:
        with hypoprobe.probe(hid, name="with"):
            return "with"

    async def async_with() -> str:
        async with hypoprobe.probe(hid, name="async-with"):
            return "async-with"

    return {
        "sync": sync,
        "coro": lambda: asyncio.run(coro()),
        "gen": lambda: list(gen()),
        "agen": lambda: asyncio.run(collect()),
        "with": with_block,
        "async-with": lambda: asyncio.run(async_with()),
    }


_EXPECTED = {
    "sync": "sync",
    "coro": "coro",
    "gen": ["gen"],
    "agen": ["agen"],
    "with": "with",
    "async-with": "async-with",
}


@pytest.mark.parametrize("form", list(_EXPECTED))
def test_a_raising_clock_leaves_every_probe_form_transparent(
    clock: BreakableClock, unique_id: Callable[..., str], form: str
) -> None:
    call = _forms(unique_id())[form]
    clock.broken = True
    assert call() == _EXPECTED[form]
    assert _faults_counted() >= 1


def test_a_clock_failing_after_the_call_keeps_the_callers_exception(
    clock: BreakableClock, unique_id: Callable[..., str]
) -> None:
    @hypoprobe.probe(unique_id())
    def failing() -> None:
        clock.broken = True  # the read after the call raises
        raise ValueError("the app's own error")

    @hypoprobe.probe(unique_id())
    def ok() -> str:
        clock.broken = True
        return "result"

    with pytest.raises(ValueError, match="the app's own error"):
        failing()
    clock.broken = False
    assert ok() == "result"
    assert _faults_counted() >= 2


def test_a_raising_clock_at_a_scopes_exit_leaves_no_scope_current(
    clock: BreakableClock, unique_id: Callable[..., str]
) -> None:
    ep = unique_id("ep")
    with hypoprobe.endpoint(ep):
        clock.broken = True
    assert _scope.CURRENT.get() is None
    assert _faults_counted() >= 1
    clock.broken = False
    for _ in range(3):
        with hypoprobe.endpoint(ep):
            pass
    found = hypoprobe.snapshot().endpoint(ep)
    assert found is not None
    assert found.duration.count == 3  # the later requests are recorded, not nested


def test_a_raising_clock_at_a_scopes_entry_runs_the_request_unrecorded(
    clock: BreakableClock, unique_id: Callable[..., str]
) -> None:
    ep = unique_id("ep")
    clock.broken = True
    with hypoprobe.endpoint(ep):
        ran = True
    assert ran
    assert _scope.CURRENT.get() is None
    clock.broken = False
    with hypoprobe.endpoint(ep):
        pass
    found = hypoprobe.snapshot().endpoint(ep)
    assert found is not None
    assert found.duration.count == 1


@pytest.mark.parametrize("when", ["start", "end"])
def test_a_raising_clock_in_a_middleware_request(
    clock: BreakableClock, unique_id: Callable[..., str], when: str
) -> None:
    ep = unique_id("ep")
    breaks = [when == "end"]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        if breaks.pop() if breaks else False:  # the first request only
            clock.broken = True
        return [b"ok"]

    wrapped = HypoprobeMiddleware(app, name=lambda environ: f"GET {ep}")
    clock.broken = when == "start"
    body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *a: None)
    assert list(body) == [b"ok"]
    getattr(body, "close", lambda: None)()
    assert _scope.CURRENT.get() is None
    assert _faults_counted() >= 1
    clock.broken = False
    body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *a: None)
    list(body)
    getattr(body, "close", lambda: None)()
    found = hypoprobe.snapshot().endpoint(f"GET {ep}")
    assert found is not None
    assert found.duration.count == 1
