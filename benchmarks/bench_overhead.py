"""The probe's own cost, side by side with what a user would otherwise reach for.

Every case wraps the same no-op function and is timed over LOOP calls in one run; the
budgets in conftest.py compare added costs (case minus bare call) as ratios.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import hypoprobe

from .budgets import LOOP

pytestmark = pytest.mark.benchmark(group="overhead")


def noop() -> None:
    return None


def _loop(fn: Callable[[], Any]) -> None:
    for _ in range(LOOP):
        fn()


def passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def floor(fn: Callable[..., Any]) -> Callable[..., Any]:
    clock = time.perf_counter_ns

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            clock() - t0

    return wrapper


@pytest.fixture(scope="module")
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest.fixture(scope="module", autouse=True)
def hypotheses() -> None:
    for i in range(3):
        hypoprobe.hypothesis(
            f"BENCH-{i}",
            claim="benchmark",
            endpoint="GET /bench",
            min_share=0.5,
        )


def test_bare_call(benchmark: Any) -> None:
    benchmark(_loop, noop)


def test_passthrough_wrapper(benchmark: Any) -> None:
    benchmark(_loop, passthrough(noop))


def test_floor_two_clock_reads(benchmark: Any) -> None:
    benchmark(_loop, floor(noop))


def test_probe_in_scope(benchmark: Any) -> None:
    probed = hypoprobe.probe("BENCH-0", name="bench.noop")(noop)
    probed()
    with hypoprobe.endpoint("GET /bench"):
        probed()
        benchmark(_loop, probed)


def test_probe_outside_scope(benchmark: Any) -> None:
    probed = hypoprobe.probe("BENCH-0", name="bench.noop")(noop)
    probed()
    benchmark(_loop, probed)


def test_probe_disabled(benchmark: Any) -> None:
    probed = hypoprobe.probe("BENCH-0", name="bench.noop")(noop)
    hypoprobe.configure(enabled=False)
    try:
        benchmark(_loop, probed)
    finally:
        hypoprobe.configure(enabled=True)


def test_probe_context_manager_in_scope(benchmark: Any) -> None:
    def with_probe() -> None:
        with hypoprobe.probe("BENCH-0", name="bench.with"):
            pass

    with hypoprobe.endpoint("GET /bench"):
        with_probe()
        benchmark(_loop, with_probe)


def test_prometheus_client_time(
    benchmark: Any, registry: prometheus_client.CollectorRegistry
) -> None:
    hist = prometheus_client.Histogram("bench_noop_seconds", "bench", registry=registry)
    benchmark(_loop, hist.time()(noop))


def test_otel_record(benchmark: Any) -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hist = provider.get_meter("bench").create_histogram("bench.noop", unit="s")
    attributes = {"hypothesis": "BENCH-0"}
    clock = time.perf_counter_ns

    def recorded(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                hist.record((clock() - t0) / 1e9, attributes)

        return wrapper

    benchmark(_loop, recorded(noop))
    provider.shutdown()


def test_endpoint_scope_3_hypotheses(benchmark: Any) -> None:
    for i in range(3):
        hypoprobe.probe(f"BENCH-{i}", name="bench.scoped")(noop)()

    def one_request() -> None:
        with hypoprobe.endpoint("GET /bench"):
            pass

    one_request()
    benchmark(_loop, one_request)
