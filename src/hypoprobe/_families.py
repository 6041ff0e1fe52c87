"""The one table of metric families both exporters render: which series each family has.

``/metrics`` (:mod:`hypoprobe.prometheus`) and the OpenTelemetry export
(:mod:`hypoprobe.otel`) both walk :func:`histogram_rows` and :func:`number_rows`; they
differ only in how a value is written (label text versus typed attributes, classic or
native buckets versus OTel points), never in which series exist. A family added here is
exported by both.

Label values are typed: ``str``, ``float`` (a hypothesis' shares and threshold), ``bool``
(``slow``), a tuple of strings (``segments``) or ``None`` (not set). Each exporter turns them
into its own form.

Example::

    for family, rows in histogram_rows(snap):
        for labels, hist in rows:
            print(family.name, dict(zip(family.labels, labels)), hist.total)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator

from . import _metrics as m
from .model import Histogram, Moments, Snapshot

__all__ = [
    "HISTOGRAM_FAMILIES",
    "NUMBER_FAMILIES",
    "LabelValue",
    "Labels",
    "clamped_totals",
    "expires_label",
    "histogram_rows",
    "number_rows",
]

LabelValue = str | float | bool | tuple[str, ...] | None
#: One series' label values, in its family's ``labels`` order.
Labels = tuple[LabelValue, ...]

#: Every histogram family, in the order both exporters render them.
HISTOGRAM_FAMILIES = m.HISTOGRAMS
#: Every counter and gauge family, in the order both exporters render them.
NUMBER_FAMILIES: tuple[m.Family, ...] = (
    m.HYPOTHESIS_INFO,
    m.HYPOTHESIS_EXPIRED,
    m.UNKNOWN_HYPOTHESIS,
    m.PROBE_TARGET,
    *m.INT_MOMENTS,
    *m.FLOAT_MOMENTS,
    m.ENDPOINT_REQUESTS,
    m.PROBE_EXCEPTIONS,
    m.INTERNAL_ERRORS,
    m.SERIES_DROPPED,
    m.CLAMPED,
    m.SELF_SECONDS,
)


def _never_slow(snap: Snapshot) -> frozenset[str]:
    # A hypothesis without slow_threshold has no slow requests: its slow="true" series
    # would be zeros forever, so no exporter shows them.
    return frozenset(h.id for h in snap.hypotheses if h.slow_threshold is None)


def histogram_rows(
    snap: Snapshot,
) -> Iterator[tuple[m.Family, Iterable[tuple[Labels, Histogram]]]]:
    """Each histogram family with its series: (label values, histogram)."""
    quiet = _never_slow(snap)
    yield m.ENDPOINT_DURATION, [((e.endpoint,), e.duration) for e in snap.endpoints]
    yield m.PROBE_DURATION, [((p.hypothesis, p.probe, p.endpoint), p.duration) for p in snap.probes]
    yield (
        m.REQUEST_PROBE,
        [
            ((r.hypothesis, r.probe, r.endpoint, r.segment, slow), hist)
            for r in snap.requests
            for slow, hist in ((False, r.probe_seconds_fast), (True, r.probe_seconds_slow))
            if not slow or r.hypothesis not in quiet
        ],
    )
    yield (
        m.REQUEST_SHARE,
        [((r.hypothesis, r.probe, r.endpoint, r.segment), r.share) for r in snap.requests],
    )
    yield (
        m.REQUEST_CALLS,
        [((r.hypothesis, r.probe, r.endpoint, r.segment), r.calls) for r in snap.requests],
    )


def _moment_values(mo: Moments) -> tuple[float, ...]:
    """A moment row's values, in ``INT_MOMENTS + FLOAT_MOMENTS`` order."""
    return (
        mo.requests,
        mo.requests_with_probe,
        mo.probe_seconds,
        mo.endpoint_seconds,
        mo.probe_seconds_squared,
        mo.endpoint_seconds_squared,
        mo.probe_endpoint_seconds_squared,
    )


def number_rows(snap: Snapshot) -> Iterator[tuple[m.Family, Iterable[tuple[Labels, float]]]]:
    """Each counter and gauge family with its series: (label values, value)."""
    yield (
        m.HYPOTHESIS_INFO,
        [
            (
                (
                    h.id,
                    endpoint,
                    h.claim,
                    h.min_share,
                    h.observed_share,
                    h.observed_probe_seconds,
                    h.observed_endpoint_seconds,
                    h.slow_threshold,
                    h.owner,
                    h.ticket,
                    expires_label(h.expires) or None,
                    h.segments,
                    h.segment,
                ),
                1,
            )
            for h in snap.hypotheses
            for endpoint in h.endpoints
        ],
    )
    yield m.HYPOTHESIS_EXPIRED, [((h.id,), int(h.expired)) for h in snap.hypotheses]
    yield m.UNKNOWN_HYPOTHESIS, [((hid,), 1) for hid in snap.unregistered]
    yield (
        m.PROBE_TARGET,
        [((t.hypothesis, t.target, t.kind, t.state, t.reason), t.processes) for t in snap.targets],
    )
    quiet = _never_slow(snap)
    moments = [
        ((mo.hypothesis, mo.endpoint, mo.segment, mo.slow), _moment_values(mo))
        for mo in snap.moments
        if not (mo.slow and mo.hypothesis in quiet)
    ]
    for i, family in enumerate((*m.INT_MOMENTS, *m.FLOAT_MOMENTS)):
        yield family, [(labels, values[i]) for labels, values in moments]
    yield (
        m.ENDPOINT_REQUESTS,
        # A slot no request has reached yet is not a series worth exporting.
        [((o.endpoint, o.status, o.exception), o.count) for o in snap.outcomes if o.count],
    )
    yield (
        m.PROBE_EXCEPTIONS,
        [((x.hypothesis, x.probe, x.exception), x.count) for x in snap.exceptions],
    )
    yield m.INTERNAL_ERRORS, [((k,), n) for k, n in sorted(snap.internal_errors.items())]
    yield m.SERIES_DROPPED, [((k,), n) for k, n in sorted(snap.series_overflow.items())]
    yield m.CLAMPED, [((k, side), n) for (k, side), n in clamped_totals(snap)]
    yield m.SELF_SECONDS, [((k,), v) for k, v in sorted(snap.self_seconds.items())]


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
