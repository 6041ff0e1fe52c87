"""The Prometheus protobuf exposition format: a registry's metrics as delimited MetricFamily.

Every metric of the registry is written, so a protobuf scrape carries the same series as a
text scrape (``_created`` samples as the gauges the text format makes of them); hypoprobe's
histograms (:class:`~hypoprobe._native.NativeHistogramFamily`) carry their classic buckets
*and* the native form, from the same collection. Exemplars go on the classic buckets (the
newest per exposed bucket, where Prometheus 2.42 reads them) and in the native histogram's
own list (the newest per internal bucket, oldest first, as later releases read them).

Encoding uses the ``protobuf`` runtime only: messages from the generated
``_proto/metrics_pb2`` and ``google.protobuf.proto.serialize_length_prefixed`` (protobuf
>= 5.28) for the length prefix of each message; nothing here writes a varint by hand.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf import proto
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample, Timestamp

from ._native import NativeHistogram, NativeHistogramFamily, to_native
from ._proto import metrics_pb2 as pb
from .snapshot import Histogram

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

_GAUGE_SUFFIXES = ("_created", "_gsum", "_gcount")


def render(registry: Collector) -> bytes:
    """Every metric family of ``registry``, each as a length-prefixed MetricFamily message."""
    out = io.BytesIO()
    for metric in registry.collect():
        for family in _families(metric):
            proto.serialize_length_prefixed(family, out)
    return out.getvalue()


def _families(metric: Metric) -> Iterable[pb.MetricFamily]:
    mtype = metric.type
    name = metric.name
    kept: list[Sample] = []
    extra: dict[str, list[Sample]] = {}
    for s in metric.samples:
        suffix = next((x for x in _GAUGE_SUFFIXES if s.name == name + x), None)
        # A gauge histogram's _gsum/_gcount belong to it; _created is a gauge of its own,
        # as the text format writes it.
        if suffix == "_created" or (suffix is not None and mtype != "gaugehistogram"):
            extra.setdefault(suffix, []).append(s)
        else:
            kept.append(s)
    family = pb.MetricFamily(help=metric.documentation)
    if metric.unit:
        family.unit = metric.unit
    if mtype == "counter":
        family.name, family.type = name + "_total", pb.COUNTER
        for s in kept:
            m = _metric(family, s.labels, s.timestamp)
            m.counter.value = s.value
            if s.exemplar is not None:
                _exemplar(m.counter.exemplar, s.exemplar)
    elif mtype in ("gauge", "info", "stateset"):
        family.name = name + "_info" if mtype == "info" else name
        family.type = pb.GAUGE
        for s in kept:
            _metric(family, s.labels, s.timestamp).gauge.value = s.value
    elif mtype == "summary":
        family.name, family.type = name, pb.SUMMARY
        for labels, parts in _grouped(kept, "quantile"):
            m = _metric(family, labels, parts[0].timestamp)
            for s in parts:
                if s.name == name + "_count":
                    m.summary.sample_count = _count(s.value)
                elif s.name == name + "_sum":
                    m.summary.sample_sum = s.value
                elif "quantile" in s.labels:
                    m.summary.quantile.add(quantile=float(s.labels["quantile"]), value=s.value)
    elif mtype in ("histogram", "gaugehistogram"):
        family.name = name
        family.type = pb.HISTOGRAM if mtype == "histogram" else pb.GAUGE_HISTOGRAM
        native = metric.histograms if isinstance(metric, NativeHistogramFamily) else None
        label_names = metric.label_names if isinstance(metric, NativeHistogramFamily) else ()
        for labels, parts in _grouped(kept, "le"):
            m = _metric(family, labels, parts[0].timestamp)
            _classic(m.histogram, name, parts)
            if native is not None:
                hist = native.get(tuple(labels.get(n, "") for n in label_names))
                if hist is not None:
                    _native(m.histogram, to_native(hist), hist)
    else:
        family.name, family.type = name, pb.UNTYPED
        for s in kept:
            _metric(family, s.labels, s.timestamp).untyped.value = s.value
    if family.metric or not extra:
        yield family
    for suffix, samples in sorted(extra.items()):
        gauges = pb.MetricFamily(name=name + suffix, help=metric.documentation, type=pb.GAUGE)
        for s in samples:
            _metric(gauges, s.labels, s.timestamp).gauge.value = s.value
        yield gauges


def _grouped(samples: list[Sample], drop: str) -> list[tuple[dict[str, str], list[Sample]]]:
    """Samples of one series together (labels without ``drop``), in first-seen order."""
    groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Sample]]] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != drop}
        key = tuple(sorted(labels.items()))
        groups.setdefault(key, (labels, []))[1].append(s)
    return list(groups.values())


def _metric(family: pb.MetricFamily, labels: dict[str, str], timestamp: Any) -> pb.Metric:
    m: pb.Metric = family.metric.add()
    for k, v in labels.items():
        m.label.add(name=k, value=v)
    if timestamp is not None:
        m.timestamp_ms = round(_seconds(timestamp) * 1000)
    return m


def _classic(h: pb.Histogram, name: str, parts: list[Sample]) -> None:
    for s in parts:
        if s.name in (name + "_count", name + "_gcount"):
            h.sample_count = _count(s.value)
        elif s.name in (name + "_sum", name + "_gsum"):
            h.sample_sum = s.value
        elif s.name == name + "_bucket":
            le = float(s.labels.get("le", "+Inf"))
            if math.isinf(le) and le > 0:
                # Implied by sample_count; without a _count sample, it is the count.
                if not any(p.name in (name + "_count", name + "_gcount") for p in parts):
                    h.sample_count = _count(s.value)
                if s.exemplar is None:
                    continue
            b = h.bucket.add(cumulative_count=_count(s.value), upper_bound=le)
            if s.exemplar is not None:
                _exemplar(b.exemplar, s.exemplar)


def _native(h: pb.Histogram, native: NativeHistogram, hist: Histogram) -> None:
    h.schema = native.schema
    h.zero_threshold = native.zero_threshold
    h.zero_count = native.zero_count
    h.sample_count = native.count
    h.sample_sum = native.sum
    if native.spans:
        for offset, length in native.spans:
            h.positive_span.add(offset=offset, length=length)
        h.positive_delta.extend(native.deltas)
    else:
        # No observation yet: a no-op span still marks the histogram as native.
        h.positive_span.add(offset=0, length=0)
    # Every internal bucket's newest traced request, oldest first: Prometheus appends a
    # histogram's exemplars to one series and drops one older than the last it took.
    for ex in sorted(hist.exemplars, key=lambda e: e.timestamp):
        target = h.exemplars.add(value=ex.value)
        target.label.add(name="trace_id", value=ex.trace_id)
        target.label.add(name="span_id", value=ex.span_id)
        _timestamp(target, ex.timestamp)


def _exemplar(target: pb.Exemplar, ex: Exemplar) -> None:
    for k, v in ex.labels.items():
        target.label.add(name=k, value=v)
    target.value = ex.value
    if ex.timestamp is not None:
        _timestamp(target, _seconds(ex.timestamp))


def _timestamp(target: pb.Exemplar, seconds: float) -> None:
    whole = math.floor(seconds)
    target.timestamp.seconds = whole
    target.timestamp.nanos = min(999_999_999, round((seconds - whole) * 1e9))


def _seconds(timestamp: float | Timestamp) -> float:
    if isinstance(timestamp, Timestamp):
        return timestamp.sec + timestamp.nsec / 1e9
    return float(timestamp)


def _count(value: float) -> int:
    return max(0, round(value)) if math.isfinite(value) else 0
