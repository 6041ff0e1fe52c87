"""Shared pieces of the OpenTelemetry export tests: a capturing exporter, traffic, lookups."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

import hypoprobe
from conftest import FakeClock


class CapturingExporter(MetricExporter):
    """Keeps every ``MetricsData`` it is given; can be told to fail, raise or block."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[MetricsData] = []
        self.calls = 0
        self.shutdowns = 0
        #: Behaviour of the next calls, consumed one per call: "ok", "fail", "raise", "block".
        self.script: list[str] = []
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.lock = threading.Lock()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        with self.lock:
            self.calls += 1
            action = self.script.pop(0) if self.script else "ok"
        if action == "raise":
            raise ConnectionError("collector unreachable (test)")
        if action == "fail":
            return MetricExportResult.FAILURE
        if action == "block":
            self.blocked.set()
            self.release.wait(30)
        with self.lock:
            self.received.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shutdowns += 1


def metrics_of(data: MetricsData) -> dict[str, Metric]:
    (rm,) = data.resource_metrics
    (sm,) = rm.scope_metrics
    return {metric.name: metric for metric in sm.metrics}


def points(data: MetricsData, name: str, **attrs: object) -> list[Any]:
    """Data points of metric ``name`` whose attributes include ``attrs`` (dots as ``__``)."""
    want = {k.replace("__", "."): v for k, v in attrs.items()}
    metric = metrics_of(data).get(name)
    if metric is None:
        return []
    return [
        p
        for p in metric.data.data_points
        if all((p.attributes or {}).get(k) == v for k, v in want.items())
    ]


def one_point(data: MetricsData, name: str, **attrs: object) -> Any:
    found = points(data, name, **attrs)
    assert len(found) == 1, f"{name} {attrs}: {len(found)} points"
    return found[0]


def exp_index(ns: int) -> int:
    """OpenTelemetry scale-4 bucket index of an integer ns value: base**j < ns <= base**(j+1).

    In integers: 2**j < ns**16 <= 2**(j+1), so no floating point is involved.
    """
    return (ns**16 - 1).bit_length() - 1


def traffic(
    clock: FakeClock,
    hid: str,
    endpoint: str,
    probe_ns: Sequence[int],
    *,
    extra_ns: int = 500,
    name: str = "query",
) -> Callable[[Iterable[int]], None]:
    """Register ``hid`` and return ``run(durations)``: one request per duration, each with
    one probed call of that many ns plus ``extra_ns`` outside the probe. Runs ``probe_ns``."""
    hypoprobe.hypothesis(
        hid,
        claim="the query dominates",
        endpoint=endpoint,
        min_share=0.5,
        slow_threshold=0.001,
        owner="perf-team",
        ticket="https://tickets.example/" + hid,
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        expires="2099-12-31",
    )

    @hypoprobe.probe(hid, name=name)
    def query(ns: int) -> None:
        clock.advance(ns)

    def run(durations: Iterable[int]) -> None:
        for ns in durations:
            with hypoprobe.endpoint(endpoint):
                query(ns)
                clock.advance(extra_ns)

    run(probe_ns)
    return run
