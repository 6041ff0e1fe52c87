"""The request end compiled per plan records exactly what the generic one does.

``_request_end.compile_end`` writes a plan's end-of-request recording as straight-line
source; ``_scope._finish`` is the reference. Each example registers hypotheses (with and
without slow thresholds, with zero to three probes each), sends requests with random
probe calls, durations and outcomes through both, each into a fresh shard of its own, and
compares every integer, every float and every request offered to the slowest lists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hypoprobe
from hypoprobe._core import _plan, _request_end, _scope
from hypoprobe._core._storage import STORAGE, TLS
from hypoprobe._observers import _slowest

_names = itertools.count()

# One hypothesis: its slow threshold (s, or None) and how many probes it has.
hypothesis_specs = st.lists(
    st.tuples(st.one_of(st.none(), st.sampled_from([1e-6, 1e-4, 2e-3])), st.integers(0, 3)),
    min_size=1,
    max_size=3,
)
# One request: elapsed ns, then per accumulator slot (calls, probe ns), its outcome.
requests = st.lists(
    st.tuples(
        st.integers(0, 5_000_000),
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5_000_000)), max_size=9),
        st.sampled_from(["", "2xx", "5xx"]),
        st.sampled_from(["", "ValueError"]),
    ),
    min_size=1,
    max_size=8,
)


def _plan_of(specs: list[tuple[float | None, int]]) -> _plan.Plan:
    n = next(_names)
    endpoint = f"GET /request-end/{n}"
    for i, (slow, probes) in enumerate(specs):
        hid = f"END-{n}-{i}"
        hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, slow_threshold=slow)
        for j in range(probes):
            hypoprobe.probe(hid, name=f"p{j}")(lambda: None)()
    eidx = _plan.endpoint_index(endpoint)
    return _plan.plan(eidx)


@pytest.fixture
def offered(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every request offered to a slowest list, in order (the lists themselves untouched)."""
    seen: list[tuple[Any, ...]] = []

    def admit(top: Any, hid: str, endpoint: str, request: Any, trace_id: int) -> None:
        seen.append((id(top), hid, endpoint, request, trace_id))

    monkeypatch.setattr(_slowest, "_admit", admit)
    monkeypatch.setattr(_scope, "TRACE", False)  # untraced: the compiled path's case
    return seen


def _record_into(
    end: Callable[[Any, int], None], plan: _plan.Plan, reqs: list[Any]
) -> tuple[list[int], list[float]]:
    ints, floats = STORAGE.shard()
    saved = TLS.ints, TLS.floats
    mine: tuple[list[int], list[float]] = ([0] * len(ints), [0.0] * len(floats))
    TLS.ints, TLS.floats = TLS.shard = mine
    try:
        for elapsed, slots, status, exception in reqs:
            scope = _scope.Scope(plan, 0)
            for pos in range(plan.width):
                calls, ns = slots[pos] if pos < len(slots) else (0, 0)
                if calls:
                    scope.acc[pos] = calls << _plan.CALLS_SHIFT | ns
            scope.status = status
            if exception:
                scope.exception = exception
            end(scope, elapsed)
    finally:
        TLS.ints, TLS.floats = TLS.shard = saved
    return mine


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=hypothesis_specs, reqs=requests)
def test_compiled_end_records_what_the_generic_end_records(
    offered: list[tuple[Any, ...]], specs: list[tuple[float | None, int]], reqs: list[Any]
) -> None:
    plan = _plan_of(specs)
    for _, _, status, exception in reqs:  # outcomes exist: a new one goes to the generic end
        _plan.outcome_series(plan, (status, exception) if exception else status)
    plan = _plan.plan(plan.endpoint_index)
    assert plan.end is not None
    assert plan.end is not _scope._finish
    offered.clear()
    generic = _record_into(_scope._finish, plan, reqs)
    generic_offers = list(offered)
    offered.clear()
    compiled = _record_into(plan.end, plan, reqs)
    assert compiled[0] == generic[0]
    assert compiled[1] == generic[1]
    assert offered == generic_offers


def test_compiled_end_leaves_what_it_cannot_do_to_the_generic_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = _plan_of([(None, 1)])
    calls: list[int] = []
    monkeypatch.setattr(_scope, "TRACE", False)
    end = _request_end.compile_end(plan)
    namespace = end.__globals__
    monkeypatch.setitem(namespace, "generic", lambda scope, elapsed: calls.append(elapsed))
    scope = _scope.Scope(plan, 0)
    scope.status = "418-unseen"  # an outcome without its series yet
    end(scope, 7)
    scope = _scope.Scope(plan, 0)
    end(scope, _plan.TIME_LIMIT)  # past the accumulator's limit
    end(_scope.Scope(plan, 0), -1)  # a clock that went backwards
    saved = TLS.ints, TLS.floats
    TLS.ints, TLS.floats = TLS.shard = [0], [0.0]  # a shard that does not cover the plan
    try:
        end(_scope.Scope(plan, 0), 9)
    finally:
        TLS.ints, TLS.floats = TLS.shard = saved
    assert calls == [7, _plan.TIME_LIMIT, -1, 9]


def test_plans_that_keep_segments_apart_use_the_generic_end() -> None:
    n = next(_names)
    endpoint = f"GET /request-end-segments/{n}"
    hypoprobe.hypothesis(
        f"END-SEG-{n}", claim="c", endpoint=endpoint, min_share=0.5, segments=["free", "pro"]
    )
    plan = _plan.plan(_plan.endpoint_index(endpoint))
    assert plan.end is _scope._finish


def test_a_plan_built_inside_another_build_stays_generic(monkeypatch: pytest.MonkeyPatch) -> None:
    # A signal handler's request building a plan while the interrupted code builds one:
    # compiling (about 1 ms) there would let a fast signal storm nest builds without end.
    n = next(_names)
    endpoint = f"GET /request-end-nested/{n}"
    hypoprobe.hypothesis(f"END-NEST-{n}", claim="c", endpoint=endpoint, min_share=0.5)
    eidx = _plan.endpoint_index(endpoint)
    monkeypatch.setattr(_plan, "_building", 1)
    assert _plan.plan(eidx).end is None
    monkeypatch.setattr(_plan, "_building", 0)
    _plan.invalidate()
    assert _plan.plan(eidx).end is not None
