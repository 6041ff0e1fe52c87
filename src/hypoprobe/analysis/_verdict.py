"""One verdict per (hypothesis, endpoint): the numbers that settle a hypothesis."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import NoDataError
from ..model import (
    Histogram,
    HypothesisInfo,
    ProbeData,
    RequestData,
    SlowRequest,
    Snapshot,
    TargetState,
)
from . import _ratio
from ._fields import json_fields
from ._impact import CustomerImpact, customer_impact
from ._meaning import meaning
from ._selfshare import self_figures
from ._timeline import SharePoint

__all__ = [
    "CONFIRMED",
    "DISPROVED",
    "INCONCLUSIVE",
    "NoDataError",
    "Report",
    "SegmentShare",
    "UNMEASURED",
    "Verdict",
    "report",
]

CONFIRMED = "CONFIRMED"
DISPROVED = "DISPROVED"
INCONCLUSIVE = "INCONCLUSIVE"
#: The probes never ran in the window, or one of the hypothesis' targets failed: no share
#: to judge, whatever the numbers say. ``Verdict.reason`` says why.
UNMEASURED = "UNMEASURED"

#: Where the early-binding cases and what to name instead are explained.
EARLY_BINDING_DOCS = "docs/integrations.md#early-binding"
#: A bucket whose upper bound is more than this factor above its lower bound is "wide":
#: a quantile inside it is shown as the bucket's bounds (classic /metrics buckets).
WIDE_FACTOR = 1.1


#: The keys of one of a verdict's slowest requests in its JSON form.
_SLOW_KEYS = ("kind", "endpoint_seconds", "probe_seconds", "calls", "share", "at", "trace_id")


@dataclass(frozen=True)
class SegmentShare:
    """The aggregate share within one segment of requests (``hypothesis(segments=[...])``)."""

    segment: str
    requests: int
    aggregate_share: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Verdict:
    """The verdict on one hypothesis for one endpoint; ``to_dict()`` is the stable JSON form.

    Example::

        for v in hypoprobe.analysis.report(hypoprobe.snapshot()).verdicts:
            print(v.verdict, v.meaning)
    """

    hypothesis: str
    endpoint: str
    claim: str
    requests: int
    requests_with_probe: int
    aggregate_share: float | None
    ci_low: float | None
    ci_high: float | None
    min_share: float
    verdict: str
    requests_needed: int | None
    anecdote_share: float | None
    anecdote_percentile: float | None
    slow_share: float | None
    slow_requests: int | None
    endpoint_p50: float | None
    endpoint_p95: float | None
    endpoint_p99: float | None
    probe_p95: float | None
    calls_per_request_mean: float | None
    calls_per_request_p95: float | None
    saving_seconds_per_request: float | None
    saving_share: float | None
    meaning: str
    probes: tuple[str, ...] = ()
    slow_threshold: float | None = None
    anecdote_probe_seconds: float | None = None
    anecdote_endpoint_seconds: float | None = None
    endpoint_mean: float | None = None
    ticket: str | None = None
    owner: str | None = None
    expired: bool = False
    #: The one segment the hypothesis is restricted to (``hypothesis(segment=...)``).
    segment: str | None = None
    #: The share per segment, when the hypothesis keeps segments apart.
    segments: tuple[SegmentShare, ...] = ()
    #: The single requests behind the aggregate: the highest shares and the slowest
    #: (``kind`` "share" / "latency"), highest first, with their trace ids.
    slowest_requests: tuple[SlowRequest, ...] = ()
    #: Customers seen and affected, and their value (None: no request named a customer).
    customers: CustomerImpact | None = None
    #: hypoprobe's own estimated time in the endpoint (seconds, all requests) and its share
    #: of the endpoint's time; None without an estimate (docs/guarding-overhead.md).
    self_seconds: float | None = None
    self_share: float | None = None
    #: Why the verdict is UNMEASURED (None otherwise).
    reason: str | None = None
    #: One line per probe or target that measured nothing while the others did.
    warnings: tuple[str, ...] = ()
    #: Quantiles that fell in a wide bucket (classic /metrics buckets): field name ->
    #: (lower, upper) bounds of that bucket, between which the true value lies.
    quantile_buckets: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # Distributions for plots; not part of the JSON contract.
    share_histogram: Histogram | None = field(default=None, repr=False, compare=False)
    endpoint_histogram: Histogram | None = field(default=None, repr=False, compare=False)
    calls_histogram: Histogram | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return json_fields(self, _json_value)


def _json_value(name: str, value: Any) -> Any:
    """A :class:`Verdict` field as JSON: the nested results as dicts too."""
    if name == "segments":
        return [seg.to_dict() for seg in value]
    if name == "customers":
        return None if value is None else value.to_dict()
    if name == "slowest_requests":
        return [{k: getattr(r, k) for k in _SLOW_KEYS} for r in value]
    if name == "quantile_buckets":
        return {k: [lo, None if math.isinf(hi) else hi] for k, (lo, hi) in value.items()}
    return value


@dataclass(frozen=True)
class Report:
    """Every verdict read from one snapshot, and where the data came from."""

    source: str
    created_at: float
    verdicts: tuple[Verdict, ...]
    notes: tuple[str, ...] = ()
    #: The share per interval, when the source was one process at several times (for plots).
    timeline: tuple[SharePoint, ...] = ()


def _merged(hists: Iterable[Histogram]) -> Histogram | None:
    out: Histogram | None = None
    for h in hists:
        out = h if out is None else out.merge(h)
    return out


def _quantile(h: Histogram | None, q: float) -> float | None:
    return None if h is None else h.quantile(q)


def quantile_bucket(h: Histogram | None, q: float) -> tuple[float, float] | None:
    """The (lower, upper] bounds of the bucket where the q-quantile's rank falls.

    The bucket ``histogram_quantile`` interpolates in: the true quantile lies inside it.

    Example::

        h = Histogram((0.1, 0.2), (0, 4, 0), 0.6)
        assert quantile_bucket(h, 0.5) == (0.1, 0.2)
    """
    if h is None or h.count == 0 or not h.bounds:  # only +Inf: no bucket to name
        return None
    rank = q * h.count
    running = 0
    for i, c in enumerate(h.counts):
        if c and running + c >= rank:
            lower = h.bounds[i - 1] if i > 0 else min(0.0, h.bounds[0])
            upper = h.bounds[i] if i < len(h.bounds) else math.inf
            return lower, upper
        running += c
    return None


def _wide(bucket: tuple[float, float] | None, integer: bool = False) -> bool:
    if bucket is None:
        return False
    lower, upper = bucket
    if math.isinf(upper):
        return True
    if integer:
        return upper - lower > 1
    return lower > 0 and upper > lower * WIDE_FACTOR


def integer_quantile(h: Histogram, q: float) -> float | None:
    """The q-quantile of integer-valued data: the bound of the bucket where the rank falls."""
    n = h.count
    if n == 0 or not h.bounds:  # only a +Inf bucket: nothing says where the values lie
        return None
    running = 0
    for i, c in enumerate(h.counts):
        running += c
        if running >= q * n and c:
            return float(h.bounds[i]) if i < len(h.bounds) else float(h.bounds[-1])
    return float(h.bounds[-1])


def _fraction_at_least(h: Histogram, value: float) -> float | None:
    n = h.count
    return None if n == 0 else min(1.0, h.count_at_least(value) / n)


def verdict_for(snap: Snapshot, info: HypothesisInfo, endpoint: str) -> Verdict:
    """Judge one hypothesis on one endpoint from the snapshot's data."""
    mo = snap.moments_for(info.id, endpoint)
    est = _ratio.estimate(mo)
    n = est.n
    targets = _serving_states([t for t in snap.targets if t.hypothesis == info.id])
    named = any(p.hypothesis == info.id for p in snap.probes) or bool(targets)
    unmeasured = _unmeasured(
        info, endpoint, targets, round(n), round(mo.requests_with_probe), named=named
    )
    if unmeasured is not None:
        verdict = UNMEASURED
    elif n < _ratio.MIN_REQUESTS or est.ci_low is None or est.ci_high is None:
        verdict = INCONCLUSIVE
    elif est.ci_low >= info.min_share:
        verdict = CONFIRMED
    elif est.ci_high < info.min_share:
        verdict = DISPROVED
    else:
        verdict = INCONCLUSIVE
    needed = _ratio.requests_needed(est, info.min_share) if verdict == INCONCLUSIVE else None

    reqs = _per_probe(
        r for r in snap.requests if r.hypothesis == info.id and r.endpoint == endpoint
    )
    calls_data: list[ProbeData] = [
        p for p in snap.probes if p.hypothesis == info.id and p.endpoint == endpoint
    ]
    probe_names = tuple(sorted({r.probe for r in reqs} | {p.probe for p in calls_data}))

    anecdote = info.observed_share
    percentile: float | None = None
    if anecdote is not None:
        fractions = [f for r in reqs if (f := _fraction_at_least(r.share, anecdote)) is not None]
        # With several probes each has its own share histogram; the largest fraction is a
        # lower bound on the fraction of requests whose summed share reaches the anecdote.
        percentile = max(fractions) if fractions else None

    slow_share: float | None = None
    slow_requests: int | None = None
    if info.slow_threshold is not None:
        slow = snap.moments_for(info.id, endpoint, slow=True)
        slow_requests = round(slow.requests)
        if slow.endpoint_seconds > 0:
            slow_share = slow.probe_seconds / slow.endpoint_seconds

    ep = snap.endpoint(endpoint)
    # Without a bound (only a +Inf bucket) a histogram says nothing of where values lie.
    ep_hist = ep.duration if ep is not None and ep.duration.count and ep.duration.bounds else None
    share_hist = _dominant(reqs, lambda r: r.share)
    calls_hist = _dominant(reqs, lambda r: r.calls)
    calls_mean = sum(r.calls.sum for r in reqs) / n if reqs and n > 0 else None
    calls_p95s = [q for r in reqs if (q := integer_quantile(r.calls, 0.95)) is not None]
    probe_hist = _merged(p.duration for p in calls_data)
    buckets: dict[str, tuple[float, float]] = {}
    for name, hist, q in (
        ("endpoint_p50", ep_hist, 0.50),
        ("endpoint_p95", ep_hist, 0.95),
        ("endpoint_p99", ep_hist, 0.99),
        ("probe_p95", probe_hist if probe_hist and probe_hist.count else None, 0.95),
    ):
        bucket = quantile_bucket(hist, q)
        if bucket is not None and _wide(bucket):
            buckets[name] = bucket
    # Calls are integers: the p95 is the upper bound of its bucket ("at most"); in a wide
    # bucket (classic /metrics buckets: 25 calls land in 21-50) its bounds are kept too.
    calls_p95 = max(calls_p95s) if calls_p95s else None
    if reqs and calls_p95 is not None:
        best = max(reqs, key=lambda r: (integer_quantile(r.calls, 0.95) or -1.0, r.probe))
        calls_bucket = quantile_bucket(best.calls, 0.95)
        if calls_bucket is not None and _wide(calls_bucket, integer=True):
            buckets["calls_per_request_p95"] = (calls_bucket[0] + 1, calls_bucket[1])
    warnings = () if unmeasured is not None else _warnings(info, endpoint, targets, reqs, n)

    saving = mo.probe_seconds / n if n > 0 else None
    labels = sorted(
        {
            m.segment
            for m in snap.moments
            if m.hypothesis == info.id and m.endpoint == endpoint and m.segment
        }
    )
    segments = tuple(_segment_share(snap, info.id, endpoint, label) for label in labels)
    values: dict[str, Any] = {
        "hypothesis": info.id,
        "endpoint": endpoint,
        "claim": info.claim,
        "requests": round(n),
        "requests_with_probe": round(mo.requests_with_probe),
        "aggregate_share": est.share,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "min_share": info.min_share,
        "verdict": verdict,
        "requests_needed": needed,
        "anecdote_share": anecdote,
        "anecdote_percentile": percentile,
        "slow_share": slow_share,
        "slow_requests": slow_requests,
        "endpoint_p50": _quantile(ep_hist, 0.50),
        "endpoint_p95": _quantile(ep_hist, 0.95),
        "endpoint_p99": _quantile(ep_hist, 0.99),
        "probe_p95": _quantile(probe_hist, 0.95) if probe_hist and probe_hist.count else None,
        "calls_per_request_mean": calls_mean,
        "calls_per_request_p95": calls_p95,
        "saving_seconds_per_request": saving,
        "saving_share": est.share,
        "probes": probe_names,
        "slow_threshold": info.slow_threshold,
        "anecdote_probe_seconds": info.observed_probe_seconds,
        "anecdote_endpoint_seconds": info.observed_endpoint_seconds,
        "endpoint_mean": mo.endpoint_seconds / n if n > 0 else None,
        "ticket": info.ticket,
        "owner": info.owner,
        "expired": info.expired,
        "segment": info.segment,
        "segments": segments,
        "slowest_requests": tuple(
            sorted(
                (r for r in snap.slowest if r.hypothesis == info.id and r.endpoint == endpoint),
                key=lambda r: (r.kind != "share", -r.rank_value),
            )
        ),
        **self_figures(snap, endpoint),
    }
    values["customers"] = customer_impact(snap, info.id, endpoint)
    values["reason"] = unmeasured
    values["warnings"] = warnings
    values["quantile_buckets"] = buckets
    values["meaning"] = meaning(values)
    return Verdict(
        **values,
        share_histogram=share_hist,
        endpoint_histogram=ep_hist,
        calls_histogram=calls_hist,
    )


def _who(info: HypothesisInfo) -> str:
    return f"{info.id}'s probes"


def _unmeasured(
    info: HypothesisInfo,
    endpoint: str,
    targets: Sequence[TargetState],
    n: int,
    with_probe: int,
    *,
    named: bool = True,
) -> str | None:
    """Why no verdict can be given (the UNMEASURED reason), or None when one can.

    ``named``: some probe (a site or a target) names the hypothesis in the data.
    """
    failed = sorted({(t.target, t.reason) for t in targets if t.state == "failed"})
    failures = "; ".join(f"target {target} failed: {why}" for target, why in failed)
    requests = f"{n:,} request{'' if n == 1 else 's'} of {endpoint}"
    if n > 0 and with_probe == 0:
        head = f"none of {_who(info)} ran in {requests}"
        if failures:
            return f"{head}; {failures}"
        if not named:
            return (
                f"{head}; no probe names {info.id} in any process that reported: add "
                "@hypoprobe.probe, a `with` block, a DB matcher or a TOML target for it"
            )
        return f"{head}; {_silence(targets, n)}"
    if failures:
        ran = f"; the probes that did run were called in {with_probe:,} of {requests}" if n else ""
        return f"{failures}, so the share misses the code it names{ran}"
    return None


def _serving_states(targets: list[TargetState]) -> list[TargetState]:
    """The states that speak for the processes serving requests.

    Processes that load the file but never import the application — ``hypoprobe run``'s
    launcher, a pre-fork server's master without ``--preload`` — keep its targets
    ``pending`` for good: where the same target is attached in other processes, that is
    no warning about the measured requests. A ``failed`` state is always kept.
    """
    attached = {t.target for t in targets if t.state == "attached"}
    return [t for t in targets if not (t.state == "pending" and t.target in attached)]


def _config_targets(targets: Sequence[TargetState]) -> list[TargetState]:
    """The targets of the TOML file, by name."""
    return sorted((t for t in targets if t.kind == "config"), key=lambda t: t.target)


def _idle(t: TargetState) -> str | None:
    """Why a pending or detached target measures nothing (None in any other state)."""
    if t.state == "pending":
        return f"target {t.target} is pending: its module was never imported"
    if t.state == "detached":
        return f"target {t.target} was detached (unloaded)"
    return None


def _silence(targets: Sequence[TargetState], n: int) -> str:
    """Why probes that did not fail still measured nothing, target by target."""
    parts = []
    for t in _config_targets(targets):
        if (idle := _idle(t)) is not None:
            parts.append(idle)
        elif t.state == "attached":
            late = f" ({t.reason})" if t.reason else ""
            parts.append(
                f"target {t.target} attached but never called in {n:,} requests{late}: "
                f"bound before hypoprobe was loaded? ({EARLY_BINDING_DOCS})"
            )
    if parts:
        return "; ".join(dict.fromkeys(parts))
    return (
        "they are attached but were never called: the code path did not run in this "
        f"window, or the calls go around the probed function ({EARLY_BINDING_DOCS})"
    )


def _warnings(
    info: HypothesisInfo,
    endpoint: str,
    targets: Sequence[TargetState],
    reqs: Sequence[RequestData],
    n: float,
) -> tuple[str, ...]:
    """One line per probe that never ran while the hypothesis' others did."""
    if n <= 0:
        return ()
    out = []
    for r in reqs:
        if r.calls.count and r.calls.count == r.calls.counts[0]:
            out.append(
                f"probe {r.probe} never ran in {round(n):,} requests of {endpoint}: the share "
                "counts only the probes that did"
            )
    for t in _config_targets(targets):
        if (idle := _idle(t)) is not None:
            out.append(idle)
        elif t.state == "attached" and "still call the original" in t.reason:
            out.append(f"target {t.target}: {t.reason}")
    return tuple(dict.fromkeys(out))


def _segment_share(snap: Snapshot, hid: str, endpoint: str, label: str) -> SegmentShare:
    est = _ratio.estimate(snap.moments_for(hid, endpoint, segment=label))
    return SegmentShare(label, round(est.n), est.share, est.ci_low, est.ci_high)


def _per_probe(rows: Iterable[RequestData]) -> list[RequestData]:
    """One row per probe: rows of the same probe (other segments, say) merged."""
    merged: dict[str, RequestData] = {}
    for r in rows:
        prior = merged.get(r.probe)
        merged[r.probe] = r if prior is None else _merge_rows(prior, r)
    return [merged[k] for k in sorted(merged)]


def _merge_rows(a: RequestData, b: RequestData) -> RequestData:
    return replace(
        a,
        probe_seconds_fast=a.probe_seconds_fast.merge(b.probe_seconds_fast),
        probe_seconds_slow=a.probe_seconds_slow.merge(b.probe_seconds_slow),
        share=a.share.merge(b.share),
        calls=a.calls.merge(b.calls),
    )


def _dominant(reqs: Sequence[RequestData], pick: Any) -> Histogram | None:
    """The histogram of the probe that costs the most time (the one a plot should show)."""
    if not reqs:
        return None
    best = max(reqs, key=lambda r: (r.probe_seconds.sum, r.probe))
    hist: Histogram = pick(best)
    return hist if hist.bounds else None


def report(
    snap: Snapshot,
    hypotheses: Sequence[str] | None = None,
    endpoint: str | None = None,
) -> Report:
    """Judge every hypothesis in ``snap`` (or those named) on each of its endpoints.

    Raises :class:`NoDataError` for an unknown hypothesis id or endpoint, or when no
    hypothesis has any data at all.

    Example::

        rep = hypoprobe.analysis.report(hypoprobe.snapshot(), hypotheses=["PERF-123"])
        print(rep.verdicts[0].meaning)
    """
    known = {h.id: h for h in snap.hypotheses}
    if hypotheses:
        unknown = [h for h in hypotheses if h not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            raise NoDataError(
                f"unknown hypothesis {', '.join(unknown)}: the data has {listed}; "
                "check the id given to --hypothesis"
            )
        chosen = [known[h] for h in dict.fromkeys(hypotheses)]
    else:
        chosen = sorted(known.values(), key=lambda h: h.id)
    if not chosen:
        raise NoDataError(
            f"no hypotheses in {snap.source}: register one with hypoprobe.hypothesis(...) "
            "in the process that records, and let some requests run"
        )
    pairs = [(h, e) for h in chosen for e in h.endpoints if endpoint is None or e == endpoint]
    if not pairs:
        names = sorted({repr(e) for h in chosen for e in h.endpoints})
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise NoDataError(f"no hypothesis names endpoint {endpoint!r}; endpoints named: {shown}")
    verdicts = tuple(verdict_for(snap, h, e) for h, e in pairs)
    if all(v.requests == 0 and v.verdict != UNMEASURED for v in verdicts):
        raise NoDataError(
            f"no requests recorded in {snap.source} for "
            f"{', '.join(sorted({v.hypothesis for v in verdicts}))}: "
            "widen the window, or check that the endpoint scopes run"
        )
    notes = tuple(
        f"probes name hypothesis {u}, which is not registered: register it with "
        "hypoprobe.hypothesis(...) to get a verdict"
        for u in snap.unregistered
    )
    return Report(snap.source, snap.created_at, verdicts, notes)
