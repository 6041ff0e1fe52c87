"""Per-request cost of naming a customer (``hypoprobe.customer``), beside the same request
without one and beside one prometheus_client ``Histogram.observe``, measured in one run.

Each request opens an endpoint scope of one hypothesis and calls its probe once; the
customer cases add ``hypoprobe.customer(id, value)``: the id is hashed (keyed BLAKE2b) at
the scope's end and added to the hypothesis' seen (and here affected) sketches. Two mixes:
a few recurring customers (the common case: a hash already kept) and a new customer every
request (every hash is a sketch insertion until the sample is full).
Run: ``pytest benchmarks/bench_customers.py --benchmark-only``; the per-request table
(median per request, and added cost over the request without a customer) is printed last.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
import pytest

import hypoprobe

pytestmark = pytest.mark.benchmark(group="customers")

REQUESTS = 200
ROUNDS = 100
#: Per case: (min, median) seconds per request. On a shared machine the minimum over short
#: rounds is the steadier figure.
_RESULTS: dict[str, tuple[float, float]] = {}

hypoprobe.hypothesis(
    "BENCH-CUST", claim="benchmark", endpoint="GET /bench/customers", min_share=0.01
)


@hypoprobe.probe("BENCH-CUST", name="work")
def _work() -> None:
    pass


_REGISTRY = prometheus_client.CollectorRegistry()
_LATENCY = prometheus_client.Histogram("bench_seconds", "latency", registry=_REGISTRY)
_ids = itertools.count()


@pytest.fixture(autouse=True, scope="module")
def _keyed() -> Iterator[None]:
    before = hypoprobe.configure().customer_key
    hypoprobe.configure(customer_key="benchmark-customer-key-000")
    yield
    hypoprobe.configure(customer_key=before)


def _request_plain() -> None:
    with hypoprobe.endpoint("GET /bench/customers"):
        _work()


def _request_recurring() -> None:
    with hypoprobe.endpoint("GET /bench/customers"):
        hypoprobe.customer("acct-42", 300.0)
        _work()


def _request_new_customer() -> None:
    with hypoprobe.endpoint("GET /bench/customers"):
        hypoprobe.customer(next(_ids), 300.0)
        _work()


def _request_plus_prometheus_observe() -> None:
    with hypoprobe.endpoint("GET /bench/customers"):
        _work()
    _LATENCY.observe(0.01)


CASES: dict[str, Callable[[], None]] = {
    "request_no_customer": _request_plain,
    "request_recurring_customer": _request_recurring,
    "request_new_customer_each": _request_new_customer,
    "request_plus_prometheus_observe": _request_plus_prometheus_observe,
}


@pytest.mark.parametrize("case", list(CASES))
def test_customer_cost(benchmark: Any, case: str) -> None:
    fn = CASES[case]

    def run() -> None:
        for _ in range(REQUESTS):
            fn()

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=3)
    if benchmark.stats is not None:
        stats = benchmark.stats.stats
        _RESULTS[case] = (stats.min / REQUESTS, stats.median / REQUESTS)


def teardown_module() -> None:
    if "request_no_customer" not in _RESULTS:
        return
    base_min, base_med = _RESULTS["request_no_customer"]
    print("\nper request: min, median; added over no customer: min, median")
    for case, (lo, med) in _RESULTS.items():
        print(
            f"  {case:<32} {lo * 1e6:6.2f} {med * 1e6:6.2f} us"
            f"   {(lo - base_min) * 1e6:+6.2f} {(med - base_med) * 1e6:+6.2f} us"
        )
