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

import datetime as _dt
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

from . import _buckets, _customers_export
from . import _metrics as m
from ._collect import snapshot as take_snapshot
from ._config import HOLDER
from ._native import NativeHistogramFamily
from .snapshot import Histogram, Snapshot

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


def expires_label(expires: str | None) -> str:
    """The expiry as people wrote it: a date "through that day", else the ISO instant.

    Example::

        assert expires_label("2100-01-01T00:00:00+00:00") == "2099-12-31"
    """
    if not expires:
        return ""
    instant = _dt.datetime.fromisoformat(expires)
    if instant.timetz().replace(tzinfo=None) == _dt.time(0) and instant.utcoffset() in (
        None,
        _dt.timedelta(0),
    ):
        return (instant - _dt.timedelta(days=1)).date().isoformat()
    return instant.isoformat()


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def families(snap: Snapshot, buckets_per_octave: int = 1) -> Iterator[Metric]:
    """The metric families for a snapshot (used by the collector and by the CLI)."""
    bpo = buckets_per_octave
    # A hypothesis without slow_threshold has no slow requests: its slow="true" series
    # would be zeros forever, so they are not exposed.
    never_slow = {h.id for h in snap.hypotheses if h.slow_threshold is None}
    yield _histogram_family(
        m.ENDPOINT_DURATION, (((e.endpoint,), e.duration) for e in snap.endpoints), bpo
    )
    yield _histogram_family(
        m.PROBE_DURATION,
        (((p.hypothesis, p.probe, p.endpoint), p.duration) for p in snap.probes),
        bpo,
    )
    yield _histogram_family(
        m.REQUEST_PROBE,
        (
            ((r.hypothesis, r.probe, r.endpoint, r.segment, slow), hist)
            for r in snap.requests
            for slow, hist in (("false", r.probe_seconds_fast), ("true", r.probe_seconds_slow))
            if slow == "false" or r.hypothesis not in never_slow
        ),
        bpo,
    )
    yield _histogram_family(
        m.REQUEST_SHARE,
        (((r.hypothesis, r.probe, r.endpoint, r.segment), r.share) for r in snap.requests),
        bpo,
    )
    yield _histogram_family(
        m.REQUEST_CALLS,
        (((r.hypothesis, r.probe, r.endpoint, r.segment), r.calls) for r in snap.requests),
        bpo,
    )

    info = GaugeMetricFamily(
        m.HYPOTHESIS_INFO.name, m.HYPOTHESIS_INFO.help, labels=m.HYPOTHESIS_INFO.labels
    )
    expired = GaugeMetricFamily(
        m.HYPOTHESIS_EXPIRED.name, m.HYPOTHESIS_EXPIRED.help, labels=m.HYPOTHESIS_EXPIRED.labels
    )
    for h in snap.hypotheses:
        for endpoint in h.endpoints:
            info.add_metric(
                [
                    h.id,
                    endpoint,
                    h.claim,
                    _fmt(h.min_share),
                    # A label, read by people: 0.8056, not 0.8055555555555557 (the exact
                    # seconds it comes from are the next two labels).
                    "" if h.observed_share is None else f"{h.observed_share:.4f}",
                    _fmt(h.observed_probe_seconds),
                    _fmt(h.observed_endpoint_seconds),
                    _fmt(h.slow_threshold),
                    h.owner or "",
                    h.ticket or "",
                    expires_label(h.expires),
                    ",".join(h.segments or ()),
                    h.segment or "",
                ],
                1.0,
            )
        expired.add_metric([h.id], 1.0 if h.expired else 0.0)
    yield info
    yield expired
    unknown = GaugeMetricFamily(
        m.UNKNOWN_HYPOTHESIS.name, m.UNKNOWN_HYPOTHESIS.help, labels=m.UNKNOWN_HYPOTHESIS.labels
    )
    for hid in snap.unregistered:
        unknown.add_metric([hid], 1.0)
    yield unknown
    targets = GaugeMetricFamily(
        m.PROBE_TARGET.name, m.PROBE_TARGET.help, labels=m.PROBE_TARGET.labels
    )
    for t in snap.targets:
        targets.add_metric([t.hypothesis, t.target, t.kind, t.state, t.reason], float(t.processes))
    yield targets

    moment_families = [
        CounterMetricFamily(f.name, f.help, labels=f.labels)
        for f in (*m.INT_MOMENTS, *m.FLOAT_MOMENTS)
    ]
    for mo in snap.moments:
        if mo.slow and mo.hypothesis in never_slow:
            continue
        labels = [mo.hypothesis, mo.endpoint, mo.segment, "true" if mo.slow else "false"]
        values = (
            mo.requests,
            mo.requests_with_probe,
            mo.probe_seconds,
            mo.endpoint_seconds,
            mo.probe_seconds_squared,
            mo.endpoint_seconds_squared,
            mo.probe_endpoint_seconds_squared,
        )
        for fam, value in zip(moment_families, values, strict=True):
            fam.add_metric(labels, float(value))
    yield from moment_families

    outcomes = CounterMetricFamily(
        m.ENDPOINT_REQUESTS.name, m.ENDPOINT_REQUESTS.help, labels=m.ENDPOINT_REQUESTS.labels
    )
    for o in snap.outcomes:
        if o.count:  # a slot no request has reached yet is not a series worth exporting
            outcomes.add_metric([o.endpoint, o.status, o.exception], float(o.count))
    yield outcomes
    exc = CounterMetricFamily(
        m.PROBE_EXCEPTIONS.name, m.PROBE_EXCEPTIONS.help, labels=m.PROBE_EXCEPTIONS.labels
    )
    for x in snap.exceptions:
        exc.add_metric([x.hypothesis, x.probe, x.exception], float(x.count))
    yield exc
    errors = CounterMetricFamily(
        m.INTERNAL_ERRORS.name, m.INTERNAL_ERRORS.help, labels=m.INTERNAL_ERRORS.labels
    )
    for kind, n in sorted(snap.internal_errors.items()):
        errors.add_metric([kind], float(n))
    yield errors
    dropped = CounterMetricFamily(
        m.SERIES_DROPPED.name, m.SERIES_DROPPED.help, labels=m.SERIES_DROPPED.labels
    )
    for metric, n in sorted(snap.series_overflow.items()):
        dropped.add_metric([metric], float(n))
    yield dropped
    yield _clamped(snap)
    yield from _customers_export.families(snap)
    self_cost = CounterMetricFamily(
        m.SELF_SECONDS.name, m.SELF_SECONDS.help, labels=m.SELF_SECONDS.labels
    )
    for endpoint, seconds in sorted(snap.self_seconds.items()):
        self_cost.add_metric([endpoint], seconds)
    yield self_cost


def _clamped(snap: Snapshot) -> CounterMetricFamily:
    fam = CounterMetricFamily(m.CLAMPED.name, m.CLAMPED.help, labels=m.CLAMPED.labels)
    for (metric, side), n in clamped_totals(snap):
        fam.add_metric([metric, side], float(n))
    return fam


def clamped_totals(snap: Snapshot) -> list[tuple[tuple[str, str], int]]:
    """Values outside each histogram's range, by (metric, side): the first and last buckets.

    Only the duration layouts have a "low" side: the first share and calls bucket is an
    exact 0, not a clamp.
    """
    totals: dict[tuple[str, str], int] = {}

    def add(metric: str, hist: Histogram, low: bool) -> None:
        if low:
            totals[(metric, "low")] = totals.get((metric, "low"), 0) + hist.counts[0]
        totals[(metric, "high")] = totals.get((metric, "high"), 0) + hist.counts[-1]

    for e in snap.endpoints:
        add(m.ENDPOINT_DURATION.name, e.duration, True)
    for p in snap.probes:
        add(m.PROBE_DURATION.name, p.duration, True)
    for r in snap.requests:
        add(m.REQUEST_SHARE.name, r.share, False)
        add(m.REQUEST_CALLS.name, r.calls, False)
    return sorted(totals.items())


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
        for fam in (*m.HISTOGRAMS,):
            yield HistogramMetricFamily(fam.name, fam.help, labels=fam.labels)
        for fam in (m.HYPOTHESIS_INFO, m.HYPOTHESIS_EXPIRED, m.UNKNOWN_HYPOTHESIS, m.PROBE_TARGET):
            yield GaugeMetricFamily(fam.name, fam.help, labels=fam.labels)
        for fam in (
            *m.INT_MOMENTS,
            *m.FLOAT_MOMENTS,
            m.PROBE_EXCEPTIONS,
            m.ENDPOINT_REQUESTS,
            m.INTERNAL_ERRORS,
            m.SERIES_DROPPED,
            m.CLAMPED,
            m.SELF_SECONDS,
        ):
            yield CounterMetricFamily(fam.name, fam.help, labels=fam.labels)


COLLECTOR = HypoprobeCollector()
