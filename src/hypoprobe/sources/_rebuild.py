"""Turn Prometheus samples (metric name, labels, value) back into a :class:`Snapshot`.

Both the ``/metrics`` scrape and the Prometheus HTTP API end up with flat samples named as
in ``docs/metrics.md``; this module is the one place that knows how those names map onto
the snapshot model, so the two sources cannot drift apart.

Histograms come back at the bounds that were exposed (a subset of the internal buckets);
cumulative counts at those bounds are exact, and ``Snapshot.merge`` keeps only the bounds
every part has, so a rebuilt snapshot merges with any other.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .. import _customers_export as _cx
from .. import _metrics as m
from .._core._buckets import BucketLayout
from .._sketch import CustomerSketch
from ..model import (
    EndpointData,
    EndpointOutcome,
    ExceptionCount,
    Histogram,
    HypothesisInfo,
    Moments,
    ProbeData,
    RequestData,
    Snapshot,
    TargetState,
)

__all__: list[str] = []

PREFIX = "hypoprobe_"

_HISTOGRAMS = {f.name: f for f in m.HISTOGRAMS}
_DURATIONS = m.ENDPOINT_DURATION.layout
#: Counter sample name (``*_total``) -> the Moments field it fills.
_MOMENT_FIELDS = {
    f"{m.MOMENT_REQUESTS.name}_total": "requests",
    f"{m.MOMENT_REQUESTS_WITH_PROBE.name}_total": "requests_with_probe",
    f"{m.MOMENT_PROBE.name}_total": "probe_seconds",
    f"{m.MOMENT_ENDPOINT.name}_total": "endpoint_seconds",
    f"{m.MOMENT_PP.name}_total": "probe_seconds_squared",
    f"{m.MOMENT_EE.name}_total": "endpoint_seconds_squared",
    f"{m.MOMENT_PE.name}_total": "probe_endpoint_seconds_squared",
}
_EXCEPTIONS = f"{m.PROBE_EXCEPTIONS.name}_total"
_OUTCOMES = f"{m.ENDPOINT_REQUESTS.name}_total"
_INTERNAL_ERRORS = f"{m.INTERNAL_ERRORS.name}_total"
_OVERFLOW = f"{m.SERIES_DROPPED.name}_total"
_SELF_SECONDS = f"{m.SELF_SECONDS.name}_total"
#: The customer families (``_customers_export``) -> CustomerSketch fields.
_CUSTOMER_FIELDS = {
    _cx.DISTINCT: "distinct",
    _cx.VALUE: "value",
    f"{_cx.REQUESTS}_total": "requests",
    f"{_cx.PROBE}_total": "probe_seconds",
    f"{_cx.PROBE_VALUE}_total": "probe_value_seconds",
}


@dataclass(frozen=True)
class Sample:
    """One exposed sample, named as Prometheus stores it (``*_bucket``, ``*_total``...)."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class _HistogramParts:
    cumulative: dict[float, float] = field(default_factory=dict)
    inf: float | None = None
    sum: float = 0.0


def _key(labels: Mapping[str, str], names: Iterable[str]) -> tuple[str, ...]:
    return tuple(labels.get(n, "") for n in names)


def _segment(segment: str) -> dict[str, str]:
    """The ``segment`` field, given only when set (older snapshot models have no such field)."""
    return {"segment": segment} if segment else {}


def _histogram(parts: _HistogramParts) -> Histogram:
    bounds = sorted(parts.cumulative)
    # Rounded, then made monotone: increase() returns extrapolated, fractional counts, and
    # rounding adjacent buckets independently could otherwise make one negative.
    cumulative: list[int] = []
    running = 0
    for value in [*(parts.cumulative[b] for b in bounds), parts.inf]:
        if value is not None and math.isfinite(value):
            running = max(running, round(value))
        cumulative.append(running)
    counts = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]
    total = parts.sum if math.isfinite(parts.sum) else 0.0
    return Histogram(tuple(bounds), tuple(counts), total)


def _empty(layout: BucketLayout | None, like: Histogram | None = None) -> Histogram:
    """A neutral part: all the layout's bounds, so merging with it keeps the other's bounds."""
    if like is not None:
        return Histogram.empty(like.bounds)
    assert layout is not None
    return Histogram.empty(layout.natural_bounds)


def _optional_float(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _expiry_instant(label: str | None) -> str | None:
    """The instant a hypothesis goes stale, as snapshots keep it, from the info label.

    The label says the date as written ("valid through 2099-12-31"); the instant is the
    next midnight, UTC. A label with a time is the instant itself.
    """
    if not label:
        return None
    try:
        if len(label) == 10:
            day = _dt.date.fromisoformat(label) + _dt.timedelta(days=1)
            return _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.timezone.utc).isoformat()
        return _dt.datetime.fromisoformat(label).isoformat()
    except ValueError:
        return None


def _info(hid: str, rows: list[Mapping[str, str]], expired: bool) -> HypothesisInfo:
    first = rows[0]
    endpoints = tuple(dict.fromkeys(r.get("endpoint", "") for r in rows if r.get("endpoint")))
    probe_s = _optional_float(first.get("observed_probe_seconds"))
    endpoint_s = _optional_float(first.get("observed_endpoint_seconds"))
    if probe_s is None or endpoint_s is None:
        # The classic info series carries only the anecdote's share: keep the share exact
        # and express it per second of endpoint time (documented in docs/sources.md).
        share = _optional_float(first.get("observed_share"))
        probe_s, endpoint_s = (share, 1.0) if share is not None else (None, None)
    return HypothesisInfo(
        id=hid,
        claim=first.get("claim", ""),
        endpoints=endpoints,
        min_share=_optional_float(first.get("min_share")) or 0.0,
        observed_probe_seconds=probe_s,
        observed_endpoint_seconds=endpoint_s,
        slow_threshold=_optional_float(first.get("slow_threshold")),
        owner=first.get("owner") or None,
        ticket=first.get("ticket") or None,
        expires=_expiry_instant(first.get("expires")),
        expired=expired,
        segments=tuple(first["segments"].split(",")) if first.get("segments") else None,
        segment=first.get("segment") or None,
    )


def rebuild(samples: Iterable[Sample], *, source: str, created_at: float) -> Snapshot:
    """Build a snapshot from hypoprobe's samples; other metrics are ignored.

    Counts (requests, histogram buckets, exceptions) are rounded to integers, which leaves
    exact scrapes unchanged and turns Prometheus' extrapolated ``increase()`` values into
    the nearest whole number; second sums are kept as given.
    """
    histograms: dict[tuple[str, tuple[tuple[str, str], ...]], _HistogramParts] = {}
    moments: dict[tuple[str, str, str, bool], dict[str, float]] = {}
    info_rows: dict[str, list[Mapping[str, str]]] = {}
    expired: dict[str, bool] = {}
    unregistered: set[str] = set()
    targets: dict[tuple[str, ...], int] = {}
    exceptions: dict[tuple[str, str, str], int] = {}
    outcomes: dict[tuple[str, ...], int] = {}
    internal_errors: dict[str, int] = {}
    overflow: dict[str, int] = {}
    self_seconds: dict[str, float] = {}
    customers: dict[tuple[str, str, str, str], dict[str, float]] = {}

    for s in samples:
        if not s.name.startswith(PREFIX) or math.isnan(s.value):
            continue
        base, _, suffix = s.name.rpartition("_")
        family = _HISTOGRAMS.get(base)
        if family is not None and suffix in ("bucket", "sum"):
            # Keyed by label *names*, so a label added to a family cannot shift the others.
            names = tuple(n for n in family.labels if n != "le")
            key = (base, tuple(zip(names, _key(s.labels, names), strict=True)))
            parts = histograms.setdefault(key, _HistogramParts())
            if suffix == "sum":
                parts.sum += s.value
            elif s.labels.get("le") in ("+Inf", "Inf", "inf"):
                parts.inf = (parts.inf or 0.0) + s.value
            else:
                le = _optional_float(s.labels.get("le"))
                # Dropping a bound merges its bucket into the next (the counts are
                # cumulative): exact, and a duration bound at or below zero means nothing.
                if le is not None and (le > 0 or (le == 0 and family.layout is not _DURATIONS)):
                    parts.cumulative[le] = parts.cumulative.get(le, 0.0) + s.value
        elif s.name in _CUSTOMER_FIELDS:
            key4 = _key(s.labels, ("hypothesis", "endpoint", "segment", "kind"))
            slot = customers.setdefault((key4[0], key4[1], key4[2], key4[3]), {})
            name = _CUSTOMER_FIELDS[s.name]
            slot[name] = slot.get(name, 0.0) + s.value
        elif s.name in _MOMENT_FIELDS:
            hid, endpoint, segment = _key(s.labels, ("hypothesis", "endpoint", "segment"))
            slot = moments.setdefault((hid, endpoint, segment, s.labels.get("slow") == "true"), {})
            name = _MOMENT_FIELDS[s.name]
            slot[name] = slot.get(name, 0.0) + s.value
        elif s.name == m.HYPOTHESIS_INFO.name and s.value > 0:
            info_rows.setdefault(s.labels.get("hypothesis", ""), []).append(s.labels)
        elif s.name == m.HYPOTHESIS_EXPIRED.name:
            hid = s.labels.get("hypothesis", "")
            expired[hid] = expired.get(hid, False) or s.value > 0
        elif s.name == m.UNKNOWN_HYPOTHESIS.name and s.value > 0:
            unregistered.add(s.labels.get("hypothesis", ""))
        elif s.name == m.PROBE_TARGET.name and s.value > 0:
            tkey = _key(s.labels, m.PROBE_TARGET.labels)
            targets[tkey] = targets.get(tkey, 0) + round(s.value)
        elif s.name == _OUTCOMES:
            okey = _key(s.labels, ("endpoint", "status", "exception"))
            outcomes[okey] = outcomes.get(okey, 0) + round(s.value)
        elif s.name == _EXCEPTIONS:
            hid, probe, exc_class = _key(s.labels, ("hypothesis", "probe", "exception"))
            xkey = (hid, probe, exc_class)
            exceptions[xkey] = exceptions.get(xkey, 0) + round(s.value)
        elif s.name == _INTERNAL_ERRORS:
            kind = s.labels.get("kind", "")
            internal_errors[kind] = internal_errors.get(kind, 0) + round(s.value)
        elif s.name == _OVERFLOW:
            metric = s.labels.get("metric", "")
            overflow[metric] = overflow.get(metric, 0) + round(s.value)
        elif s.name == _SELF_SECONDS:
            endpoint = s.labels.get("endpoint", "")
            self_seconds[endpoint] = self_seconds.get(endpoint, 0.0) + s.value

    endpoints: list[EndpointData] = []
    probes: list[ProbeData] = []
    per_request: dict[tuple[str, str, str, str], dict[str, Histogram]] = {}
    for (name, pairs), parts in histograms.items():
        hist = _histogram(parts)
        labels = dict(pairs)
        hid, probe, endpoint = _key(labels, ("hypothesis", "probe", "endpoint"))
        if name == m.ENDPOINT_DURATION.name:
            endpoints.append(EndpointData(endpoint, hist))
        elif name == m.PROBE_DURATION.name:
            probes.append(ProbeData(hid, probe, endpoint, hist))
        else:
            part = per_request.setdefault((hid, probe, endpoint, labels.get("segment", "")), {})
            if name == m.REQUEST_PROBE.name:
                slow_part = labels.get("slow") == "true"
                part["probe_seconds_slow" if slow_part else "probe_seconds_fast"] = hist
            elif name == m.REQUEST_SHARE.name:
                part["share"] = hist
            else:
                part["calls"] = hist

    requests = []
    for (hid, probe, endpoint, segment), parts_of in per_request.items():
        fast = parts_of.get("probe_seconds_fast")
        slow = parts_of.get("probe_seconds_slow")
        requests.append(
            RequestData(
                hid,
                probe,
                endpoint,
                probe_seconds_fast=fast or _empty(m.REQUEST_PROBE.layout, slow),
                probe_seconds_slow=slow or _empty(m.REQUEST_PROBE.layout, fast),
                share=parts_of.get("share") or _empty(m.REQUEST_SHARE.layout),
                calls=parts_of.get("calls") or _empty(m.REQUEST_CALLS.layout),
                **_segment(segment),
            )
        )

    built_moments = [
        Moments(
            hid,
            endpoint,
            is_slow,
            requests=round(values.get("requests", 0.0)),
            requests_with_probe=round(values.get("requests_with_probe", 0.0)),
            probe_seconds=values.get("probe_seconds", 0.0),
            endpoint_seconds=values.get("endpoint_seconds", 0.0),
            probe_seconds_squared=values.get("probe_seconds_squared", 0.0),
            endpoint_seconds_squared=values.get("endpoint_seconds_squared", 0.0),
            probe_endpoint_seconds_squared=values.get("probe_endpoint_seconds_squared", 0.0),
            **_segment(segment),
        )
        for (hid, endpoint, segment, is_slow), values in moments.items()
    ]

    hypotheses = tuple(_info(hid, rows, expired.get(hid, False)) for hid, rows in info_rows.items())
    return Snapshot(
        created_at=created_at,
        source=source,
        hypotheses=hypotheses,
        endpoints=tuple(endpoints),
        probes=tuple(probes),
        requests=tuple(requests),
        moments=tuple(built_moments),
        exceptions=tuple(ExceptionCount(*k, n) for k, n in exceptions.items()),
        outcomes=tuple(EndpointOutcome(k[0], k[1], k[2], n) for k, n in outcomes.items()),
        unregistered=tuple(sorted(unregistered - set(info_rows))),
        internal_errors=internal_errors,
        series_overflow=overflow,
        self_seconds=self_seconds,
        targets=tuple(
            TargetState(k[0], k[1], k[2], k[3], k[4], processes=n)
            for k, n in sorted(targets.items())
        ),
        customers=tuple(
            CustomerSketch(
                *key,
                requests=round(v.get("requests", 0.0)),
                probe_seconds=v.get("probe_seconds", 0.0),
                probe_value_seconds=v.get("probe_value_seconds", 0.0),
                estimate=(v.get("distinct", 0.0), v.get("value")),
            )
            for key, v in sorted(customers.items())
        ),
    )


def has_data(snap: Snapshot) -> bool:
    """True when anything at all was recorded: a request, a probe call or an exception."""
    return (
        any(e.duration.count for e in snap.endpoints)
        or any(p.duration.count for p in snap.probes)
        or any(mo.requests for mo in snap.moments)
        or any(x.count for x in snap.exceptions)
    )


def window(later: Snapshot, earlier: Snapshot) -> Snapshot:
    """What happened between two scrapes: ``later.minus(earlier)``, every counter included."""
    return later.minus(earlier)
