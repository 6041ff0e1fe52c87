"""A real OTLP/HTTP round trip: OTLPMetricExporter -> a receiver on 127.0.0.1 -> protobuf.

The receiver is a plain ``http.server`` started by the test; it decodes each POST with
``opentelemetry-proto``'s ``ExportMetricsServiceRequest``, as a collector's OTLP receiver
would, and the test asserts what arrived.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.resources import Resource

import hypoprobe
from conftest import FakeClock
from hypoprobe import _metrics as m
from hypoprobe import otel
from hypoprobe._core import _faults
from hypoprobe._families import expires_label
from otel_helpers import exp_index, traffic

PROBE_NS = (1_000, 1_500, 2_000, 40_000)
EXTRA_NS = 1_000


class Receiver:
    """An OTLP/HTTP metrics endpoint on 127.0.0.1 that keeps every decoded request."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        #: HTTP status of the next answers, consumed one per request; then 200.
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.paths.append(self.path)
                if status == 200:
                    request = ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    receiver.requests.append(request)
                payload = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
        r.thread.join(10)


def _attrs(kvs: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        which = kv.value.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = tuple(
                getattr(v, v.WhichOneof("value")) for v in kv.value.array_value.values
            )
        else:
            out[kv.key] = getattr(kv.value, which) if which else None
    return out


def _metrics(request: ExportMetricsServiceRequest) -> dict[str, metrics_pb2.Metric]:
    (rm,) = request.resource_metrics
    (sm,) = rm.scope_metrics
    return {metric.name: metric for metric in sm.metrics}


def _point(points: Any, **attrs: object) -> Any:
    want = {k.replace("__", "."): v for k, v in attrs.items()}
    found = [p for p in points if all(_attrs(p.attributes).get(k) == v for k, v in want.items())]
    assert len(found) == 1, f"{attrs}: {len(found)} points"
    return found[0]


def test_otlp_http_round_trip(
    receiver: Receiver, fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("GET /otlp")
    traffic(fake_clock, hid, ep, PROBE_NS, extra_ns=EXTRA_NS)
    resource = Resource.create({"service.name": "campaigns", "service.instance.id": "w-1"})
    handle = otel.start_otel_export(
        OTLPMetricExporter(endpoint=receiver.url, timeout=10),
        interval_seconds=3600.0,
        resource=resource,
    )
    try:
        assert handle.collect_and_export() is True
    finally:
        handle.shutdown()
    # One export on demand, one final export at shutdown; both arrived at /v1/metrics.
    assert receiver.paths == ["/v1/metrics", "/v1/metrics"]
    request = receiver.requests[0]

    (rm,) = request.resource_metrics
    resource_attrs = _attrs(rm.resource.attributes)
    assert resource_attrs["service.name"] == "campaigns"
    assert resource_attrs["service.instance.id"] == "w-1"
    (sm,) = rm.scope_metrics
    assert (sm.scope.name, sm.scope.version) == ("hypoprobe", hypoprobe.__version__)

    metrics = _metrics(request)
    duration = metrics["hypoprobe_probe_duration_nanoseconds"]
    assert duration.unit == "ns"
    assert duration.description == m.PROBE_DURATION.help
    hist = duration.exponential_histogram
    assert hist.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    point = _point(
        hist.data_points, hypoprobe__hypothesis=hid, hypoprobe__probe="query", http__route=ep
    )
    expected: dict[int, int] = {}
    for ns in PROBE_NS:
        expected[exp_index(ns)] = expected.get(exp_index(ns), 0) + 1
    first, last = min(expected), max(expected)
    assert point.scale == 4
    assert point.positive.offset == first
    assert list(point.positive.bucket_counts) == [
        expected.get(j, 0) for j in range(first, last + 1)
    ]
    assert point.count == len(PROBE_NS)
    assert point.sum == sum(PROBE_NS)
    assert not point.HasField("min")
    assert not point.HasField("max")
    assert point.start_time_unix_nano < point.time_unix_nano  # when the export started

    endpoint = _point(
        metrics["hypoprobe_endpoint_duration_nanoseconds"].exponential_histogram.data_points,
        http__route=ep,
    )
    assert endpoint.count == len(PROBE_NS)
    assert endpoint.sum == sum(PROBE_NS) + EXTRA_NS * len(PROBE_NS)

    share = _point(metrics[m.REQUEST_SHARE.name].histogram.data_points, hypoprobe__hypothesis=hid)
    assert share.count == len(PROBE_NS)
    assert sum(share.bucket_counts) == len(PROBE_NS)
    assert len(share.bucket_counts) == len(share.explicit_bounds) + 1

    requests = metrics[m.MOMENT_REQUESTS.name].sum
    assert requests.is_monotonic
    assert requests.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    fast = _point(requests.data_points, hypoprobe__hypothesis=hid, hypoprobe__slow=False)
    assert fast.as_int == len(PROBE_NS)
    probe_seconds = _point(
        metrics[m.MOMENT_PROBE.name].sum.data_points,
        hypoprobe__hypothesis=hid,
        hypoprobe__slow=False,
    )
    assert probe_seconds.as_double == pytest.approx(sum(PROBE_NS) / 1e9, rel=1e-12)

    hypothesis = hypoprobe.snapshot().hypothesis(hid)
    assert hypothesis is not None
    assert hypothesis.expires is not None
    info = _point(metrics[m.HYPOTHESIS_INFO.name].gauge.data_points, hypoprobe__hypothesis=hid)
    got = _attrs(info.attributes)
    # Every label of the family that has a value in the snapshot arrived, typed, ...
    given = {"hypothesis": hid, "endpoint": ep, "expires": expires_label(hypothesis.expires)}
    want = {
        otel.ATTRIBUTES[label]: given[label] if label in given else getattr(hypothesis, label)
        for label in m.HYPOTHESIS_INFO.labels
    }
    assert got == {k: v for k, v in want.items() if v is not None}
    # ... with the values the test registered (expires: the date as written, as on /metrics).
    assert (
        got.items()
        >= {
            "hypoprobe.claim": "the query dominates",
            "hypoprobe.min_share": 0.5,
            "hypoprobe.observed_share": 1.2 / 1.5,
            "hypoprobe.slow_threshold": 0.001,
            "hypoprobe.owner": "perf-team",
            "hypoprobe.ticket": "https://tickets.example/" + hid,
        }.items()
    )
    assert info.as_int == 1


def test_otlp_http_explicit_delta(
    receiver: Receiver, fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("GET /otlp-delta")
    run = traffic(fake_clock, hid, ep, PROBE_NS)
    handle = otel.start_otel_export(
        OTLPMetricExporter(endpoint=receiver.url, timeout=10),
        interval_seconds=3600.0,
        histograms="explicit",
        temporality="delta",
    )
    try:
        assert handle.collect_and_export() is True
        run((3_000,))
        assert handle.collect_and_export() is True
    finally:
        handle.shutdown()
    first, second = (
        _point(
            _metrics(r)[m.PROBE_DURATION.name].histogram.data_points,
            hypoprobe__hypothesis=hid,
            http__route=ep,
        )
        for r in receiver.requests[:2]
    )
    assert _metrics(receiver.requests[0])[m.PROBE_DURATION.name].unit == "s"
    assert (
        _metrics(receiver.requests[1])[m.PROBE_DURATION.name].histogram.aggregation_temporality
        == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    )
    assert (first.count, second.count) == (len(PROBE_NS), 1)
    assert second.sum == pytest.approx(3e-6, rel=1e-12)
    assert second.start_time_unix_nano == first.time_unix_nano
    # Explicit bounds are those of the Prometheus view: one per doubling, 1.024 us and up.
    assert list(first.explicit_bounds[:2]) == [1.024e-06, 2.048e-06]
    assert list(second.bucket_counts[:3]) == [0, 0, 1]


def test_otlp_http_rejected_export_is_retried(
    receiver: Receiver, fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    """A collector answering 400 makes the real exporter return FAILURE; the next one lands."""
    hid, ep = unique_id(), unique_id("GET /otlp-retry")
    run = traffic(fake_clock, hid, ep, (1_000,))
    receiver.statuses = [400]
    failed = _faults.snapshot().get("otel_export_failed", 0)
    handle = otel.start_otel_export(
        OTLPMetricExporter(endpoint=receiver.url, timeout=10),
        interval_seconds=3600.0,
        temporality="delta",
    )
    try:
        assert handle.collect_and_export() is False
        run((2_000,))
        assert handle.collect_and_export() is True
    finally:
        handle.shutdown()
    assert _faults.snapshot().get("otel_export_failed", 0) == failed + 1
    point = _point(
        _metrics(receiver.requests[0])[
            "hypoprobe_probe_duration_nanoseconds"
        ].exponential_histogram.data_points,
        hypoprobe__hypothesis=hid,
        http__route=ep,
    )
    assert (point.count, point.sum) == (2, 3_000)  # the rejected interval was not lost
    errors = _point(
        _metrics(receiver.requests[0])[m.INTERNAL_ERRORS.name].sum.data_points,
        hypoprobe__kind="otel_export_failed",
    )
    assert errors.as_int >= 1  # the failure itself is visible in the next export
