"""OpenTelemetry export: the same numbers as hypoprobe's snapshot and its /metrics view.

Exporters here are real SDK exporters (ConsoleMetricExporter) or a MetricExporter subclass
that captures what it is given; the OTLP/HTTP round trip is in test_otel_otlp.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    ExponentialHistogram,
    Gauge,
    Histogram,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

import hypoprobe
from conftest import FakeClock
from hypoprobe import _buckets, _faults, otel
from hypoprobe import _metrics as m
from hypoprobe.prometheus import families
from hypoprobe.snapshot import (
    EndpointData,
    EndpointOutcome,
    ExceptionCount,
    HypothesisInfo,
    Moments,
    ProbeData,
    RequestData,
    TargetState,
)
from hypoprobe.snapshot import Histogram as Hist
from otel_helpers import CapturingExporter, exp_index, metrics_of, one_point, points, traffic

PROBE_NS = (1_000, 1_500, 1_500, 2_000, 5_000, 10_000, 123_456, 2_000_000)
EXTRA_NS = 500
FAMILIES = [v for v in vars(m).values() if isinstance(v, m.Family)]


@pytest.fixture
def handles() -> Iterator[list[otel.OTelExport]]:
    """Every export handle a test starts is shut down, also when the test fails."""
    started: list[otel.OTelExport] = []
    yield started
    for handle in started:
        handle.shutdown(timeout_seconds=1.0)


def _start(handles: list[otel.OTelExport], exporter: object, **kw: object) -> otel.OTelExport:
    kw.setdefault("interval_seconds", 3600.0)  # the timer stays out of the way
    handle = otel.start_otel_export(exporter, **kw)  # type: ignore[arg-type]
    handles.append(handle)
    return handle


def _prometheus_histogram(
    snap: hypoprobe.Snapshot, name: str, labels: dict[str, str], bpo: int = 1
) -> tuple[list[float], list[float], float]:
    """(le bounds, cumulative counts, sum) of one series of the Prometheus view."""
    (fam,) = [f for f in families(snap, bpo) if f.name == name]
    samples = [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    buckets = [s for s in samples if s.name == name + "_bucket"]
    bounds = [float(s.labels["le"]) for s in buckets if s.labels["le"] != "+Inf"]
    (total,) = [s.value for s in samples if s.name == name + "_sum"]
    return bounds, [s.value for s in buckets], total


def _temporality(data: MetricsData, name: str) -> AggregationTemporality:
    metric_data = metrics_of(data)[name].data
    assert not isinstance(metric_data, Gauge)
    return metric_data.aggregation_temporality


def _cumulative(counts: list[int]) -> list[float]:
    out, running = [], 0
    for c in counts:
        running += c
        out.append(float(running))
    return out


# -- histograms equal hypoprobe's own data ------------------------------------------------


def test_exponential_durations_are_exact_in_nanoseconds(
    fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("GET /exp")
    traffic(fake_clock, hid, ep, PROBE_NS, extra_ns=EXTRA_NS)
    snap = hypoprobe.snapshot()
    data = otel.metrics_data(snap)

    point = one_point(
        data,
        "hypoprobe_probe_duration_nanoseconds",
        hypoprobe__hypothesis=hid,
        hypoprobe__probe="query",
        http__route=ep,
    )
    expected: dict[int, int] = {}
    for ns in PROBE_NS:
        expected[exp_index(ns)] = expected.get(exp_index(ns), 0) + 1
    first, last = min(expected), max(expected)
    assert point.scale == 4
    assert point.zero_count == 0
    assert point.positive.offset == first
    assert list(point.positive.bucket_counts) == [
        expected.get(j, 0) for j in range(first, last + 1)
    ]
    assert point.negative.bucket_counts == []
    assert point.count == len(PROBE_NS)
    assert point.sum == sum(PROBE_NS)  # integer nanoseconds, exact
    assert point.min is None
    assert point.max is None

    endpoint_point = one_point(data, "hypoprobe_endpoint_duration_nanoseconds", http__route=ep)
    assert endpoint_point.count == len(PROBE_NS)
    assert endpoint_point.sum == sum(PROBE_NS) + EXTRA_NS * len(PROBE_NS)

    # The same buckets as the snapshot's own, index for index.
    (probe_data,) = [p for p in snap.probes if (p.hypothesis, p.endpoint) == (hid, ep)]
    mapped = {
        otel.DURATION_INDEX_OFFSET + i: c for i, c in enumerate(probe_data.duration.counts) if c
    }
    assert mapped == expected

    # Per-request probe time: split into slow (> 1 ms) and fast requests.
    slow = one_point(
        data, "hypoprobe_request_probe_nanoseconds", hypoprobe__hypothesis=hid, hypoprobe__slow=True
    )
    fast = one_point(
        data,
        "hypoprobe_request_probe_nanoseconds",
        hypoprobe__hypothesis=hid,
        hypoprobe__slow=False,
    )
    assert (slow.count, slow.sum) == (1, 2_000_000)
    assert (fast.count, fast.sum) == (len(PROBE_NS) - 1, sum(PROBE_NS) - 2_000_000)


def test_exponential_buckets_equal_the_sdk_own_exponential_aggregation(
    fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    """The SDK's own scale-4 histogram of the same nanosecond values has the same buckets."""
    values = (1_000, 1_021, 1_024, 1_025, 1_500, 2_048, 2_049, 4_096, 10_000, 123_456)
    hid, ep = unique_id(), unique_id("GET /sdk")
    traffic(fake_clock, hid, ep, values)
    ours = one_point(
        otel.metrics_data(hypoprobe.snapshot()),
        "hypoprobe_probe_duration_nanoseconds",
        hypoprobe__hypothesis=hid,
        http__route=ep,
    )

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[
            View(instrument_name="d", aggregation=ExponentialBucketHistogramAggregation(160, 4))
        ],
    )
    instrument = provider.get_meter("test").create_histogram("d", unit="ns")
    for ns in values:
        instrument.record(ns)
    collected = reader.get_metrics_data()
    provider.shutdown()
    assert collected is not None
    theirs = collected.resource_metrics[0].scope_metrics[0].metrics[0]
    assert isinstance(theirs.data, ExponentialHistogram)
    (sdk_point,) = theirs.data.data_points
    assert sdk_point.scale == ours.scale == 4
    assert sdk_point.positive.offset == ours.positive.offset
    sdk_counts = list(sdk_point.positive.bucket_counts)
    while sdk_counts and sdk_counts[-1] == 0:  # the SDK ships its spare capacity as zeros
        sdk_counts.pop()
    assert sdk_counts == list(ours.positive.bucket_counts)
    assert sdk_point.count == ours.count
    assert sdk_point.sum == ours.sum


@pytest.mark.parametrize("bpo", [1, 4])
def test_explicit_histograms_equal_the_prometheus_view(
    fake_clock: FakeClock, unique_id: Callable[..., str], bpo: int
) -> None:
    hid, ep = unique_id(), unique_id("GET /explicit")
    traffic(fake_clock, hid, ep, PROBE_NS)
    snap = hypoprobe.snapshot()
    data = otel.metrics_data(snap, histograms="explicit", buckets_per_octave=bpo)

    cases = [
        (m.ENDPOINT_DURATION, {"endpoint": ep}),
        (m.PROBE_DURATION, {"hypothesis": hid, "probe": "query", "endpoint": ep}),
        (m.REQUEST_PROBE, {"hypothesis": hid, "endpoint": ep, "slow": "true"}),
        (m.REQUEST_PROBE, {"hypothesis": hid, "endpoint": ep, "slow": "false"}),
        (m.REQUEST_SHARE, {"hypothesis": hid, "endpoint": ep}),
        (m.REQUEST_CALLS, {"hypothesis": hid, "endpoint": ep}),
    ]
    for family, labels in cases:
        attrs = {
            otel.ATTRIBUTES[k].replace(".", "__"): (v == "true" if k == "slow" else v)
            for k, v in labels.items()
        }
        point = one_point(data, family.name, **attrs)
        bounds, cumulative, total = _prometheus_histogram(snap, family.name, labels, bpo)
        assert list(point.explicit_bounds) == bounds, family.name
        assert _cumulative(list(point.bucket_counts)) == cumulative, family.name
        assert point.sum == total, family.name
        assert point.count == cumulative[-1], family.name
        assert point.min is None
        assert point.max is None

    assert metrics_of(data)[m.PROBE_DURATION.name].unit == "s"
    duration = one_point(data, m.PROBE_DURATION.name, hypoprobe__hypothesis=hid, http__route=ep)
    assert duration.count == len(PROBE_NS)
    assert duration.sum == pytest.approx(sum(PROBE_NS) / 1e9, rel=1e-12)


def test_share_and_calls_are_explicit_also_in_exponential_mode(
    fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("GET /share")
    traffic(fake_clock, hid, ep, (1_000, 3_000), extra_ns=1_000)
    snap = hypoprobe.snapshot()
    data = otel.metrics_data(snap)
    share = one_point(data, m.REQUEST_SHARE.name, hypoprobe__hypothesis=hid, http__route=ep)
    assert isinstance(metrics_of(data)[m.REQUEST_SHARE.name].data, Histogram)
    bounds, cumulative, total = _prometheus_histogram(snap, m.REQUEST_SHARE.name, {"endpoint": ep})
    assert list(share.explicit_bounds) == bounds
    assert _cumulative(list(share.bucket_counts)) == cumulative
    assert share.sum == pytest.approx(0.5 + 0.75, rel=1e-12) == total
    calls = one_point(data, m.REQUEST_CALLS.name, hypoprobe__hypothesis=hid, http__route=ep)
    assert calls.count == 2
    assert calls.sum == 2
    assert calls.bucket_counts[calls.explicit_bounds.index(1.0)] == 2


# -- every metric and attribute -----------------------------------------------------------


#: Optional HypothesisInfo fields newer than this test, set when the model has them.
SEGMENT_FIELDS: dict[str, Any] = {"segments": ("free", "paid"), "segment": "plan"}


def _full_snapshot() -> hypoprobe.Snapshot:
    """A hand-made snapshot with something in every field (plain data, no recording)."""
    info = HypothesisInfo(
        "OT-1",
        "claim text",
        ("GET /a", "GET /b"),
        0.4,
        observed_probe_seconds=1.0,
        observed_endpoint_seconds=2.0,
        slow_threshold=0.25,
        owner="perf",
        ticket="https://t/OT-1",
        expires="2100-01-01T00:00:00+00:00",  # stale from then: valid through 2099-12-31
        expired=True,
    )
    known = {f.name for f in dataclasses.fields(HypothesisInfo)}
    info = dataclasses.replace(info, **{k: v for k, v in SEGMENT_FIELDS.items() if k in known})
    d = _buckets.DURATION.natural_bounds
    dur = Hist(d, (0, 2, *([0] * (len(d) - 2)), 1), 123.5)
    share = Hist.empty(_buckets.SHARE.natural_bounds)
    calls = Hist.empty(_buckets.CALLS.natural_bounds)
    return hypoprobe.Snapshot(
        created_at=1_700_000_000.0,
        source="hand-made",
        hypotheses=(info,),
        endpoints=(EndpointData("GET /a", dur),),
        probes=(ProbeData("OT-1", "q", "GET /a", dur),),
        requests=(RequestData("OT-1", "q", "GET /a", dur, dur, share, calls),),
        moments=(Moments("OT-1", "GET /a", True, 3, 2, 1.5, 3.0, 0.75, 3.5, 1.25),),
        exceptions=(ExceptionCount("OT-1", "q", "builtins.KeyError", 4),),
        outcomes=(EndpointOutcome("GET /a", "5xx", "builtins.KeyError", 3),),
        unregistered=("OT-404",),
        internal_errors={"some_fault": 2},
        series_overflow={"hypoprobe_probe_duration_seconds": 7},
        self_seconds={"GET /a": 0.002},
        targets=(TargetState("OT-1", "app.q:run", "config", "failed", "no module named 'app.q'"),),
    )


def test_every_label_has_an_attribute() -> None:
    labels = {label for family in FAMILIES for label in family.labels}
    assert labels <= set(otel.ATTRIBUTES)
    assert otel.ATTRIBUTES["endpoint"] == "http.route"
    assert otel.ATTRIBUTES["hypothesis"] == "hypoprobe.hypothesis"
    # A label nobody mapped yet still exports, under hypoprobe's namespace.
    assert otel.attribute_name("endpoint") == "http.route"
    assert otel.attribute_name("not_a_label_yet") == "hypoprobe.not_a_label_yet"


@pytest.mark.parametrize("histograms", ["exponential", "explicit"])
def test_every_metric_and_attribute_is_present(histograms: otel.Histograms) -> None:
    snap = _full_snapshot()
    data = otel.metrics_data(snap, histograms=histograms, start_time_unix_nano=5, time_unix_nano=9)
    got = metrics_of(data)
    exported = [f for f in FAMILIES if f.name != m.MOMENTS_SERIES]
    assert set(got) == {otel.metric_name(f, histograms) for f in exported}
    for family in exported:
        metric = got[otel.metric_name(family, histograms)]
        assert metric.description == family.help
        keys = {otel.ATTRIBUTES[label] for label in family.labels}
        for point in metric.data.data_points:
            assert set(point.attributes or ()) == keys, family.name
            assert (point.time_unix_nano, point.start_time_unix_nano) == (9, 5)
        if family.kind == "counter":
            assert isinstance(metric.data, Sum)
            assert metric.data.is_monotonic
            assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
        elif family.kind == "gauge":
            assert isinstance(metric.data, Gauge)
            assert metric.unit == ""
        elif family.layout is _buckets.DURATION and histograms == "exponential":
            assert isinstance(metric.data, ExponentialHistogram)
            assert metric.unit == "ns"
        else:
            assert isinstance(metric.data, Histogram)

    def value(name: str, **attrs: object) -> object:
        return one_point(data, name, **attrs).value

    assert value(m.MOMENT_REQUESTS.name, hypoprobe__slow=True) == 3
    assert value(m.MOMENT_REQUESTS_WITH_PROBE.name) == 2
    assert value(m.MOMENT_PROBE.name) == 1.5
    assert value(m.MOMENT_ENDPOINT.name) == 3.0
    assert value(m.MOMENT_PP.name) == 0.75
    assert value(m.MOMENT_EE.name) == 3.5
    assert value(m.MOMENT_PE.name) == 1.25
    assert value(m.PROBE_EXCEPTIONS.name, exception__type="builtins.KeyError") == 4
    assert value(m.INTERNAL_ERRORS.name, hypoprobe__kind="some_fault") == 2
    assert value(m.SERIES_DROPPED.name) == 7
    assert value(m.UNKNOWN_HYPOTHESIS.name, hypoprobe__hypothesis="OT-404") == 1
    assert value(m.HYPOTHESIS_EXPIRED.name) == 1
    assert (
        value(m.CLAMPED.name, hypoprobe__metric=m.PROBE_DURATION.name, hypoprobe__side="high") == 1
    )
    info = points(data, m.HYPOTHESIS_INFO.name)
    assert sorted(p.attributes["http.route"] for p in info) == ["GET /a", "GET /b"]
    # Every label of the info family is an attribute (checked above); the values are typed.
    assert (
        dict(info[0].attributes).items()
        >= {
            "hypoprobe.hypothesis": "OT-1",
            "hypoprobe.claim": "claim text",
            "hypoprobe.min_share": 0.4,
            "hypoprobe.observed_share": 0.5,
            "hypoprobe.slow_threshold": 0.25,
            "hypoprobe.owner": "perf",
            "hypoprobe.ticket": "https://t/OT-1",
            "hypoprobe.expires": "2099-12-31",
        }.items()
    )
    for label, field_value in SEGMENT_FIELDS.items():
        if label in m.HYPOTHESIS_INFO.labels:
            assert info[0].attributes[otel.ATTRIBUTES[label]] == field_value
    # The unit names the scale of the values: 1 ns bucket index and sum in ns.
    duration = one_point(data, otel.metric_name(m.ENDPOINT_DURATION, histograms))
    assert duration.count == 3
    if histograms == "exponential":
        assert duration.sum == 123_500_000_000
        assert duration.positive.offset == otel.DURATION_INDEX_OFFSET + 1
    else:
        assert duration.sum == 123.5


def test_coarse_histograms_are_explicit_only() -> None:
    """A duration histogram at other bounds (e.g. rebuilt from a scrape) has no exact
    exponential form: exponential mode leaves it out and counts it, explicit mode keeps it."""
    coarse = Hist((0.001, 0.01), (1, 2, 3), 0.5)
    snap = hypoprobe.Snapshot(
        created_at=1_700_000_000.0,
        source="scraped",
        endpoints=(EndpointData("GET /coarse", coarse),),
    )
    before = _fault("otel_histogram_not_exponential")
    exp = otel.metrics_data(snap)
    assert otel.metric_name(m.ENDPOINT_DURATION) not in metrics_of(exp)
    assert _fault("otel_histogram_not_exponential") == before + 1
    point = one_point(otel.metrics_data(snap, histograms="explicit"), m.ENDPOINT_DURATION.name)
    assert (list(point.explicit_bounds), list(point.bucket_counts)) == ([0.001, 0.01], [1, 2, 3])
    assert (point.count, point.sum) == (6, 0.5)


def test_resource_and_scope(unique_id: Callable[..., str]) -> None:
    resource = Resource.create({"service.name": "campaigns", "deployment.environment": "test"})
    data = otel.metrics_data(_full_snapshot(), resource=resource)
    (rm,) = data.resource_metrics
    assert rm.resource.attributes["service.name"] == "campaigns"
    assert rm.resource.attributes["deployment.environment"] == "test"
    (sm,) = rm.scope_metrics
    assert (sm.scope.name, sm.scope.version) == ("hypoprobe", hypoprobe.__version__)


# -- delta and cumulative -----------------------------------------------------------------


def test_cumulative_keeps_its_start_and_delta_covers_each_interval(
    fake_clock: FakeClock, unique_id: Callable[..., str], handles: list[otel.OTelExport]
) -> None:
    hid, ep = unique_id(), unique_id("GET /temporality")
    run = traffic(fake_clock, hid, ep, (1_000, 2_000, 3_000))
    cumulative, delta = CapturingExporter(), CapturingExporter()
    c = _start(handles, cumulative)
    d = _start(handles, delta, temporality="delta")
    name = "hypoprobe_probe_duration_nanoseconds"

    assert c.collect_and_export()
    assert d.collect_and_export()
    run((4_000, 5_000))
    assert c.collect_and_export()
    assert d.collect_and_export()
    assert c.collect_and_export()
    assert d.collect_and_export()

    c_points = [
        one_point(x, name, hypoprobe__hypothesis=hid, http__route=ep) for x in cumulative.received
    ]
    d_points = [
        one_point(x, name, hypoprobe__hypothesis=hid, http__route=ep) for x in delta.received
    ]
    assert [(p.count, p.sum) for p in c_points] == [(3, 6_000), (5, 15_000), (5, 15_000)]
    assert [(p.count, p.sum) for p in d_points] == [(3, 6_000), (2, 9_000), (0, 0)]
    assert d_points[1].positive.offset == exp_index(4_000)
    assert d_points[2].positive.bucket_counts == []

    assert len({p.start_time_unix_nano for p in c_points}) == 1
    assert c_points[0].start_time_unix_nano < c_points[0].time_unix_nano
    assert d_points[0].start_time_unix_nano < d_points[0].time_unix_nano
    assert d_points[1].start_time_unix_nano == d_points[0].time_unix_nano
    assert d_points[2].start_time_unix_nano == d_points[1].time_unix_nano
    temporality = {
        _temporality(x, metric) for x in delta.received for metric in (name, m.MOMENT_REQUESTS.name)
    }
    assert temporality == {AggregationTemporality.DELTA}

    requests = [
        one_point(x, m.MOMENT_REQUESTS.name, hypoprobe__hypothesis=hid, hypoprobe__slow=False).value
        for x in delta.received
    ]
    assert requests == [3, 2, 0]


def test_delta_of_exceptions_and_faults(
    fake_clock: FakeClock, unique_id: Callable[..., str], handles: list[otel.OTelExport]
) -> None:
    hid = unique_id()
    kind = unique_id("fault")

    @hypoprobe.probe(hid, name="boom")
    def boom() -> None:
        raise KeyError("x")

    def fail(n: int) -> None:
        for _ in range(n):
            with pytest.raises(KeyError):
                boom()
            _faults.record(kind)

    fail(2)
    exporter = CapturingExporter()
    handle = _start(handles, exporter, temporality="delta")
    assert handle.collect_and_export()
    fail(3)
    assert handle.collect_and_export()
    exc = [
        one_point(x, m.PROBE_EXCEPTIONS.name, hypoprobe__hypothesis=hid).value
        for x in exporter.received
    ]
    faults = [
        one_point(x, m.INTERNAL_ERRORS.name, hypoprobe__kind=kind).value for x in exporter.received
    ]
    assert exc == [2, 3]
    assert faults == [2, 3]


# -- exporter faults never reach the application ------------------------------------------


def _fault(kind: str) -> int:
    return _faults.snapshot().get(kind, 0)


def test_failing_exporter_is_retried_and_delta_loses_nothing(
    fake_clock: FakeClock,
    unique_id: Callable[..., str],
    handles: list[otel.OTelExport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hid, ep = unique_id(), unique_id("GET /retry")
    run = traffic(fake_clock, hid, ep, (1_000,))
    exporter = CapturingExporter()
    handle = _start(handles, exporter, temporality="delta")
    assert handle.collect_and_export()

    failed, raised = _fault("otel_export_failed"), _fault("otel_export_raised")
    exporter.script = ["fail", "raise", "raise"]
    caplog.set_level(logging.WARNING, logger="hypoprobe")
    run((2_000,))
    assert handle.collect_and_export() is False
    run((3_000,))
    assert handle.collect_and_export() is False
    assert handle.collect_and_export() is False
    run((4_000,))  # the application goes on: probes record as ever
    assert handle.collect_and_export() is True

    assert exporter.calls == 5
    assert (_fault("otel_export_failed"), _fault("otel_export_raised")) == (failed + 1, raised + 2)
    assert handle.failed == 3
    assert handle.exported == 2
    logged = [r for r in caplog.records if "otel_export_raised" in r.getMessage()]
    assert len(logged) == (1 if raised == 0 else 0)  # once per process, never per failure

    # The successful export after the failures carries everything since the last success.
    name = "hypoprobe_probe_duration_nanoseconds"
    points_ = [
        one_point(x, name, hypoprobe__hypothesis=hid, http__route=ep) for x in exporter.received
    ]
    assert [(p.count, p.sum) for p in points_] == [(1, 1_000), (3, 9_000)]
    assert points_[1].start_time_unix_nano == points_[0].time_unix_nano


def test_hung_exporter_times_out_without_piling_up(
    fake_clock: FakeClock, unique_id: Callable[..., str], handles: list[otel.OTelExport]
) -> None:
    hid, ep = unique_id(), unique_id("GET /hung")
    run = traffic(fake_clock, hid, ep, (1_000,))
    exporter = CapturingExporter()
    exporter.script = ["block"]
    handle = _start(handles, exporter, temporality="delta", timeout_seconds=0.2)
    timeouts = _fault("otel_export_timeout")

    assert handle.collect_and_export() is False  # gave up waiting; the app thread goes on
    assert exporter.blocked.is_set()
    run((2_000,))
    assert handle.collect_and_export() is False  # still stuck: skipped, no second thread
    assert exporter.calls == 1
    assert _fault("otel_export_timeout") == timeouts + 2

    exporter.release.set()  # the stuck export completes and is accepted after all
    deadline = time.monotonic() + 10
    while not exporter.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.collect_and_export() is True
    name = "hypoprobe_probe_duration_nanoseconds"
    late, fresh = (
        one_point(x, name, hypoprobe__hypothesis=hid, http__route=ep) for x in exporter.received
    )
    # The late export still counts as delivered: the next delta holds only what came after.
    assert (late.count, fresh.count, fresh.sum) == (1, 1, 2_000)


def test_shutdown_does_not_wait_for_a_hung_exporter(
    fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("GET /hung-exit")
    traffic(fake_clock, hid, ep, (1_000,))
    exporter = CapturingExporter()
    exporter.script = ["block"]
    handle = otel.start_otel_export(exporter, interval_seconds=3600.0, timeout_seconds=0.2)
    timeouts = _fault("otel_export_timeout")
    try:
        handle.shutdown()
        # shutdown() returned while the exporter was still stuck in export().
        assert exporter.blocked.is_set()
        assert exporter.received == []
        assert _fault("otel_export_timeout") == timeouts + 1
        assert exporter.shutdowns == 1
        assert handle.collect_and_export() is False  # closed
    finally:
        exporter.release.set()


def test_timer_exports_every_interval_and_shutdown_flushes(
    fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("GET /timer")
    run = traffic(fake_clock, hid, ep, (1_000,))
    exporter = CapturingExporter()
    handle = otel.start_otel_export(exporter, interval_seconds=0.02)
    try:
        deadline = time.monotonic() + 10
        while len(exporter.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(exporter.received) >= 2
    finally:
        run((2_000,))
        handle.shutdown()
    last = one_point(
        exporter.received[-1],
        "hypoprobe_probe_duration_nanoseconds",
        hypoprobe__hypothesis=hid,
        http__route=ep,
    )
    assert last.count == 2  # the final export at shutdown saw the last request
    assert exporter.shutdowns == 1
    calls = exporter.calls
    handle.shutdown()  # idempotent
    assert handle.collect_and_export() is False
    assert (exporter.calls, exporter.shutdowns) == (calls, 1)
    assert not handle._thread.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_inherit_the_export(
    fake_clock: FakeClock, unique_id: Callable[..., str], handles: list[otel.OTelExport]
) -> None:
    """The child's copy is disarmed (its exit cannot hang on the parent's lock); the parent
    keeps exporting."""
    hid, ep = unique_id(), unique_id("GET /fork")
    traffic(fake_clock, hid, ep, (1_000,))
    exporter = CapturingExporter()
    handle = _start(handles, exporter)
    with handle._lock:  # held at fork time, as a collection in progress would hold it
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            signal.alarm(20)  # a hang (the inherited lock) kills the child: the test fails
            ok = handle.collect_and_export() is False and exporter.calls == 0
            handle.shutdown(timeout_seconds=1.0)
            os._exit(0 if ok and _faults.snapshot().get("otel_export_forked") == 1 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert handle.collect_and_export() is True
    assert exporter.calls == 1


def test_console_exporter(
    fake_clock: FakeClock, unique_id: Callable[..., str], handles: list[otel.OTelExport]
) -> None:
    hid, ep = unique_id(), unique_id("GET /console")
    traffic(fake_clock, hid, ep, (1_000, 2_000))
    out = io.StringIO()
    handle = _start(
        handles,
        ConsoleMetricExporter(out=out),
        resource=Resource.create({"service.name": "console-test"}),
    )
    assert handle.collect_and_export()
    doc = json.loads(out.getvalue())
    (rm,) = doc["resource_metrics"]
    assert rm["resource"]["attributes"]["service.name"] == "console-test"
    metrics = {x["name"]: x for x in rm["scope_metrics"][0]["metrics"]}
    (point,) = [
        p
        for p in metrics["hypoprobe_probe_duration_nanoseconds"]["data"]["data_points"]
        if p["attributes"]["hypoprobe.hypothesis"] == hid and p["attributes"]["http.route"] == ep
    ]
    assert (point["count"], point["sum"], point["scale"]) == (2, 3_000, 4)
    assert point["positive"] == {"offset": exp_index(1_000), "bucket_counts": [1] + [0] * 15 + [1]}
    assert point["min"] is None
    assert point["max"] is None
    assert metrics["hypoprobe_probe_duration_nanoseconds"]["unit"] == "ns"


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"histograms": "native"}, "histograms"),
        ({"temporality": "monotonic"}, "temporality"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": float("inf")}, "interval_seconds"),
        ({"timeout_seconds": -1.0}, "timeout_seconds"),
        ({"buckets_per_octave": 3}, "buckets_per_octave"),
    ],
)
def test_invalid_arguments_raise_configuration_error(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match=message):
        otel.start_otel_export(CapturingExporter(), **kwargs)  # type: ignore[arg-type]


def test_not_an_exporter() -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="MetricExporter"):
        otel.start_otel_export(object())  # type: ignore[arg-type]


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import` raise ImportError, as if the SDK were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.metrics", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.metrics.export", None)
    with pytest.raises(hypoprobe.ConfigurationError, match=r"pip install 'hypoprobe\[otel\]'"):
        otel.start_otel_export(CapturingExporter())
    with pytest.raises(hypoprobe.ConfigurationError, match=r"hypoprobe\[otel\]"):
        otel.metrics_data(_full_snapshot())


def test_importing_hypoprobe_does_not_import_the_sdk() -> None:
    code = "import sys, hypoprobe, hypoprobe.otel; print('opentelemetry.sdk' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_interpreter_exit_flushes_a_last_export(tmp_path: Path) -> None:
    """No shutdown() in the program: the atexit hook still exports what was recorded."""
    out = tmp_path / "exported.json"
    script = textwrap.dedent(
        f"""
        import hypoprobe
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from hypoprobe.otel import start_otel_export

        hypoprobe.hypothesis("EXIT-1", claim="c", endpoint="GET /exit", min_share=0.5)

        @hypoprobe.probe("EXIT-1", name="q")
        def q():
            pass

        stream = open({str(out)!r}, "w")
        start_otel_export(ConsoleMetricExporter(out=stream), interval_seconds=3600)
        for _ in range(7):
            with hypoprobe.endpoint("GET /exit"):
                q()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    doc = json.loads(out.read_text())
    metrics = {x["name"]: x for x in doc["resource_metrics"][0]["scope_metrics"][0]["metrics"]}
    (point,) = [
        p
        for p in metrics["hypoprobe_probe_duration_nanoseconds"]["data"]["data_points"]
        if p["attributes"]["http.route"] == "GET /exit"
    ]
    assert point["attributes"]["hypoprobe.hypothesis"] == "EXIT-1"
    assert point["count"] == 7
