"""How close ``hypoprobe_self_seconds_total`` (the estimate) is to what the probes really cost.

Ground truth: the same workload run with probes and endpoint scope, and without either
(the functions' originals, no scope), in interleaved rounds (medians of paired per-round
differences, ``hypoprobe._overhead``): the added time per request, the smallest of three
passes (the calibration's rule: the figure of an uncontended core). Estimate: this
process' calibration (measured in a child interpreter, as in production) times the counts
the probed rounds left in the storage, per request. Each workload is a request of some
plain Python work calling probed functions — few calls, and an N+1 pattern.

Run: ``pytest benchmarks/bench_selfcost.py --benchmark-only -s`` (prints the table; fails
when an estimate is off by more than ``MAX_ERROR``). Under ``--benchmark-disable`` (the
test suite's untimed pass) it runs a few rounds for the plumbing and judges nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import hypoprobe
from hypoprobe import _overhead, _selfcost

pytestmark = pytest.mark.benchmark(group="selfcost")

#: The stated accuracy: |estimate - truth| / truth, per workload (docs/benchmarks.md).
MAX_ERROR = 0.35
#: Ground-truth passes; the smallest added cost is kept (see _selfcost_calibrate).
PASSES = 3

hypoprobe.hypothesis(
    "BENCH-SELF-1", claim="lookups dominate", endpoint="GET /selfcost/{id}", min_share=0.5
)
hypoprobe.hypothesis(
    "BENCH-SELF-2", claim="rendering dominates", endpoint="GET /selfcost/{id}", min_share=0.5
)


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def lookup(i: int) -> int:
    return _work(20) + i


def render(rows: int) -> int:
    return _work(200) + rows


probed_lookup = hypoprobe.probe("BENCH-SELF-1", name="lookup")(lookup)
probed_render = hypoprobe.probe("BENCH-SELF-2", name="render")(render)

#: name -> (lookups per request, renders per request, plain work units per request)
WORKLOADS = {"few calls": (2, 1, 400), "N+1 (30 lookups)": (30, 1, 400)}


def _request(lookups: int, renders: int, units: int, probed: bool) -> Callable[[], None]:
    lk, rd = (probed_lookup, probed_render) if probed else (lookup, render)

    def body() -> None:
        _work(units)
        for i in range(lookups):
            lk(i)
        for _ in range(renders):
            rd(lookups)

    if not probed:
        return body

    def scoped() -> None:
        with hypoprobe.endpoint("GET /selfcost/{id}"):
            body()

    return scoped


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_the_self_cost_estimate_against_a_measured_ground_truth(
    benchmark: Any, workload: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lookups, renders, units = WORKLOADS[workload]
    with_probes = _request(lookups, renders, units, probed=True)
    without = _request(lookups, renders, units, probed=False)
    timed = not benchmark.disabled
    costs = _selfcost.costs(wait=None)
    assert costs is not None, "the calibration failed; see the warning logged"
    before = hypoprobe.snapshot()
    if timed:
        # As the calibration does: the smallest of a few passes, the uncontended figure.
        truth = min(
            (_overhead.measure(with_probes, without, max_seconds=1.5) for _ in range(PASSES)),
            key=lambda m: m.added_ns,
        )
    else:
        truth = _overhead.measure(
            with_probes, without, batch_ns=1, min_rounds=2, max_rounds=2, max_seconds=0.1
        )
    window = hypoprobe.snapshot().minus(before)
    endpoint = window.endpoint("GET /selfcost/{id}")
    assert endpoint is not None
    requests = endpoint.duration.count
    estimated_ns = window.self_seconds["GET /selfcost/{id}"] * 1e9 / requests
    # (untimed, the two rounds may even measure nothing: no division by it)
    error = (estimated_ns - truth.added_ns) / truth.added_ns if truth.added_ns > 0 else math.nan
    benchmark.extra_info.update(
        estimated_ns=estimated_ns, measured_ns=truth.added_ns, error=error, costs=vars(costs)
    )
    benchmark.pedantic(with_probes, rounds=1, iterations=1)  # an entry for the JSON
    if not timed:
        return  # a few untimed rounds: the plumbing ran; their figures mean nothing
    with capsys.disabled():
        print(
            f"\n{workload:18s} measured {truth.added_ns:8.0f} ns/request "
            f"(±{truth.resolution_ns:.0f}), estimated {estimated_ns:8.0f}, "
            f"error {error:+.0%}; bare request {truth.bare_ns / 1000:.1f} us; {costs}"
        )
    assert abs(error) <= MAX_ERROR, (workload, estimated_ns, truth)
