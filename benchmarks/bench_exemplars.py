"""Per-request cost of exemplars and slowest requests, with an OpenTelemetry span and without.

Each case runs requests of one endpoint whose hypothesis has one probe, called three times
per request, in many short rounds (min and median per request are reported; the minimum
is the steadier figure on a shared machine). The span, when there is one, is started once
around the whole round: what is measured is hypoprobe's own cost at the request's end (the
span lookup, the exemplar offers, the slowest-request heaps), not the span's (the span
cases still carry 1/50 of one span's start and end per request).

Cases, side by side in one run:

* ``off``: ``exemplars=False, slowest_requests=0`` (the hook is one global check);
* ``slowest_only``: ``exemplars=False``, slowest requests kept (default K=5);
* ``defaults_no_span``: the defaults, no span active (one span lookup per request);
* ``defaults_span``: the defaults, a span active (exemplars offered on every request);
* ``exemplars_off_span``: a span active, exemplars switched off.

Run: ``pytest benchmarks/bench_exemplars.py --benchmark-only``; the table (per request, and
added over ``off``) is printed at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import hypoprobe

pytestmark = pytest.mark.benchmark(group="exemplars")

REQUESTS = 50
ROUNDS = 300
ENDPOINT = "GET /bench-exemplars"
_RESULTS: dict[str, tuple[float, float]] = {}

hypoprobe.hypothesis(
    "BENCH-EX", claim="benchmark: exemplars at the request's end", endpoint=ENDPOINT, min_share=0.5
)
_TRACER = TracerProvider().get_tracer("bench")


@hypoprobe.probe("BENCH-EX", name="query")
def _query() -> None:
    pass


def _requests() -> None:
    for _ in range(REQUESTS):
        with hypoprobe.endpoint(ENDPOINT):
            _query()
            _query()
            _query()


def _traced_requests() -> None:
    with _TRACER.start_as_current_span("round"):
        _requests()


CASES: dict[str, tuple[dict[str, Any], Callable[[], None]]] = {
    "off": ({"exemplars": False, "slowest_requests": 0}, _requests),
    "slowest_only": ({"exemplars": False, "slowest_requests": 5}, _requests),
    "defaults_no_span": ({"exemplars": True, "slowest_requests": 5}, _requests),
    "defaults_span": ({"exemplars": True, "slowest_requests": 5}, _traced_requests),
    "exemplars_off_span": ({"exemplars": False, "slowest_requests": 5}, _traced_requests),
}


@pytest.fixture
def configured(request: pytest.FixtureRequest) -> Iterator[Callable[[], None]]:
    settings, run = CASES[request.param]
    before = hypoprobe.configure()
    hypoprobe.configure(**settings)
    try:
        yield run
    finally:
        hypoprobe.configure(exemplars=before.exemplars, slowest_requests=before.slowest_requests)


@pytest.mark.parametrize("configured", list(CASES), indirect=True)
def test_request_end(benchmark: Any, configured: Callable[[], None], request: Any) -> None:
    benchmark.pedantic(configured, rounds=ROUNDS, warmup_rounds=10)
    if benchmark.stats is not None:
        stats = benchmark.stats.stats
        name = request.node.callspec.id
        _RESULTS[name] = (stats.min / REQUESTS, stats.median / REQUESTS)
    # Something was recorded (the cases are not all no-ops).
    endpoint = hypoprobe.snapshot().endpoint(ENDPOINT)
    assert endpoint is not None
    assert endpoint.duration.count > 0


def teardown_module() -> None:
    if not _RESULTS:
        return
    base_min, base_median = _RESULTS.get("off", (0.0, 0.0))
    lines = [
        "",
        f"Per request (endpoint + 3 probe calls), {time.strftime('%Y-%m-%d %H:%M')}:",
        f"  {'case':22s} {'min us':>8s} {'median us':>10s} {'added min ns':>13s} "
        f"{'added median ns':>16s}",
    ]
    for name, (lo, med) in _RESULTS.items():
        lines.append(
            f"  {name:22s} {lo * 1e6:8.2f} {med * 1e6:10.2f} {(lo - base_min) * 1e9:13.0f} "
            f"{(med - base_median) * 1e9:16.0f}"
        )
    print("\n".join(lines))
