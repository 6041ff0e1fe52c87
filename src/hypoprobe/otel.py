"""OpenTelemetry export: hypoprobe's storage as OTel metrics, through any ``MetricExporter``.

The OpenTelemetry Python SDK has no ``MetricProducer``, so hypoprobe builds the SDK's public
data types (``MetricsData`` ... ``HistogramDataPoint``) from a :class:`~hypoprobe.Snapshot`
and hands them to ``MetricExporter.export`` itself: OTLP/HTTP, OTLP/gRPC, console or your
own exporter. Collection reads the storage on a timer; the recording path never calls
OpenTelemetry. Needs the SDK: ``pip install 'hypoprobe[otel]'``.

Example::

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from hypoprobe.otel import start_otel_export

    export = start_otel_export(OTLPMetricExporter(), interval_seconds=60.0)
    ...
    export.shutdown()  # also runs at interpreter exit: one last export

What is exact (``docs/opentelemetry.md`` has the whole mapping):

* ``histograms="exponential"`` (default): duration histograms are base-2 exponential
  histograms at scale 4 **in nanoseconds** (unit ``ns``, names ending ``_nanoseconds``
  instead of ``_seconds``). hypoprobe's duration bucket ``i`` holds the integer nanoseconds
  in ``(2**((k-1)/16), 2**(k/16)]`` with ``k = 159 + i``; OpenTelemetry's index ``j`` covers
  ``(base**j, base**(j+1)]``, so bucket ``i`` is index ``158 + i`` exactly. Seconds are
  nanoseconds times 1e-9, not a power of two, so no index offset is exact in seconds; hence
  the unit. The first bucket also holds everything at or below 980 ns, the last everything
  above 2**42 ns (73 min): both are counted in ``hypoprobe_clamped_values`` as on
  ``/metrics``.
* ``histograms="explicit"``: duration histograms in seconds with the same names and the
  same bucket bounds as the Prometheus view (``buckets_per_octave``).
* Share and calls histograms are explicit-bucket histograms in both modes (their layouts
  are linear, not exponential), with the Prometheus view's bounds.
* Counts and sums are hypoprobe's own, unchanged; ``min``/``max`` are left unset because
  the storage does not keep extremes.
"""

from __future__ import annotations

import atexit
import functools
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Literal, cast

from . import _customers_export as _cx
from . import _metrics as m
from ._collect import snapshot as take_snapshot
from ._config import HOLDER, validate
from ._core import _buckets, _faults, _state
from ._families import Labels, histogram_rows, number_rows
from .errors import ConfigurationError
from .model import Histogram, Snapshot

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import (
        ExponentialHistogramDataPoint,
        HistogramDataPoint,
        Metric,
        MetricExporter,
        MetricsData,
        NumberDataPoint,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "ATTRIBUTES",
    "DURATION_INDEX_OFFSET",
    "DURATION_SCALE",
    "INSTALL_HINT",
    "OTelExport",
    "attribute_name",
    "metric_name",
    "metrics_data",
    "start_otel_export",
]

#: What to run when the SDK is missing.
INSTALL_HINT = "pip install 'hypoprobe[otel]'"
#: Scale of the exported exponential duration histograms (16 buckets per power of two).
DURATION_SCALE = _buckets.DURATION_SCALE
#: OpenTelemetry bucket index of hypoprobe's duration bucket 0 (unit: nanoseconds).
DURATION_INDEX_OFFSET = _buckets.DURATION_FIRST_INDEX - 1

#: OpenTelemetry attribute of each Prometheus label hypoprobe uses.
ATTRIBUTES: Mapping[str, str] = {
    "hypothesis": "hypoprobe.hypothesis",
    "probe": "hypoprobe.probe",
    "endpoint": "http.route",
    "slow": "hypoprobe.slow",
    "segment": "hypoprobe.segment",
    "exception": "exception.type",
    "status": "hypoprobe.status_class",
    "claim": "hypoprobe.claim",
    "min_share": "hypoprobe.min_share",
    "observed_share": "hypoprobe.observed_share",
    "observed_probe_seconds": "hypoprobe.observed_probe_seconds",
    "observed_endpoint_seconds": "hypoprobe.observed_endpoint_seconds",
    "segments": "hypoprobe.segments",
    "slow_threshold": "hypoprobe.slow_threshold",
    "owner": "hypoprobe.owner",
    "ticket": "hypoprobe.ticket",
    "expires": "hypoprobe.expires",
    "kind": "hypoprobe.kind",
    "metric": "hypoprobe.metric",
    "side": "hypoprobe.side",
    "target": "hypoprobe.target",
    "state": "hypoprobe.target_state",
    "reason": "hypoprobe.reason",
}


def attribute_name(label: str) -> str:
    """The OpenTelemetry attribute of a label: ``ATTRIBUTES``, else ``hypoprobe.<label>``.

    Example::

        assert attribute_name("endpoint") == "http.route"
        assert attribute_name("region") == "hypoprobe.region"
    """
    return ATTRIBUTES.get(label) or f"hypoprobe.{label}"


# UCUM units. Units in braces are annotations, which the collector's Prometheus translation
# turns into no name suffix; the squared moments have no unit for the same reason ("s2"
# would become a "_s2" suffix). Names already end with their unit, so translated names
# equal the names on /metrics.
_UNITS: Mapping[str, str] = {
    m.ENDPOINT_DURATION.name: "s",
    m.PROBE_DURATION.name: "s",
    m.REQUEST_PROBE.name: "s",
    m.REQUEST_SHARE.name: "1",
    m.REQUEST_CALLS.name: "{call}",
    m.MOMENT_REQUESTS.name: "{request}",
    m.MOMENT_REQUESTS_WITH_PROBE.name: "{request}",
    m.MOMENT_PROBE.name: "s",
    m.MOMENT_ENDPOINT.name: "s",
    m.PROBE_EXCEPTIONS.name: "{exception}",
    m.ENDPOINT_REQUESTS.name: "{request}",
    m.INTERNAL_ERRORS.name: "{fault}",
    m.SERIES_DROPPED.name: "{series}",
    m.CLAMPED.name: "{value}",
    m.SELF_SECONDS.name: "s",
}

Histograms = Literal["exponential", "explicit"]
Temporality = Literal["cumulative", "delta"]
Attributes = dict[str, "AttributeValue"]

# The SDK's dataclasses type min/max as float, but OTLP makes them optional and hypoprobe
# does not keep extremes: None leaves the protobuf fields unset (the round-trip test checks).
_UNSET = cast(float, None)


def metric_name(family: m.Family, histograms: Histograms = "exponential") -> str:
    """The OpenTelemetry metric name of a hypoprobe family in the given histogram mode.

    Example::

        from hypoprobe import _metrics
        assert metric_name(_metrics.ENDPOINT_DURATION) == "hypoprobe_endpoint_duration_nanoseconds"
        assert metric_name(_metrics.ENDPOINT_DURATION, "explicit") == (
            "hypoprobe_endpoint_duration_seconds"
        )
    """
    if histograms == "exponential" and family.layout is _buckets.DURATION:
        return family.name.removesuffix("_seconds") + "_nanoseconds"
    return family.name


# --------------------------------------------------------------------------- the SDK


@dataclass(frozen=True)
class _Sdk:
    export: Any  # the opentelemetry.sdk.metrics.export module
    resource: Any  # opentelemetry.sdk.resources.Resource
    scope: Any  # opentelemetry.sdk.util.instrumentation.InstrumentationScope
    exemplar: Any  # opentelemetry.sdk.metrics.Exemplar


def _sdk() -> _Sdk:
    # Imported here, not at module level: `import hypoprobe` must never need the SDK.
    try:
        from opentelemetry.sdk.metrics import Exemplar, export
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    except ImportError as exc:
        raise ConfigurationError(
            f"OpenTelemetry export needs the OpenTelemetry SDK: {INSTALL_HINT} ({exc})"
        ) from None
    return _Sdk(export, Resource, InstrumentationScope, Exemplar)


# --------------------------------------------------------------------------- data points


@dataclass(frozen=True)
class _Build:
    sdk: _Sdk
    histograms: Histograms
    temporality: Any  # AggregationTemporality
    start: int
    now: int
    bpo: int


@functools.lru_cache(maxsize=32)
def _shown(layout: _buckets.BucketLayout, bpo: int) -> tuple[tuple[int, ...], list[float]]:
    """(indices, bounds) that /metrics shows for a layout, computed once per resolution.

    The same rule as the Prometheus view; the tests compare the two outputs.
    """
    if layout is _buckets.DURATION:
        indices = tuple(sorted(_buckets.duration_exposed(bpo)))
    else:
        indices = tuple(sorted(layout.default_exposed))
    return indices, [layout.natural_bounds[i] for i in indices]


def _same_bounds(hist: Histogram, layout: _buckets.BucketLayout) -> bool:
    # Snapshots of this process share the layout's tuple: the identity test is the fast path.
    return hist.bounds is layout.natural_bounds or hist.bounds == layout.natural_bounds


def _explicit_point(
    b: _Build,
    family: m.Family,
    attrs: Attributes,
    hist: Histogram,
    exemplars: Sequence[Any] = (),
) -> HistogramDataPoint:
    """An explicit-bucket point with the Prometheus view's bounds, in the natural unit.

    ``exemplars`` go through as-is (:func:`_exemplars` picks one per exposed bucket).
    """
    assert family.layout is not None
    if _same_bounds(hist, family.layout):
        # Whole internal buckets summed up to each shown bound: exact, as on /metrics.
        indices, bounds = _shown(family.layout, b.bpo)
        cumulative = list(accumulate(hist.counts))
        shown = [cumulative[i] for i in indices]
        counts = [c - p for c, p in zip(shown, [0, *shown], strict=False)]
        counts.append(cumulative[-1] - (shown[-1] if shown else 0))
    else:  # bounds of another source: all of them
        bounds, counts = list(hist.bounds), list(hist.counts)
    return cast(
        "HistogramDataPoint",
        b.sdk.export.HistogramDataPoint(
            attributes=attrs,
            start_time_unix_nano=b.start,
            time_unix_nano=b.now,
            count=sum(counts),
            sum=hist.sum,
            bucket_counts=counts,
            explicit_bounds=bounds,
            min=_UNSET,
            max=_UNSET,
            exemplars=list(exemplars),
        ),
    )


def _exponential_point(
    b: _Build, attrs: Attributes, hist: Histogram, exemplars: Sequence[Any] = ()
) -> ExponentialHistogramDataPoint | None:
    """A scale-4 exponential point in nanoseconds; None if ``hist`` lacks the duration layout.

    hypoprobe's bucket ``i`` is OpenTelemetry's positive bucket ``DURATION_INDEX_OFFSET + i``
    (exact for integer nanoseconds; see the module docstring). ``exemplars`` as in
    :func:`_explicit_point`.
    """
    if not _same_bounds(hist, _buckets.DURATION):
        return None
    counts = hist.counts
    export = b.sdk.export
    if any(counts):
        first = next(i for i, c in enumerate(counts) if c)
        last = len(counts) - next(i for i, c in enumerate(reversed(counts)) if c) - 1
        positive = export.Buckets(
            offset=DURATION_INDEX_OFFSET + first, bucket_counts=list(counts[first : last + 1])
        )
    else:
        positive = export.Buckets(offset=0, bucket_counts=[])
    return cast(
        "ExponentialHistogramDataPoint",
        export.ExponentialHistogramDataPoint(
            attributes=attrs,
            start_time_unix_nano=b.start,
            time_unix_nano=b.now,
            count=hist.count,
            # The storage sums integer nanoseconds; the snapshot divided by 1e9, and this
            # multiplication recovers the integer while it is below 2**51 ns (26 days).
            sum=round(hist.sum * _buckets.DURATION.divisor),
            scale=DURATION_SCALE,
            zero_count=0,
            positive=positive,
            negative=export.Buckets(offset=0, bucket_counts=[]),
            flags=0,
            min=_UNSET,
            max=_UNSET,
            exemplars=list(exemplars),
        ),
    )


def _exemplars(
    b: _Build, hist: Histogram, layout: _buckets.BucketLayout | None, ns: bool = False
) -> list[Any]:
    """The snapshot's exemplars as SDK ``Exemplar``s: the newest per exported bucket.

    An exponential point exports every internal bucket, so all of them go; an explicit point
    shows the Prometheus view's buckets, so each keeps the newest of those it sums. Values
    are in the point's unit (nanoseconds for exponential points).
    """
    if not hist.exemplars:
        return []
    chosen: Iterable[Any] = hist.exemplars
    if layout is not None and _same_bounds(hist, layout):
        chosen = hist.exemplars_at(_shown(layout, b.bpo)[0]).values()
    make = b.sdk.exemplar
    return [
        make(
            filtered_attributes={},
            value=round(ex.value * _buckets.DURATION.divisor) if ns else ex.value,
            time_unix_nano=round(ex.timestamp * 1e9),
            span_id=int(ex.span_id, 16),
            trace_id=int(ex.trace_id, 16),
        )
        for ex in chosen
    ]


def _number_point(b: _Build, attrs: Attributes, value: float) -> NumberDataPoint:
    return cast(
        "NumberDataPoint",
        b.sdk.export.NumberDataPoint(
            attributes=attrs, start_time_unix_nano=b.start, time_unix_nano=b.now, value=value
        ),
    )


# --------------------------------------------------------------------------- metrics


def _histogram_metric(
    b: _Build, family: m.Family, rows: Iterable[tuple[Attributes, Histogram]]
) -> Metric | None:
    export = b.sdk.export
    name = metric_name(family, b.histograms)
    if family.layout is _buckets.DURATION and b.histograms == "exponential":
        exp_points = []
        for attrs, hist in rows:
            point = _exponential_point(b, attrs, hist, _exemplars(b, hist, None, ns=True))
            if point is None:
                # A snapshot merged from coarser sources: no exact exponential form.
                _faults.record("otel_histogram_not_exponential")
            else:
                exp_points.append(point)
        data: Any = export.ExponentialHistogram(
            data_points=exp_points, aggregation_temporality=b.temporality
        )
        unit = "ns"
    else:
        points = [
            _explicit_point(b, family, attrs, h, _exemplars(b, h, family.layout))
            for attrs, h in rows
        ]
        data = export.Histogram(data_points=points, aggregation_temporality=b.temporality)
        unit = _UNITS[family.name]
    if not data.data_points:
        return None
    return cast("Metric", export.Metric(name=name, description=family.help, unit=unit, data=data))


def _number_metric(
    b: _Build,
    family: m.Family,
    rows: Iterable[tuple[Attributes, float]],
) -> Metric | None:
    export = b.sdk.export
    points = [_number_point(b, attrs, value) for attrs, value in rows]
    if not points:
        return None
    data: Any
    if family.kind == "counter":
        data = export.Sum(
            data_points=points, aggregation_temporality=b.temporality, is_monotonic=True
        )
    else:
        data = export.Gauge(data_points=points)
    unit = _UNITS.get(family.name, "")
    return cast(
        "Metric", export.Metric(name=family.name, description=family.help, unit=unit, data=data)
    )


def _attributes(family: m.Family, labels: Labels) -> Attributes:
    """A series' OpenTelemetry attributes; an unset value (None) is left out."""
    return {
        attribute_name(label): value
        for label, value in zip(family.labels, labels, strict=True)
        if value is not None
    }


def _attrs(family: m.Family, row: object = None, **given: AttributeValue | None) -> Attributes:
    """The attributes of one point: each label's value from ``given``, else ``row``'s field.

    Snapshot rows name their fields after the labels (``hypothesis``, ``endpoint``,
    ``segment``...), so a label added to a family is exported without a change here.
    None means "not set" (an optional hypothesis field): the attribute is left out.
    """
    out: Attributes = {}
    for label in family.labels:
        value = given[label] if label in given else getattr(row, label)
        if value is not None:
            out[attribute_name(label)] = value
    return out


def _all_metrics(b: _Build, snap: Snapshot) -> Iterator[Metric | None]:
    # Which series exist is _families' table, shared with /metrics.
    for family, hist_rows in histogram_rows(snap):
        yield _histogram_metric(
            b, family, ((_attributes(family, labels), h) for labels, h in hist_rows)
        )
    for family, rows in number_rows(snap):
        yield _number_metric(
            b, family, ((_attributes(family, labels), value) for labels, value in rows)
        )
    for family, figure in _cx.OTEL:  # customers: per-host gauges, exact counters
        yield _number_metric(
            b,
            family,
            ((_attrs(family, c), v) for c in snap.customers if (v := figure(c)) is not None),
        )


def _check_modes(histograms: str, temporality: str) -> None:
    if histograms not in ("exponential", "explicit"):
        raise ConfigurationError(
            f"histograms must be 'exponential' or 'explicit', got {histograms!r}"
        )
    if temporality not in ("cumulative", "delta"):
        raise ConfigurationError(
            f"temporality must be 'cumulative' or 'delta', got {temporality!r}"
        )


def _bpo(buckets_per_octave: int | None) -> int:
    if buckets_per_octave is None:
        return HOLDER.config.buckets_per_octave
    validate({"buckets_per_octave": buckets_per_octave})
    return buckets_per_octave


def metrics_data(
    snapshot: Snapshot,
    *,
    resource: Resource | None = None,
    histograms: Histograms = "exponential",
    temporality: Temporality = "cumulative",
    start_time_unix_nano: int | None = None,
    time_unix_nano: int | None = None,
    buckets_per_octave: int | None = None,
) -> MetricsData:
    """Build OpenTelemetry ``MetricsData`` from a snapshot, ready for ``MetricExporter.export``.

    ``temporality`` only labels the data: for ``"delta"`` pass a window (see
    :meth:`OTelExport.collect_and_export`, which does that bookkeeping). Times default to
    the snapshot's ``created_at``; ``resource`` defaults to ``Resource.create()`` (which
    reads ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``). Metrics with no data
    points are left out. Raises :class:`~hypoprobe.ConfigurationError` if the SDK is missing
    or an argument is invalid.

    Example::

        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        ConsoleMetricExporter().export(metrics_data(hypoprobe.snapshot()))
    """
    sdk = _sdk()
    _check_modes(histograms, temporality)
    now = time_unix_nano if time_unix_nano is not None else round(snapshot.created_at * 1e9)
    agg = sdk.export.AggregationTemporality
    build = _Build(
        sdk=sdk,
        histograms=histograms,
        temporality=agg.DELTA if temporality == "delta" else agg.CUMULATIVE,
        start=start_time_unix_nano if start_time_unix_nano is not None else now,
        now=now,
        bpo=_bpo(buckets_per_octave),
    )
    from . import __version__

    scope = sdk.scope("hypoprobe", __version__)
    metrics = [metric for metric in _all_metrics(build, snapshot) if metric is not None]
    return cast(
        "MetricsData",
        sdk.export.MetricsData(
            resource_metrics=[
                sdk.export.ResourceMetrics(
                    resource=resource if resource is not None else sdk.resource.create(),
                    scope_metrics=[
                        sdk.export.ScopeMetrics(scope=scope, metrics=metrics, schema_url="")
                    ],
                    schema_url="",
                )
            ]
        ),
    )


# --------------------------------------------------------------------------- the exporter


def _in_thread(fn: Callable[[], None], timeout: float, name: str) -> threading.Thread | None:
    """Run ``fn`` in a daemon thread for at most ``timeout`` seconds.

    Returns the thread if it is still running (the caller gives up on it), else None. At
    interpreter shutdown, when no thread can be started, runs ``fn`` right here.
    """
    thread = threading.Thread(target=fn, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:
        fn()
        return None
    thread.join(timeout)
    return thread if thread.is_alive() else None


class OTelExport:
    """A running OpenTelemetry export; create it with :func:`start_otel_export`.

    Every ``interval_seconds`` a daemon thread takes a snapshot and exports it. An exporter
    that raises, returns ``FAILURE`` or takes longer than ``timeout_seconds`` is counted in
    ``hypoprobe_internal_errors`` (kinds ``otel_export_raised``, ``otel_export_failed``,
    ``otel_export_timeout``), logged once, and retried at the next interval; with delta
    temporality the next export covers everything since the last successful one, so
    nothing is lost or counted twice. Nothing here raises into the application.

    Example::

        export = start_otel_export(ConsoleMetricExporter(), interval_seconds=10.0)
        export.collect_and_export()  # now, besides the timer
        export.shutdown()
    """

    def __init__(
        self,
        exporter: MetricExporter,
        *,
        interval_seconds: float,
        resource: Resource | None,
        temporality: Temporality,
        histograms: Histograms,
        timeout_seconds: float,
        buckets_per_octave: int | None,
        source: Callable[[], Snapshot],
    ) -> None:
        self._sdk = _sdk()
        _check_modes(histograms, temporality)
        for name, value in (
            ("interval_seconds", interval_seconds),
            ("timeout_seconds", timeout_seconds),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be positive and finite, got {value!r}")
        if not callable(getattr(exporter, "export", None)):
            raise ConfigurationError(
                f"exporter must be an OpenTelemetry MetricExporter, got {type(exporter).__name__}"
            )
        _bpo(buckets_per_octave)
        self.exporter = exporter
        self.interval_seconds = float(interval_seconds)
        self.timeout_seconds = float(timeout_seconds)
        self.temporality: Temporality = temporality
        self.histograms: Histograms = histograms
        self.resource = resource if resource is not None else self._sdk.resource.create()
        self._bpo = buckets_per_octave
        self._source = source
        self._lock = threading.Lock()  # one collection at a time
        self._stop = threading.Event()
        self._stopping = False  # shutdown() has begun
        self._closed = False  # shutdown() has exported for the last time
        self._inflight: threading.Thread | None = None
        #: The cumulative stream starts when the export does: strictly before the first
        #: point's time, as backends that reject empty cumulative intervals require.
        self._started_at = time.time_ns()
        #: Delta bookkeeping: the last snapshot an exporter accepted, and when.
        self._baseline: Snapshot | None = None
        self._baseline_time = self._started_at
        #: Exports the exporter accepted / that failed (raised, FAILURE or timed out).
        self.exported = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="hypoprobe-otel-export", daemon=True)

    def _start(self) -> None:
        self._thread.start()
        atexit.register(self._at_exit)
        _LIVE.add(self)

    def _forget_after_fork(self) -> None:
        # In a forked child the timer thread is gone and the lock may be held by a thread
        # that no longer exists: a fresh lock, and the handle closed, so the child's exit
        # cannot hang on it. Each worker starts its own export (see start_otel_export).
        self._lock = threading.Lock()
        self._stopping = self._closed = True
        self._inflight = None
        atexit.unregister(self._at_exit)
        _faults.record("otel_export_forked")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.collect_and_export()

    def _at_exit(self) -> None:
        self.shutdown()

    def collect_and_export(self) -> bool:
        """Take a snapshot and export it now; True if the exporter accepted it.

        Never raises; waits at most ``timeout_seconds`` for the exporter.
        """
        return self._export_now(self.timeout_seconds)

    def _export_now(self, timeout: float) -> bool:
        try:
            with self._lock:
                if self._closed:
                    return False
                return self._collect_and_export(timeout)
        except Exception:
            self.failed += 1
            _faults.record("otel_export_error")
            return False

    def _collect_and_export(self, timeout: float) -> bool:
        if self._inflight is not None:
            if self._inflight.is_alive():
                # The previous export is still stuck in the exporter: skip this round
                # rather than pile up threads.
                self.failed += 1
                _faults.record("otel_export_timeout")
                return False
            self._inflight = None
        snap = self._source()
        if self.temporality == "delta":
            baseline = self._baseline
            window = snap if baseline is None else snap.minus(baseline)
            start = self._baseline_time
        else:
            window, start = snap, self._started_at
        now = max(time.time_ns(), start + 1)
        data = metrics_data(
            window,
            resource=self.resource,
            histograms=self.histograms,
            temporality=self.temporality,
            start_time_unix_nano=start,
            time_unix_nano=now,
            buckets_per_octave=self._bpo,
        )
        accepted: list[bool] = []

        def export() -> None:
            try:
                result = self.exporter.export(data, timeout_millis=timeout * 1000)
            except Exception:
                self.failed += 1
                _faults.record("otel_export_raised")
                return
            if result == self._sdk.export.MetricExportResult.SUCCESS:
                # Set here, not by the caller: an export that outlived its timeout and then
                # succeeded still moves the delta baseline, so nothing is sent twice.
                self._baseline, self._baseline_time = snap, now
                self.exported += 1
                accepted.append(True)
            else:
                self.failed += 1
                _faults.record("otel_export_failed")

        stuck = _in_thread(export, timeout, "hypoprobe-otel-exporter")
        if stuck is not None:
            self._inflight = stuck
            self.failed += 1
            _faults.record("otel_export_timeout")
            return False
        return bool(accepted)

    def shutdown(self, timeout_seconds: float | None = None) -> None:
        """Stop the timer, export one last time, shut the exporter down. Idempotent.

        Each step waits at most ``timeout_seconds`` (default: the export timeout), so a
        hung exporter cannot hold up the interpreter's exit. Never raises.
        """
        try:
            timeout = self.timeout_seconds if timeout_seconds is None else timeout_seconds
            with self._lock:
                if self._stopping:
                    return
                self._stopping = True
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join(timeout)
            self._export_now(timeout)
            with self._lock:
                self._closed = True
            atexit.unregister(self._at_exit)

            def close() -> None:
                try:
                    self.exporter.shutdown(timeout_millis=timeout * 1000)
                except Exception:
                    _faults.record("otel_exporter_shutdown")

            _in_thread(close, timeout, "hypoprobe-otel-shutdown")
        except Exception:
            _faults.record("otel_export_error")


#: Running exports, so a fork can disarm them in the child.
_LIVE: weakref.WeakSet[OTelExport] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handle in list(_LIVE):
        handle._forget_after_fork()


_state.owns("otel", after_fork=_after_fork_in_child)


def start_otel_export(
    exporter: MetricExporter,
    interval_seconds: float = 60.0,
    *,
    resource: Resource | None = None,
    temporality: Temporality = "cumulative",
    histograms: Histograms = "exponential",
    timeout_seconds: float = 10.0,
    buckets_per_octave: int | None = None,
    source: Callable[[], Snapshot] | None = None,
) -> OTelExport:
    """Export hypoprobe's metrics through ``exporter`` every ``interval_seconds``.

    ``exporter`` is any OpenTelemetry SDK ``MetricExporter`` (OTLP/HTTP, OTLP/gRPC,
    console, your own). ``resource`` is the OTel ``Resource`` the data belongs to
    (default ``Resource.create()``). ``temporality`` is ``"cumulative"`` (the stream starts
    when this call is made) or ``"delta"`` (each export holds what happened since the
    previous accepted one). ``histograms`` is ``"exponential"`` (durations as exact
    base-2 exponential histograms in nanoseconds) or ``"explicit"`` (durations in seconds
    with the Prometheus view's bounds, at ``buckets_per_octave``; default: the configured
    value). ``source`` replaces :func:`hypoprobe.snapshot` as what is exported.

    Start it once per process, after any fork (pre-fork servers: in the worker; an export
    started before a fork stays with the parent and is disarmed in the child). Raises
    :class:`~hypoprobe.ConfigurationError` for invalid arguments or a missing SDK
    (``pip install 'hypoprobe[otel]'``); afterwards nothing raises.

    Example::

        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.resources import Resource

        export = start_otel_export(
            OTLPMetricExporter(endpoint="http://collector:4318/v1/metrics"),
            interval_seconds=30.0,
            resource=Resource.create({"service.name": "campaigns"}),
        )
    """
    handle = OTelExport(
        exporter,
        interval_seconds=interval_seconds,
        resource=resource,
        temporality=temporality,
        histograms=histograms,
        timeout_seconds=timeout_seconds,
        buckets_per_octave=buckets_per_octave,
        source=source if source is not None else take_snapshot,
    )
    handle._start()
    return handle
