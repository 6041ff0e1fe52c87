"""Never break the host: faults inside hypoprobe are caught, counted, logged once, not raised.

Faults are forced two ways: a clock that goes backwards (a real-world fault, through the
public ``configure(clock=...)``), and private hooks patched to raise (a stand-in for a bug).
Each test starts from clean fault counters, so "logged once" is checked exactly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

import hypoprobe
from hypoprobe._core import _faults, _plan, _scope
from hypoprobe.model import Snapshot
from hypoprobe.prometheus import families


class Backwards:
    """A clock that runs backwards: every read is earlier than the one before."""

    def __init__(self) -> None:
        self.now = 10**15

    def __call__(self) -> int:
        self.now -= 1_000
        return self.now


@pytest.fixture
def backwards_clock(restore_config: None) -> Backwards:
    clock = Backwards()
    hypoprobe.configure(clock=clock)
    return clock


def _exposed_faults() -> dict[str, float]:
    """The internal-errors counter as the Prometheus collector exposes it."""
    snap = hypoprobe.snapshot()
    only_faults = Snapshot(created_at=0.0, source="", internal_errors=snap.internal_errors)
    for fam in families(only_faults):
        if fam.name == "hypoprobe_internal_errors":
            return {s.labels["kind"]: s.value for s in fam.samples if s.name.endswith("_total")}
    return {}


def _fault_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "internal fault" in r.getMessage()]


def test_clock_going_backwards_is_counted_not_raised(
    unique_id: Callable[..., str],
    clean_faults: None,
    backwards_clock: Backwards,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hypoprobe")
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)

    @hypoprobe.probe(hid, name="q")
    def query(x: int) -> int:
        return x * 3

    @hypoprobe.endpoint(ep)
    def view() -> int:
        return query(2) + query(3)

    for _ in range(5):
        assert view() == 15
        with hypoprobe.probe(hid, name="block"):
            pass

    faults = hypoprobe.snapshot().internal_errors
    assert faults.get("clock_backwards", 0) >= 5
    assert _exposed_faults() == dict(faults)
    logs = _fault_logs(caplog)
    assert len(logs) == len(faults)  # one line per kind, however often it happened
    assert {kind for kind in faults if any(repr(kind) in line for line in logs)} == set(faults)
    snap = hypoprobe.snapshot()
    assert all(p.duration.count == 0 for p in snap.probes if p.hypothesis == hid)


def test_a_failing_hook_on_the_exception_path_leaves_the_exception_alone(
    unique_id: Callable[..., str],
    clean_faults: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hypoprobe")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug inside hypoprobe")

    monkeypatch.setattr(_plan, "count_exception", broken)
    hid = unique_id()
    error = LookupError("the app's own")

    @hypoprobe.probe(hid, name="fails")
    def fails() -> None:
        raise error

    @hypoprobe.probe(hid, name="afails")
    async def afails() -> None:
        raise error

    for _ in range(3):
        with pytest.raises(LookupError) as caught:
            fails()
        assert caught.value is error
        assert not isinstance(caught.value.__context__, RuntimeError)
        with pytest.raises(LookupError) as caught:
            asyncio.run(afails())
        assert caught.value is error

    faults = hypoprobe.snapshot().internal_errors
    assert sum(faults.values()) == 6
    assert _exposed_faults() == dict(faults)
    assert len(_fault_logs(caplog)) == len(faults) == 1
    calls = [p.duration.count for p in hypoprobe.snapshot().probes if p.hypothesis == hid]
    assert sum(calls) == 6  # the duration was still recorded; only the class count failed


def test_a_failing_scope_end_leaves_the_request_alone(
    unique_id: Callable[..., str],
    clean_faults: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hypoprobe")

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("bug inside hypoprobe")

    monkeypatch.setattr(_scope, "_finish", broken)
    ep = unique_id("ep")

    @hypoprobe.endpoint(ep)
    def view(x: int) -> int:
        return x + 1

    @hypoprobe.endpoint(ep)
    async def aview(x: int) -> int:
        return x - 1

    @hypoprobe.endpoint(ep)
    def failing_view() -> None:
        raise PermissionError("denied")

    assert view(1) == 2
    assert asyncio.run(aview(1)) == 0
    with pytest.raises(PermissionError, match="denied") as caught:
        failing_view()
    assert caught.value.__context__ is None
    assert sum(hypoprobe.snapshot().internal_errors.values()) == 3
    assert len(_fault_logs(caplog)) == 1


def test_a_failing_scope_start_leaves_the_request_alone(
    unique_id: Callable[..., str],
    clean_faults: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("no room for a plan")

    ep = unique_id("ep")
    endpoint = hypoprobe.endpoint(ep)
    monkeypatch.setattr(_plan, "plan", broken)
    monkeypatch.setattr(_plan, "PLANS", [None] * len(_plan.PLANS))
    with endpoint as entered:
        result = "ran"
    assert entered is endpoint
    assert result == "ran"
    assert sum(hypoprobe.snapshot().internal_errors.values()) >= 1


def test_fault_logging_never_raises_even_when_logging_is_broken(
    clean_faults: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_warning(*args: object, **kwargs: object) -> None:
        raise OSError("log disk full")

    monkeypatch.setattr(logging.getLogger("hypoprobe"), "warning", broken_warning)
    _faults.record("test_kind")
    _faults.record("test_kind")
    assert _faults.snapshot()["test_kind"] == 2
