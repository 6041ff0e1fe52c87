"""Shared fixtures of the test suite (generic: any test module may use them).

hypoprobe's state is process-wide; tests stay independent by naming things uniquely
(``unique_id``) and by comparing before/after snapshots, so they can run in any order and
beside tests that use ``hypoprobe.testing.reset()``. Time is made
deterministic with ``fake_clock``, which installs a clock through the public
``hypoprobe.configure(clock=...)`` and restores the previous one afterwards.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

import hypoprobe
from hypoprobe import testing

_counter = itertools.count(1)
_T = TypeVar("_T")

# One fixed self-cost calibration for the suite and every process it starts: calibrating
# takes each process about a second. tests/test_selfcost.py runs the real calibration.
# Fixed, not defaulted: the expected report texts in tests/expected/ show its figures.
os.environ["HYPOPROBE_SELF_COST"] = (
    '{"call_ns": 400, "call_outside_ns": 350, "request_ns": 2000, "hypothesis_ns": 300, '
    '"probe_row_ns": 600}'
)


#: The suite's fake clock is the one users get (hypoprobe.testing).
FakeClock = testing.FakeClock


@pytest.fixture
def clean_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh fault counters for one test (the process-wide ones come back afterwards): the
    counts, the faults queued but not folded yet, and which kinds were already logged."""
    from hypoprobe._core import _faults

    monkeypatch.setattr(_faults, "COUNTS", {})
    monkeypatch.setattr(_faults, "_queue", collections.deque())
    monkeypatch.setattr(_faults, "_logged", {})


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """Install a :class:`FakeClock` as hypoprobe's duration clock for one test, then restore.

    Wall time stays real here (tests compare timestamps with ``time.time()``); tests of
    instants use ``hypoprobe.testing.fake_clock()`` itself.
    """
    with testing.fake_clock(wall=False) as clock:
        yield clock


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> Callable[..., str]:
    """A factory of names unique in this process: valid hypothesis ids and endpoint names.

    ``unique_id("ep")`` returns something like ``T17-test_share-ep``.
    """
    test = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:30]

    def make(suffix: str = "") -> str:
        name = f"T{next(_counter)}-{os.getpid()}-{test}"
        return f"{name}-{suffix}" if suffix else name

    return make


@pytest.fixture
def registered_hypothesis(unique_id: Callable[..., str]) -> Callable[..., tuple[str, str]]:
    """A factory registering a fresh hypothesis on a fresh endpoint: returns (id, endpoint).

    Defaults are the suite's usual ones (``claim="c"``, ``min_share=0.5``); any other
    ``hypoprobe.hypothesis`` argument passes through::

        hid, ep = registered_hypothesis(slow_threshold=0.25)
    """

    def make(claim: str = "c", min_share: float = 0.5, **options: Any) -> tuple[str, str]:
        hid, ep = unique_id(), unique_id("ep")
        hypoprobe.hypothesis(hid, claim=claim, endpoint=ep, min_share=min_share, **options)
        return hid, ep

    return make


def eventually(
    condition: Callable[[], _T | None],
    timeout: float = 30,
    interval: float = 0.05,
    explain: Callable[[], str] = lambda: "",
) -> _T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Fails the test after ``timeout`` seconds, with ``explain()`` (a process' stderr, say)::

        found = eventually(lambda: SUMMARY.search(run.err()), explain=run.err)
    """
    end = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() >= end:
            pytest.fail(f"condition not met after {timeout}s\n{explain()}")
        time.sleep(interval)


@pytest.fixture
def restore_config() -> Iterator[None]:
    """Put back every setting a test changed through ``hypoprobe.configure``."""
    before = hypoprobe.configure()
    try:
        yield
    finally:
        hypoprobe.configure(**{f.name: getattr(before, f.name) for f in dataclasses.fields(before)})


@pytest.fixture(scope="session", autouse=True)
def _room_for_every_tests_series() -> Iterator[None]:
    """One test session records many thousands of series, all in this one process.

    Past the default cap of 2,000 every later test's series would collapse into the
    overflow series; the cap itself is tested by lowering it on purpose.
    """
    previous = hypoprobe.configure().max_series
    hypoprobe.configure(max_series=1_000_000)
    yield
    hypoprobe.configure(max_series=previous)
