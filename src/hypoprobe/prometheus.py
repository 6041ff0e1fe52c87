"""Prometheus exposition: a prometheus_client Collector that reads the storage at scrape time.

It is registered on ``prometheus_client.REGISTRY`` when hypoprobe is imported (move it with
``hypoprobe.configure(registry=...)``), so any existing ``/metrics`` endpoint — the
prometheus_client WSGI/ASGI apps, ``start_http_server``, django-prometheus — shows
hypoprobe's metrics with no further code. Metric names are documented in ``docs/metrics.md``.
For native histograms, serve ``hypoprobe.metrics_wsgi_app()`` (or its ASGI and server
siblings), which adds the protobuf format: see ``_exposition.py`` and ``docs/operations.md``.

Classic histogram buckets are a subset of the internal buckets (``buckets_per_octave``),
so every exposed cumulative count is exact.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from . import _customers_export
from . import _metrics as m
from ._collect import snapshot as take_snapshot
from ._config import HOLDER
from ._core import _buckets
from ._families import (
    HISTOGRAM_FAMILIES,
    NUMBER_FAMILIES,
    Labels,
    LabelValue,
    histogram_rows,
    number_rows,
)
from ._native import NativeHistogramFamily
from .model import Histogram, Snapshot

__all__ = ["HypoprobeCollector", "families"]


@functools.lru_cache(maxsize=64)
def _exposed(layout: _buckets.BucketLayout, buckets_per_octave: int) -> tuple[tuple[int, str], ...]:
    """(index, ``le`` text) of the bounds a layout shows: computed once, not per series."""
    if layout is _buckets.DURATION:
        indices: Iterable[int] = _buckets.duration_exposed(buckets_per_octave)
    else:
        indices = layout.default_exposed
    return tuple((i, _le(layout.natural_bounds[i])) for i in sorted(indices))


def _buckets_of(hist: Histogram, exposed: tuple[tuple[int, str], ...]) -> list[tuple[str, float]]:
    """Cumulative counts at the exposed bounds: sums of whole internal buckets, so exact."""
    cum = list(accumulate(hist.counts))
    out = [(le, float(cum[i])) for i, le in exposed]
    out.append(("+Inf", float(cum[-1])))
    return out


def _le(bound: float) -> str:
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


def _histogram_family(
    family: m.Family, rows: Iterable[tuple[tuple[str, ...], Histogram]], bpo: int
) -> HistogramMetricFamily:
    # Keeps each series' histogram for the protobuf exposition's native form (_protobuf.py).
    metric = NativeHistogramFamily(family.name, family.help, labels=list(family.labels))
    layout = family.layout
    assert layout is not None
    exposed = _exposed(layout, bpo)
    for labels, hist in rows:
        metric.histograms[tuple(labels)] = hist
        shown = exposed
        if not (hist.bounds is layout.natural_bounds or hist.bounds == layout.natural_bounds):
            # from another source, with bounds of its own: show them all
            shown = tuple((i, _le(b)) for i, b in enumerate(hist.bounds))
        buckets = _buckets_of(hist, shown)
        if hist.exemplars:
            metric.add_metric(list(labels), _with_exemplars(buckets, hist, shown), hist.sum)
        else:
            metric.add_metric(list(labels), buckets, hist.sum)
    return metric


def _with_exemplars(
    buckets: list[tuple[str, float]], hist: Histogram, shown: tuple[tuple[int, str], ...]
) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
    """Each exposed bucket with the newest exemplar of the internal buckets it sums.

    prometheus_client writes them only in OpenMetrics output (Prometheus' exemplar storage
    reads them from there); the classic text format leaves them out.
    """
    newest = hist.exemplars_at([i for i, _ in shown])
    out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
    for j, (le, count) in enumerate(buckets):
        ex = newest.get(j)
        if ex is None:
            out.append((le, count))
        else:
            labels = {"trace_id": ex.trace_id, "span_id": ex.span_id}
            out.append((le, count, Exemplar(labels, ex.value, ex.timestamp)))
    return out


def _text(value: LabelValue) -> str:
    """A label value as /metrics writes it: numbers as Python floats, unset as ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float | int):
        return repr(float(value))
    return value


def _texts(labels: Labels, family: m.Family | None = None) -> tuple[str, ...]:
    texts = tuple(_text(v) for v in labels)
    if family is m.HYPOTHESIS_INFO:
        # A label, read by people: 0.8056, not 0.8055555555555557 (the exact seconds it
        # comes from are the next two labels). OpenTelemetry keeps the double.
        i = family.labels.index("observed_share")
        share = labels[i]
        if isinstance(share, float):
            texts = (*texts[:i], f"{share:.4f}", *texts[i + 1 :])
    return texts


_NUMBER_TYPES: dict[str, type[CounterMetricFamily] | type[GaugeMetricFamily]] = {
    "counter": CounterMetricFamily,
    "gauge": GaugeMetricFamily,
}


def families(snap: Snapshot, buckets_per_octave: int = 1) -> Iterator[Metric]:
    """The metric families for a snapshot (used by the collector and by the CLI).

    Which series exist is :mod:`hypoprobe._families`' table, shared with the OpenTelemetry
    export; this writes them as prometheus_client families.
    """
    for family, hist_rows in histogram_rows(snap):
        yield _histogram_family(
            family, ((_texts(labels), hist) for labels, hist in hist_rows), buckets_per_octave
        )
    for family, rows in number_rows(snap):
        metric = _NUMBER_TYPES[family.kind](family.name, family.help, labels=family.labels)
        for labels, value in rows:
            metric.add_metric(list(_texts(labels, family)), float(value))
        yield metric
    yield from _customers_export.families(snap)


class HypoprobeCollector(Collector):
    """Reads hypoprobe's storage at scrape time; never touches the recording path.

    Registered on the default registry automatically. To expose hypoprobe on a registry
    of your own instead::

        registry = prometheus_client.CollectorRegistry()
        hypoprobe.configure(registry=registry)
        # addr: start_http_server binds every interface (0.0.0.0) by default
        prometheus_client.start_http_server(9100, addr="127.0.0.1", registry=registry)
    """

    def collect(self) -> Iterator[Metric]:
        yield from families(take_snapshot(), HOLDER.config.buckets_per_octave)

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering does not run a collection.
        for fam in HISTOGRAM_FAMILIES:
            yield HistogramMetricFamily(fam.name, fam.help, labels=fam.labels)
        for fam in NUMBER_FAMILIES:
            yield _NUMBER_TYPES[fam.kind](fam.name, fam.help, labels=fam.labels)


COLLECTOR = HypoprobeCollector()
