"""The frozen snapshot model: everything recorded, as plain data. Schema version 1.

Every source hypoprobe reads — this process, a scraped ``/metrics``, a Prometheus server,
snapshot files — produces a :class:`Snapshot`; reports and comparisons read only this.
The JSON form (``Snapshot.to_json`` / ``Snapshot.from_json``) is documented in
``docs/snapshot.md``; its ``schema`` key names the version, and readers reject versions
they do not know.

Histograms keep *per-bucket* counts at inclusive upper bounds (the last bucket is above
the last bound). Merging histograms with different bounds keeps the bounds both have —
cumulative counts at a shared bound are exact — so data from any mix of sources merges
without interpolation.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import pairwise
from typing import Any, TypeVar

from ._core import _buckets
from ._sketch import CustomerSketch, merge_all
from .errors import SnapshotError

__all__ = [
    "SCHEMA",
    "EndpointData",
    "EndpointOutcome",
    "ExceptionCount",
    "Exemplar",
    "Histogram",
    "HypothesisInfo",
    "Moments",
    "ProbeData",
    "RequestData",
    "SlowRequest",
    "Snapshot",
    "TargetState",
]

#: The ``schema`` value of JSON documents this version writes and reads.
SCHEMA = "hypoprobe.snapshot/1"
#: The largest count a document may hold: the recorders' counters are 64-bit.
MAX_COUNT = 2**63 - 1
#: Instants are Unix seconds before the year 10000, the last a date can show.
MAX_INSTANT = 253_402_300_800.0

T = TypeVar("T")
#: A counter's value: an exact count, or seconds.
N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Exemplar:
    """One request that landed in a histogram bucket, with the trace it belongs to.

    ``bucket`` indexes the histogram's counts; ``value`` is in the histogram's unit;
    ``trace_id`` (32 hex digits) and ``span_id`` (16) name the OpenTelemetry span that was
    active; ``timestamp`` is wall time (unix seconds).

    Example::

        ex = Exemplar(bucket=3, value=0.012, trace_id="4bf9" * 8, span_id="00f0" * 4,
                      timestamp=1_700_000_000.0)
    """

    bucket: int
    value: float
    trace_id: str
    span_id: str
    timestamp: float


def _newest(exemplars: Iterable[tuple[int, Exemplar]]) -> tuple[Exemplar, ...]:
    """Keep the newest exemplar per (re-indexed) bucket, in bucket order."""
    best: dict[int, Exemplar] = {}
    for bucket, ex in exemplars:
        kept = best.get(bucket)
        if kept is None or ex.timestamp > kept.timestamp:
            best[bucket] = ex if ex.bucket == bucket else replace(ex, bucket=bucket)
    return tuple(best[b] for b in sorted(best))


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket at inclusive upper ``bounds`` (natural units), plus the exact sum.

    Example::

        h = Histogram(bounds=(0.1, 1.0), counts=(3, 1, 0), sum=0.9)
        assert h.count == 4 and h.cumulative() == [3, 4, 4]
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    #: At most one traced request per bucket (the newest), keyed by bucket index.
    exemplars: tuple[Exemplar, ...] = ()

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            raise SnapshotError(
                f"a histogram with {len(self.bounds)} bounds needs {len(self.bounds) + 1} "
                f"counts, got {len(self.counts)}"
            )
        if self.exemplars and not all(0 <= ex.bucket <= len(self.bounds) for ex in self.exemplars):
            raise SnapshotError(f"an exemplar's bucket is out of range: {self.exemplars}")

    def exemplars_at(self, upper: Sequence[int]) -> dict[int, Exemplar]:
        """The newest exemplar per coarser bucket, the buckets ending at indices ``upper``.

        ``upper`` are increasing bucket indices of this histogram; coarse bucket ``j`` holds
        the buckets ``upper[j-1]+1 .. upper[j]``, and ``len(upper)`` holds the rest (+Inf).

        Example::

            h = Histogram((1.0, 2.0, 3.0), (0, 1, 0, 1), 6.0,
                          (Exemplar(1, 1.5, "ab" * 16, "cd" * 8, 10.0),))
            assert h.exemplars_at([2]) == {0: replace(h.exemplars[0], bucket=0)}
        """
        return {
            ex.bucket: ex
            for ex in _newest((bisect_left(upper, ex.bucket), ex) for ex in self.exemplars)
        }

    @classmethod
    def empty(cls, bounds: Iterable[float]) -> Histogram:
        b = tuple(bounds)
        return cls(b, (0,) * (len(b) + 1), 0.0)

    @classmethod
    def from_cumulative(
        cls, bounds: Iterable[float], cumulative: Iterable[float], total_sum: float
    ) -> Histogram:
        """Build from Prometheus-style cumulative counts (the last one is ``+Inf``)."""
        b = tuple(bounds)
        cum = [round(c) for c in cumulative]
        counts = [cum[0]] + [max(0, cum[i] - cum[i - 1]) for i in range(1, len(cum))]
        return cls(b, tuple(counts), float(total_sum))

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float | None:
        n = self.count
        return self.sum / n if n else None

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out

    def restrict(self, bounds: Iterable[float]) -> Histogram:
        """The same data at a subset of this histogram's bounds (exact)."""
        keep = set(bounds)
        new_bounds, new_counts, pending = [], [], 0
        for b, c in zip(self.bounds, self.counts, strict=False):
            pending += c
            if b in keep:
                new_bounds.append(b)
                new_counts.append(pending)
                pending = 0
        new_counts.append(pending + self.counts[-1])
        exemplars: tuple[Exemplar, ...] = ()
        if self.exemplars:
            upper = [i for i, b in enumerate(self.bounds) if b in keep]
            exemplars = _newest((bisect_left(upper, ex.bucket), ex) for ex in self.exemplars)
        return Histogram(tuple(new_bounds), tuple(new_counts), self.sum, exemplars)

    def _aligned(self, other: Histogram) -> tuple[Histogram, Histogram]:
        if self.bounds == other.bounds:
            return self, other
        common = sorted(set(self.bounds) & set(other.bounds))
        return self.restrict(common), other.restrict(common)

    def merge(self, other: Histogram) -> Histogram:
        """Sum of two histograms, at the bounds both have."""
        a, b = self._aligned(other)
        counts = tuple(x + y for x, y in zip(a.counts, b.counts, strict=True))
        exemplars = a.exemplars
        if b.exemplars:
            exemplars = _newest((ex.bucket, ex) for ex in (*a.exemplars, *b.exemplars))
        return Histogram(a.bounds, counts, a.sum + b.sum, exemplars)

    def minus(self, earlier: Histogram) -> Histogram:
        """What was added since ``earlier``; if a counter went down (restart), all of self."""
        a, b = self._aligned(earlier)
        counts = tuple(x - y for x, y in zip(a.counts, b.counts, strict=True))
        if any(c < 0 for c in counts) or a.sum < b.sum - 1e-9 * max(1.0, abs(b.sum)):
            return a
        # An exemplar ``earlier`` already had is from before the window.
        seen = {(ex.trace_id, ex.span_id, ex.timestamp) for ex in b.exemplars}
        exemplars = tuple(
            ex for ex in a.exemplars if (ex.trace_id, ex.span_id, ex.timestamp) not in seen
        )
        return Histogram(a.bounds, counts, max(0.0, a.sum - b.sum), exemplars)

    def quantile(self, q: float) -> float | None:
        """Estimate the q-quantile (0..1), interpolating linearly inside the bucket.

        Returns None for an empty histogram; values in the last, unbounded bucket are
        reported as the last bound (a lower bound of the truth).
        """
        n = self.count
        if n == 0:
            return None
        rank = q * n
        running = 0
        for i, c in enumerate(self.counts):
            if c and running + c >= rank:
                if i >= len(self.bounds):
                    return self.bounds[-1] if self.bounds else None
                lower = self.bounds[i - 1] if i > 0 else min(0.0, self.bounds[0])
                upper = self.bounds[i]
                return lower + (upper - lower) * max(0.0, rank - running) / c
            running += c
        return self.bounds[-1] if self.bounds else None

    def count_at_least(self, value: float) -> float:
        """Estimate how many recorded values are >= ``value`` (interpolated in its bucket)."""
        i = bisect_left(self.bounds, value)
        above = sum(self.counts[i + 1 :])
        if i >= len(self.bounds):
            return float(self.counts[-1])
        upper = self.bounds[i]
        lower = self.bounds[i - 1] if i > 0 else min(0.0, upper)
        c = self.counts[i]
        if upper <= lower:
            return float(above + c)
        fraction = (upper - value) / (upper - lower)
        return above + c * min(1.0, max(0.0, fraction))

    def to_dict(self) -> dict[str, Any]:
        layout = _layout_of(self.bounds)
        out: dict[str, Any] = {"layout": layout} if layout else {"bounds": list(self.bounds)}
        out["counts"] = [[i, c] for i, c in enumerate(self.counts) if c]
        out["sum"] = self.sum
        if self.exemplars:  # absent when empty: documents without traces stay as they were
            out["exemplars"] = [
                [ex.bucket, ex.value, ex.trace_id, ex.span_id, ex.timestamp]
                for ex in self.exemplars
            ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        if "layout" in data:
            layout = _buckets.LAYOUTS.get(data["layout"])
            if layout is None:
                raise SnapshotError(f"unknown histogram layout {data['layout']!r}")
            bounds: tuple[float, ...] = layout.natural_bounds
        else:
            bounds = tuple(_finite(b, "a histogram bound") for b in _items(data["bounds"]))
            if bounds and bounds[0] < 0:
                raise SnapshotError(f"histogram bounds must not be negative: {bounds[0]!r}")
            if any(lo >= hi for lo, hi in pairwise(bounds)):
                raise SnapshotError(f"histogram bounds are not increasing: {list(bounds)}")
        counts = [0] * (len(bounds) + 1)
        for i, c in _items(data["counts"]):
            # A negative index or count would silently land somewhere plausible: reject it.
            index, count = _count(i, "a bucket index"), _count(c, "a bucket count")
            if not index < len(counts):
                raise SnapshotError(f"histogram count [{i}, {c}] is out of range")
            counts[index] = count
        if sum(counts) > MAX_COUNT:
            raise SnapshotError(f"a histogram counts more than {MAX_COUNT} values")
        exemplars = tuple(
            Exemplar(
                _count(b, "an exemplar's bucket"),
                _finite(v, "an exemplar's value"),
                _str(t, "a trace id"),
                _str(sp, "a span id"),
                _instant(ts, "an exemplar's timestamp"),
            )
            for b, v, t, sp, ts in _items(data.get("exemplars", ()))
        )
        return cls(bounds, tuple(counts), _finite(data["sum"], "a histogram sum"), exemplars)


def _layout_of(bounds: tuple[float, ...]) -> str | None:
    for layout in _buckets.LAYOUTS.values():
        if layout.natural_bounds == bounds:
            return layout.name
    return None


@dataclass(frozen=True)
class HypothesisInfo:
    """A hypothesis as the snapshot's readers see it (plain data, no behaviour).

    Example::

        info = snapshot.hypothesis("PERF-123")
        print(info.claim, info.min_share, info.observed_share)
    """

    id: str
    claim: str
    endpoints: tuple[str, ...]
    min_share: float
    observed_probe_seconds: float | None = None
    observed_endpoint_seconds: float | None = None
    slow_threshold: float | None = None
    owner: str | None = None
    ticket: str | None = None
    expires: str | None = None
    expired: bool = False
    segments: tuple[str, ...] | None = None
    segment: str | None = None

    @property
    def observed_share(self) -> float | None:
        if self.observed_probe_seconds is None or not self.observed_endpoint_seconds:
            return None
        return self.observed_probe_seconds / self.observed_endpoint_seconds


@dataclass(frozen=True)
class EndpointData:
    """Latency of every (outermost) scope of one endpoint."""

    endpoint: str
    duration: Histogram


@dataclass(frozen=True)
class ProbeData:
    """Duration of every call of one probe, inside one endpoint (or ``<none>``)."""

    hypothesis: str
    probe: str
    endpoint: str
    duration: Histogram


@dataclass(frozen=True)
class RequestData:
    """Per-request view of one probe in one endpoint: one observation per request."""

    hypothesis: str
    probe: str
    endpoint: str
    probe_seconds_fast: Histogram
    probe_seconds_slow: Histogram
    share: Histogram
    calls: Histogram
    #: The segment label ("" when the hypothesis does not keep segments apart).
    segment: str = ""

    @property
    def probe_seconds(self) -> Histogram:
        """Probe time per request, slow and not-slow requests together."""
        return self.probe_seconds_fast.merge(self.probe_seconds_slow)


@dataclass(frozen=True)
class Moments:
    """Sums over requests for one hypothesis and endpoint: the ratio estimator's input.

    ``p`` is the request's time in the hypothesis' probes, ``e`` the request's endpoint
    time; ``requests`` is n. The aggregate share is ``probe_seconds / endpoint_seconds``.
    """

    hypothesis: str
    endpoint: str
    slow: bool
    requests: int = 0
    requests_with_probe: int = 0
    probe_seconds: float = 0.0
    endpoint_seconds: float = 0.0
    probe_seconds_squared: float = 0.0
    endpoint_seconds_squared: float = 0.0
    probe_endpoint_seconds_squared: float = 0.0
    #: The segment label ("" when the hypothesis does not keep segments apart).
    segment: str = ""

    def plus(self, other: Moments, sign: int = 1) -> Moments:
        return replace(
            self,
            **{
                f.name: getattr(self, f.name) + sign * getattr(other, f.name)
                for f in fields(self)
                if f.name not in ("hypothesis", "endpoint", "slow", "segment")
            },
        )


@dataclass(frozen=True)
class EndpointOutcome:
    """Requests of one endpoint that ended with one status class and exception class.

    ``status`` is ``"2xx"``..``"5xx"`` for web responses ("" for jobs and plain scopes);
    ``exception`` is the class of the exception that ended the request ("" for none).
    """

    endpoint: str
    status: str
    exception: str
    count: int


@dataclass(frozen=True)
class ExceptionCount:
    """Exceptions of one class that passed through one probe."""

    hypothesis: str
    probe: str
    exception: str
    count: int


@dataclass(frozen=True)
class SlowRequest:
    """One of the requests with the highest probe share (``kind="share"``) or the slowest
    (``kind="latency"``) for a hypothesis and endpoint, kept over a rolling window.

    ``share`` is ``probe_seconds / endpoint_seconds`` over all of the hypothesis' probes;
    ``at`` is wall time (unix seconds) at the request's end; ``trace_id`` (32 hex digits)
    names the OpenTelemetry trace that was active, if any.

    Example::

        for r in snap.slowest:
            if r.kind == "share":
                print(r.hypothesis, f"{r.share:.0%}", r.endpoint_seconds, r.trace_id)
    """

    hypothesis: str
    endpoint: str
    kind: str  # "share" or "latency"
    endpoint_seconds: float
    probe_seconds: float
    calls: int
    share: float
    at: float
    trace_id: str | None = None

    @property
    def rank_value(self) -> float:
        """What the list is ranked by: the share, or the endpoint time."""
        return self.share if self.kind == "share" else self.endpoint_seconds


@dataclass(frozen=True)
class TargetState:
    """Where one probe is attached, and whether it is: ``processes`` in ``state``.

    ``kind`` is ``config`` (an import path in a TOML file) or ``code`` (a decorator, a
    ``with probe(...)`` block or a DB matcher: the probe itself); ``state`` is ``pending``,
    ``attached``, ``failed`` or ``detached``; ``reason`` says why a target failed, or that
    it was attached late (``late: ...``).

    Example::

        for t in snap.targets:
            if t.state == "failed":
                print(t.hypothesis, t.target, t.reason)
    """

    hypothesis: str
    target: str
    kind: str
    state: str
    reason: str = ""
    processes: int = 1


def _top_slowest(items: Iterable[SlowRequest], keep: Mapping[Any, int]) -> tuple[SlowRequest, ...]:
    """Per (hypothesis, endpoint, kind): the ``keep[key]`` highest-ranked, highest first."""
    by_key: dict[tuple[str, str, str], list[SlowRequest]] = {}
    for r in items:
        by_key.setdefault((r.hypothesis, r.endpoint, r.kind), []).append(r)
    out: list[SlowRequest] = []
    for key in sorted(by_key):
        ranked = sorted(set(by_key[key]), key=lambda r: (-r.rank_value, -r.at))
        out.extend(ranked[: keep.get(key, len(ranked))])
    return tuple(out)


@dataclass(frozen=True)
class Snapshot:
    """Everything recorded, frozen: the input of reports, comparisons and exporters.

    Example::

        snap = hypoprobe.snapshot()
        with open("before.json", "w") as f:
            f.write(snap.to_json())
        same = hypoprobe.Snapshot.from_json(open("before.json").read())
        assert same == snap
    """

    created_at: float
    source: str
    hypotheses: tuple[HypothesisInfo, ...] = ()
    endpoints: tuple[EndpointData, ...] = ()
    probes: tuple[ProbeData, ...] = ()
    requests: tuple[RequestData, ...] = ()
    moments: tuple[Moments, ...] = ()
    exceptions: tuple[ExceptionCount, ...] = ()
    #: Requests per endpoint by status class and exception class.
    outcomes: tuple[EndpointOutcome, ...] = ()
    unregistered: tuple[str, ...] = ()
    internal_errors: Mapping[str, int] = field(default_factory=dict)
    series_overflow: Mapping[str, int] = field(default_factory=dict)
    #: The requests with the highest share and the slowest, per hypothesis and endpoint.
    slowest: tuple[SlowRequest, ...] = ()
    #: Distinct customers (keyed hashes) per hypothesis, endpoint and segment (_sketch).
    customers: tuple[CustomerSketch, ...] = ()
    #: hypoprobe's own estimated time per endpoint, in seconds (calibrated costs x counts;
    #: ``<none>``: probe calls outside any scope). Empty when not estimated.
    self_seconds: Mapping[str, float] = field(default_factory=dict)
    #: Every probe target's state, summed over the processes that reported it.
    targets: tuple[TargetState, ...] = ()
    #: Identities (``host:pid:start``, or ``host:multiproc:dir``) of the processes whose
    #: counters this snapshot holds: two snapshots sharing one overlap and must not be summed.
    origins: tuple[str, ...] = ()
    #: Start of the window (unix seconds) for a ``later.minus(earlier)`` snapshot; None
    #: when the counters run from each process' start.
    since: float | None = None

    # -- lookups -------------------------------------------------------------------------

    def hypothesis(self, hypothesis_id: str) -> HypothesisInfo | None:
        return next((h for h in self.hypotheses if h.id == hypothesis_id), None)

    def endpoint(self, name: str) -> EndpointData | None:
        return next((e for e in self.endpoints if e.endpoint == name), None)

    def moments_for(
        self,
        hypothesis_id: str,
        endpoint: str,
        slow: bool | None = None,
        segment: str | None = None,
    ) -> Moments:
        """Moments summed over slow and non-slow requests and every segment, or for one."""
        total = Moments(hypothesis_id, endpoint, bool(slow), segment=segment or "")
        for mo in self.moments:
            same = mo.hypothesis == hypothesis_id and mo.endpoint == endpoint
            if (
                same
                and (slow is None or mo.slow == slow)
                and (segment is None or mo.segment == segment)
            ):
                total = total.plus(mo)
        return total

    @property
    def is_empty(self) -> bool:
        return not (self.endpoints or self.probes or self.moments)

    # -- combining -----------------------------------------------------------------------

    @classmethod
    def merge(cls, snapshots: Iterable[Snapshot], source: str | None = None) -> Snapshot:
        """Sum several snapshots (processes, hosts) into one."""
        snaps = list(snapshots)
        if not snaps:
            raise SnapshotError("nothing to merge: no snapshots given")
        hyps: dict[str, HypothesisInfo] = {}
        for s in snaps:
            for h in s.hypotheses:
                hyps.setdefault(h.id, h)
        return cls(
            created_at=max(s.created_at for s in snaps),
            source=source or " + ".join(s.source for s in snaps),
            hypotheses=tuple(hyps.values()),
            endpoints=_merge_keyed(
                (e for s in snaps for e in s.endpoints),
                lambda e: e.endpoint,
                lambda a, b: replace(a, duration=a.duration.merge(b.duration)),
            ),
            probes=_merge_keyed(
                (p for s in snaps for p in s.probes),
                lambda p: (p.hypothesis, p.probe, p.endpoint),
                lambda a, b: replace(a, duration=a.duration.merge(b.duration)),
            ),
            requests=_merge_keyed(
                (r for s in snaps for r in s.requests),
                lambda r: (r.hypothesis, r.probe, r.endpoint, r.segment),
                _merge_requests,
            ),
            moments=_merge_keyed(
                (mo for s in snaps for mo in s.moments),
                lambda mo: (mo.hypothesis, mo.endpoint, mo.segment, mo.slow),
                lambda a, b: a.plus(b),
            ),
            exceptions=_merge_keyed(
                (x for s in snaps for x in s.exceptions),
                lambda x: (x.hypothesis, x.probe, x.exception),
                lambda a, b: replace(a, count=a.count + b.count),
            ),
            outcomes=_merge_keyed(
                (o for s in snaps for o in s.outcomes),
                lambda o: (o.endpoint, o.status, o.exception),
                lambda a, b: replace(a, count=a.count + b.count),
            ),
            unregistered=tuple(sorted({u for s in snaps for u in s.unregistered} - set(hyps))),
            internal_errors=_sum_maps(s.internal_errors for s in snaps),
            series_overflow=_sum_maps(s.series_overflow for s in snaps),
            slowest=_top_slowest((r for s in snaps for r in s.slowest), _slowest_keep(snaps)),
            customers=merge_all(c for s in snaps for c in s.customers),
            self_seconds=_sum_maps(s.self_seconds for s in snaps),
            targets=_merge_keyed(
                (t for s in snaps for t in s.targets),
                lambda t: (t.hypothesis, t.target, t.kind, t.state, t.reason),
                lambda a, b: replace(a, processes=a.processes + b.processes),
            ),
            origins=tuple(dict.fromkeys(o for s in snaps for o in s.origins)),
            since=None
            if any(s.since is None for s in snaps)
            else min(s.since for s in snaps if s.since is not None),
        )

    def minus(self, earlier: Snapshot) -> Snapshot:
        """What happened between ``earlier`` and this snapshot (a window).

        Customer sketches cannot be subtracted: the window keeps the later snapshot's
        customers (distinct since its processes started), with its request and probe-time
        sums taken over the window.
        """
        before_c = {c.key: c for c in earlier.customers}
        before_e = {e.endpoint: e for e in earlier.endpoints}
        before_p = {(p.hypothesis, p.probe, p.endpoint): p for p in earlier.probes}
        before_r = {(r.hypothesis, r.probe, r.endpoint, r.segment): r for r in earlier.requests}
        before_x = {(x.hypothesis, x.probe, x.exception): x.count for x in earlier.exceptions}
        before_o = {(o.endpoint, o.status, o.exception): o.count for o in earlier.outcomes}
        before_m = {(mo.hypothesis, mo.endpoint, mo.segment, mo.slow): mo for mo in earlier.moments}

        def moments_minus(mo: Moments) -> Moments:
            prior = before_m.get((mo.hypothesis, mo.endpoint, mo.segment, mo.slow))
            if prior is None or prior.requests > mo.requests:
                return mo
            return mo.plus(prior, sign=-1)

        def request_minus(r: RequestData) -> RequestData:
            prior = before_r.get((r.hypothesis, r.probe, r.endpoint, r.segment))
            if prior is None:
                return r
            return replace(
                r,
                probe_seconds_fast=r.probe_seconds_fast.minus(prior.probe_seconds_fast),
                probe_seconds_slow=r.probe_seconds_slow.minus(prior.probe_seconds_slow),
                share=r.share.minus(prior.share),
                calls=r.calls.minus(prior.calls),
            )

        return replace(
            self,
            source=f"{self.source} (window since {_utc(earlier.created_at)})",
            endpoints=tuple(
                replace(e, duration=e.duration.minus(before_e[e.endpoint].duration))
                if e.endpoint in before_e
                else e
                for e in self.endpoints
            ),
            probes=tuple(
                replace(p, duration=p.duration.minus(before_p[k].duration))
                if (k := (p.hypothesis, p.probe, p.endpoint)) in before_p
                else p
                for p in self.probes
            ),
            requests=tuple(request_minus(r) for r in self.requests),
            moments=tuple(moments_minus(mo) for mo in self.moments),
            exceptions=tuple(
                replace(x, count=x.count - before_x[k])
                if (k := (x.hypothesis, x.probe, x.exception)) in before_x
                and before_x[k] <= x.count
                else x
                for x in self.exceptions
            ),
            outcomes=tuple(
                replace(o, count=o.count - before_o[k])
                if (k := (o.endpoint, o.status, o.exception)) in before_o and before_o[k] <= o.count
                else o
                for o in self.outcomes
            ),
            internal_errors=_minus_map(self.internal_errors, earlier.internal_errors),
            series_overflow=_minus_map(self.series_overflow, earlier.series_overflow),
            slowest=tuple(r for r in self.slowest if r.at > earlier.created_at),
            customers=tuple(
                c.since(before_c[c.key], earlier.created_at) if c.key in before_c else c
                for c in self.customers
            ),
            self_seconds=_minus_map(self.self_seconds, earlier.self_seconds),
            since=earlier.created_at,
        )

    # -- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "created_at": self.created_at,
            "source": self.source,
            "hypotheses": [_plain(h) for h in self.hypotheses],
            "endpoints": [
                {"endpoint": e.endpoint, "duration": e.duration.to_dict()} for e in self.endpoints
            ],
            "probes": [
                {
                    "hypothesis": p.hypothesis,
                    "probe": p.probe,
                    "endpoint": p.endpoint,
                    "duration": p.duration.to_dict(),
                }
                for p in self.probes
            ],
            "requests": [
                {
                    "hypothesis": r.hypothesis,
                    "probe": r.probe,
                    "endpoint": r.endpoint,
                    "segment": r.segment,
                    "probe_seconds_fast": r.probe_seconds_fast.to_dict(),
                    "probe_seconds_slow": r.probe_seconds_slow.to_dict(),
                    "share": r.share.to_dict(),
                    "calls": r.calls.to_dict(),
                }
                for r in self.requests
            ],
            "moments": [_plain(mo) for mo in self.moments],
            "exceptions": [_plain(x) for x in self.exceptions],
            "outcomes": [_plain(o) for o in self.outcomes],
            "unregistered": list(self.unregistered),
            "internal_errors": dict(self.internal_errors),
            "series_overflow": dict(self.series_overflow),
            "slowest": [_plain(r) for r in self.slowest],
            "customers": [c.to_dict() for c in self.customers],
            "self_seconds": dict(self.self_seconds),
            "targets": [_plain(t) for t in self.targets],
            "origins": list(self.origins),
            "since": self.since,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        if not isinstance(data, Mapping):
            raise SnapshotError("a snapshot must be a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise SnapshotError(
                f"unsupported snapshot schema {schema!r}; this hypoprobe reads {SCHEMA!r}"
            )
        try:
            return cls(
                created_at=_instant(data["created_at"], "created_at"),
                source=_str(data.get("source", ""), "source"),
                hypotheses=tuple(_hypothesis_info(h) for h in _items(data.get("hypotheses", ()))),
                endpoints=tuple(
                    EndpointData(_str(e["endpoint"], "an endpoint"), _durations(e["duration"]))
                    for e in _items(data.get("endpoints", ()))
                ),
                probes=tuple(
                    ProbeData(
                        _str(p["hypothesis"], "a hypothesis id"),
                        _str(p["probe"], "a probe"),
                        _str(p["endpoint"], "an endpoint"),
                        _durations(p["duration"]),
                    )
                    for p in _items(data.get("probes", ()))
                ),
                requests=tuple(
                    RequestData(
                        _str(r["hypothesis"], "a hypothesis id"),
                        _str(r["probe"], "a probe"),
                        _str(r["endpoint"], "an endpoint"),
                        Histogram.from_dict(r["probe_seconds_fast"]),
                        Histogram.from_dict(r["probe_seconds_slow"]),
                        Histogram.from_dict(r["share"]),
                        Histogram.from_dict(r["calls"]),
                        segment=_str(r.get("segment", ""), "a segment"),
                    )
                    for r in _items(data.get("requests", ()))
                ),
                moments=tuple(_moments(mo) for mo in _items(data.get("moments", ()))),
                exceptions=tuple(
                    ExceptionCount(
                        _str(x["hypothesis"], "a hypothesis id"),
                        _str(x["probe"], "a probe"),
                        _str(x["exception"], "an exception"),
                        _count(x["count"], "an exception count"),
                    )
                    for x in _items(data.get("exceptions", ()))
                ),
                outcomes=tuple(
                    EndpointOutcome(
                        _str(o["endpoint"], "an endpoint"),
                        _str(o["status"], "a status"),
                        _str(o["exception"], "an exception"),
                        _count(o["count"], "an outcome count"),
                    )
                    for o in _items(data.get("outcomes", ()))
                ),
                unregistered=tuple(
                    _str(u, "a hypothesis id") for u in _items(data.get("unregistered", ()))
                ),
                internal_errors=_counters(data.get("internal_errors", {}), "internal_errors"),
                series_overflow=_counters(data.get("series_overflow", {}), "series_overflow"),
                slowest=tuple(_slow_request(r) for r in _items(data.get("slowest", ()))),
                customers=tuple(
                    CustomerSketch.from_dict(_object(c, "a customer sketch"))
                    for c in _items(data.get("customers", ()))
                ),
                self_seconds=_seconds_by_name(data.get("self_seconds", {}), "self_seconds"),
                targets=tuple(_target_state(t) for t in _items(data.get("targets", ()))),
                origins=tuple(_str(o, "an origin") for o in _items(data.get("origins", ()))),
                since=_optional(_since, data.get("since")),
            )
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise SnapshotError(
                f"corrupt snapshot: {type(exc).__name__}: {_printable(str(exc))}"
            ) from None
        except RecursionError:
            raise SnapshotError("corrupt snapshot: a value is nested too deeply") from None

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Parse a snapshot document; raises :class:`SnapshotError` if empty or corrupt."""
        if not text.strip():
            raise SnapshotError("the snapshot document is empty")
        try:
            data = json.loads(text)
        except RecursionError:
            raise SnapshotError("the snapshot is nested too deeply to be one") from None
        except ValueError as exc:  # JSONDecodeError, and integers of more than 4,300 digits
            raise SnapshotError(f"the snapshot is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _optional(convert: Any, value: Any) -> Any:
    return None if value is None else convert(value)


def _durations(data: Any) -> Histogram:
    """A latency histogram: its bounds are durations, so above zero (plots use their log)."""
    h = Histogram.from_dict(data)
    if h.bounds and h.bounds[0] <= 0:
        raise SnapshotError(f"a duration histogram's bounds must be above zero: {h.bounds[0]!r}")
    return h


def _items(value: Any) -> list[Any]:
    """A JSON array (a string or an object where a list belongs is corrupt, not iterable)."""
    if not isinstance(value, list | tuple):
        raise SnapshotError(f"corrupt snapshot: expected a list, got {type(value).__name__}")
    return list(value)


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SnapshotError(
            f"corrupt snapshot: {what} must be an object, got {type(value).__name__}"
        )
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SnapshotError(f"corrupt snapshot: {what} must be text, got {type(value).__name__}")
    return value


def _finite(value: Any, what: str) -> float:
    """A finite number; infinities and NaN would make every sum and ratio built on it NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SnapshotError(f"corrupt snapshot: {what} must be a number, got {value!r:.40}")
    number = float(value)  # OverflowError for an integer beyond any float: caught as corrupt
    if not math.isfinite(number):
        raise SnapshotError(f"corrupt snapshot: {what} must be finite, got {value!r}")
    return number


def _count(value: Any, what: str) -> int:
    """A count: a whole number from 0 to MAX_COUNT (a float such as 3.0 is accepted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value  # exact: 2**63 - 1 as a float would round above the limit
    else:
        number = _finite(value, what)
        count = int(number) if number.is_integer() else -1
    if not 0 <= count <= MAX_COUNT:
        raise SnapshotError(
            f"corrupt snapshot: {what} must be a whole number from 0 to {MAX_COUNT}, "
            f"got {value!r:.40}"
        )
    return count


def _instant(value: Any, what: str) -> float:
    """Unix seconds a date can show: from 1970 up to the year 9999."""
    stamp = _finite(value, what)
    if not 0 <= stamp < MAX_INSTANT:
        raise SnapshotError(
            f"corrupt snapshot: {what} must be Unix seconds between 1970 and 9999, got {value!r}"
        )
    return stamp


def _seconds_by_name(value: Any, what: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise SnapshotError(f"corrupt snapshot: {what} must be an object")
    return {_str(k, f"a key of {what}"): _finite(v, f"a value in {what}") for k, v in value.items()}


def _counters(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise SnapshotError(f"corrupt snapshot: {what} must be an object")
    return {_str(k, f"a key of {what}"): _count(v, f"a count in {what}") for k, v in value.items()}


def _hypothesis_info(data: Mapping[str, Any]) -> HypothesisInfo:
    """A hypothesis from a document, every field converted (a bad type fails here)."""
    h = HypothesisInfo(
        **{
            **data,
            "endpoints": tuple(_items(data["endpoints"])),
            "segments": tuple(_items(data["segments"])) if data.get("segments") else None,
        }
    )
    if not all(isinstance(x, str) for x in (h.id, h.claim, *h.endpoints, *(h.segments or ()))):
        raise ValueError(f"hypothesis {h.id!r}: id, claim, endpoints and segments must be text")
    min_share = _finite(h.min_share, "min_share")
    if not 0 <= min_share <= 1:
        raise SnapshotError(f"corrupt snapshot: min_share must be from 0 to 1, got {min_share!r}")
    return replace(
        h,
        min_share=min_share,
        observed_probe_seconds=_optional(_seconds, h.observed_probe_seconds),
        observed_endpoint_seconds=_optional(_seconds, h.observed_endpoint_seconds),
        slow_threshold=_optional(_seconds, h.slow_threshold),
        owner=_optional(_text_field, h.owner),
        ticket=_optional(_text_field, h.ticket),
        expires=_optional(_text_field, h.expires),
        expired=bool(h.expired),
    )


def _seconds(value: Any) -> float:
    return _finite(value, "a duration")


def _text_field(value: Any) -> str:
    return _str(value, "owner, ticket and expires")


def _printable(text: str, limit: int = 300) -> str:
    """``text`` on one line: control characters escaped (a document's keys reach messages)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])


def _record(cls: type[T], data: Any, what: str) -> T:
    """``cls(**data)``, refusing what is not an object or has a field ``cls`` does not know."""
    if not isinstance(data, Mapping):
        raise SnapshotError(f"{what} must be an object, not {type(data).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise SnapshotError(f"{what} has an unknown field {str(key)[:80]!r}")
    return cls(**data)


def _moments(data: Mapping[str, Any]) -> Moments:
    """Moments from a document, with every sum converted (so a string fails here, not later)."""
    mo = _record(Moments, data, "a moments entry")
    return Moments(
        _str(mo.hypothesis, "a hypothesis id"),
        _str(mo.endpoint, "an endpoint"),
        bool(mo.slow),
        requests=_count(mo.requests, "requests"),
        requests_with_probe=_count(mo.requests_with_probe, "requests_with_probe"),
        probe_seconds=_finite(mo.probe_seconds, "probe_seconds"),
        endpoint_seconds=_finite(mo.endpoint_seconds, "endpoint_seconds"),
        probe_seconds_squared=_finite(mo.probe_seconds_squared, "probe_seconds_squared"),
        endpoint_seconds_squared=_finite(mo.endpoint_seconds_squared, "endpoint_seconds_squared"),
        probe_endpoint_seconds_squared=_finite(
            mo.probe_endpoint_seconds_squared, "probe_endpoint_seconds_squared"
        ),
        segment=_str(mo.segment, "a segment"),
    )


def _slow_request(data: Mapping[str, Any]) -> SlowRequest:
    r = _record(SlowRequest, data, "a slow request")
    if r.kind not in ("share", "latency"):
        raise SnapshotError(f"a slow request's kind must be 'share' or 'latency', not {r.kind!r}")
    return SlowRequest(
        _str(r.hypothesis, "a hypothesis id"),
        _str(r.endpoint, "an endpoint"),
        r.kind,
        endpoint_seconds=_finite(r.endpoint_seconds, "a slow request's endpoint_seconds"),
        probe_seconds=_finite(r.probe_seconds, "a slow request's probe_seconds"),
        calls=_count(r.calls, "a slow request's calls"),
        share=_finite(r.share, "a slow request's share"),
        at=_instant(r.at, "a slow request's time"),
        trace_id=None if r.trace_id is None else _str(r.trace_id, "a trace id"),
    )


def _target_state(data: Mapping[str, Any]) -> TargetState:
    t = _record(TargetState, data, "a target")
    return TargetState(
        _str(t.hypothesis, "a target's hypothesis"),
        _str(t.target, "a target"),
        _str(t.kind, "a target's kind"),
        _str(t.state, "a target's state"),
        _str(t.reason, "a target's reason"),
        _count(t.processes, "a target's processes"),
    )


def _since(value: Any) -> float:
    return _instant(value, "since")


def _slowest_keep(snaps: Iterable[Snapshot]) -> dict[tuple[str, str, str], int]:
    """Per key, the longest list any one snapshot kept: the K its process was configured with."""
    keep: dict[tuple[str, str, str], int] = {}
    for s in snaps:
        counts: dict[tuple[str, str, str], int] = {}
        for r in s.slowest:
            k = (r.hypothesis, r.endpoint, r.kind)
            counts[k] = counts.get(k, 0) + 1
        for k, n in counts.items():
            keep[k] = max(keep.get(k, 0), n)
    return keep


def _plain(obj: Any) -> dict[str, Any]:
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _merge_keyed(items: Iterable[T], key: Any, combine: Any) -> tuple[T, ...]:
    merged: dict[Any, T] = {}
    for item in items:
        k = key(item)
        merged[k] = combine(merged[k], item) if k in merged else item
    return tuple(merged.values())


def _merge_requests(a: RequestData, b: RequestData) -> RequestData:
    return replace(
        a,
        probe_seconds_fast=a.probe_seconds_fast.merge(b.probe_seconds_fast),
        probe_seconds_slow=a.probe_seconds_slow.merge(b.probe_seconds_slow),
        share=a.share.merge(b.share),
        calls=a.calls.merge(b.calls),
    )


def _utc(t: float) -> str:
    """A time as people read it in a source's name: ``2026-12-01 22:43:02 UTC``."""
    try:
        return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a time no date can show: the number
        return f"{t!r} (Unix seconds)"


def _minus_map(later: Mapping[str, N], earlier: Mapping[str, N]) -> dict[str, N]:
    """Counter differences; a counter that went down (a restart) counts from zero."""
    return {k: v - earlier[k] if k in earlier and earlier[k] <= v else v for k, v in later.items()}


def _sum_maps(maps: Iterable[Mapping[str, N]]) -> dict[str, N]:
    out: dict[str, N] = {}
    for mp in maps:
        for k, v in mp.items():
            out[k] = out.get(k, 0) + v
    return out


# This module was hypoprobe.snapshot, a name it shared with the function
# hypoprobe.snapshot(): ``from hypoprobe.snapshot import Histogram`` keeps working.
sys.modules.setdefault(__name__.rpartition(".")[0] + ".snapshot", sys.modules[__name__])
