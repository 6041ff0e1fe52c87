"""Before and after a fix: endpoint latency and the hypothesis' share, with significance.

Significance of the change in mean endpoint latency is Welch's unequal-variance test on
the two means. Means and variances come from the exact per-request moments (n, Σe, Σe²)
when the hypothesis recorded them in both windows, otherwise from the endpoint histogram
(mean exact from its sum; variance from bucket midpoints). The p-value uses the normal
approximation of Welch's t, sound at the minimum sample the verdicts already require
(see ``docs/verdicts.md``). The change in share is judged the same way, as the difference
of two independent ratio estimates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Histogram, HypothesisInfo, Snapshot
from . import _ratio
from ._fields import json_fields
from ._meaning import subject
from ._text import MISSING, count, pct, seconds
from ._verdict import NoDataError, Verdict, verdict_for

__all__ = ["ALPHA", "Comparison", "ComparisonReport", "Sample", "Welch", "compare", "welch"]

#: Significance level of the before/after statements.
ALPHA = 0.05


@dataclass(frozen=True)
class Welch:
    """Welch's test on two means: t statistic, Welch-Satterthwaite df, two-sided p-value."""

    t: float
    df: float
    p_value: float


def _two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Sample:
    """Size, mean and (n - 1) variance of one side of a comparison."""

    n: float
    mean: float
    var: float


def welch(before: Sample, after: Sample) -> Welch | None:
    """Welch's test that two means differ; None when either side has fewer than 2 values.

    Example::

        w = welch(Sample(100, 1.0, 0.04), Sample(100, 0.9, 0.04))
        assert w is not None and w.p_value < 0.05
    """
    n1, mean1, var1 = before.n, before.mean, before.var
    n2, mean2, var2 = after.n, after.mean, after.var
    if n1 < 2 or n2 < 2:
        return None
    a, b = var1 / n1, var2 / n2
    se = math.sqrt(a + b)
    if se == 0:
        same = mean1 == mean2
        return Welch(0.0 if same else math.inf, math.inf, 1.0 if same else 0.0)
    t = (mean2 - mean1) / se
    denom = (a * a / (n1 - 1) if a else 0.0) + (b * b / (n2 - 1) if b else 0.0)
    df = (a + b) * (a + b) / denom if denom else math.inf
    return Welch(t, df, _two_sided_p(t))


def _histogram_variance(h: Histogram) -> float:
    n = h.count
    if n < 2 or not h.bounds:
        return 0.0
    mean = h.sum / n
    acc = 0.0
    for i, c in enumerate(h.counts):
        if not c:
            continue
        hi = h.bounds[i] if i < len(h.bounds) else h.bounds[-1]
        lo = h.bounds[i - 1] if i > 0 else 0.0
        mid = (lo + hi) / 2
        acc += c * (mid - mean) * (mid - mean)  # inf, not OverflowError, if out of range
    return acc / (n - 1)


@dataclass(frozen=True)
class Stats:
    n: float
    mean: float | None
    var: float
    p50: float | None
    p95: float | None
    p99: float | None


def _stats(snap: Snapshot, hid: str, endpoint: str) -> Stats:
    mo = snap.moments_for(hid, endpoint)
    ep = snap.endpoint(endpoint)
    h = ep.duration if ep is not None and ep.duration.bounds else None

    def q(x: float) -> float | None:
        return h.quantile(x) if h is not None and h.count else None

    if mo.requests >= 2:
        n = float(mo.requests)
        mean = mo.endpoint_seconds / n
        var = max(0.0, (mo.endpoint_seconds_squared - n * mean * mean) / (n - 1))
        return Stats(n, mean, var, q(0.5), q(0.95), q(0.99))
    if h is not None and h.count:
        return Stats(h.count, h.sum / h.count, _histogram_variance(h), q(0.5), q(0.95), q(0.99))
    return Stats(0.0, None, 0.0, None, None, None)


def _change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before


@dataclass(frozen=True)
class Comparison:
    """One hypothesis on one endpoint, before and after; ``to_dict()`` is the JSON form.

    Example::

        for c in hypoprobe.analysis.compare(before, after).comparisons:
            print(c.meaning)
    """

    hypothesis: str
    endpoint: str
    claim: str
    requests_before: int
    requests_after: int
    endpoint_p50_before: float | None
    endpoint_p50_after: float | None
    endpoint_p50_change: float | None
    endpoint_p95_before: float | None
    endpoint_p95_after: float | None
    endpoint_p95_change: float | None
    endpoint_p99_before: float | None
    endpoint_p99_after: float | None
    endpoint_p99_change: float | None
    endpoint_mean_before: float | None
    endpoint_mean_after: float | None
    endpoint_mean_change: float | None
    mean_change_p_value: float | None
    mean_change_significant: bool | None
    share_before: float | None
    share_after: float | None
    share_ci_before: tuple[float, float] | None
    share_ci_after: tuple[float, float] | None
    share_change_p_value: float | None
    share_change_significant: bool | None
    verdict_before: str
    verdict_after: str
    meaning: str
    # Distributions for plots; not part of the JSON contract.
    endpoint_histogram_before: Histogram | None = field(default=None, repr=False, compare=False)
    endpoint_histogram_after: Histogram | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass(frozen=True)
class ComparisonReport:
    """Every comparison between two snapshots, and where each came from."""

    before_source: str
    after_source: str
    comparisons: tuple[Comparison, ...]


def _ci(v: Verdict) -> tuple[float, float] | None:
    return None if v.ci_low is None or v.ci_high is None else (v.ci_low, v.ci_high)


def _significance(p: float | None, enough: bool) -> bool | None:
    return None if p is None or not enough else p < ALPHA


def _sentence(c: dict[str, Any], who: str) -> str:
    ep = c["endpoint"]
    n1, n2 = c["requests_before"], c["requests_after"]
    if c["endpoint_mean_before"] is None or c["endpoint_mean_after"] is None:
        return f"{ep}: not enough data to compare ({count(n1)} requests before, {count(n2)} after)."
    change = c["endpoint_mean_change"]
    direction = "faster" if change is not None and change < 0 else "slower"
    amount = pct(abs(change)) if change is not None else MISSING
    head = (
        f"{ep} mean latency {seconds(c['endpoint_mean_before'])} → "
        f"{seconds(c['endpoint_mean_after'])}"
    )
    if change is not None and change != 0:
        head += f" ({amount} {direction})"
    sig = c["mean_change_significant"]
    if sig is None:
        judged = f"too few requests to judge significance (at least {_ratio.MIN_REQUESTS} each)"
    elif sig:
        judged = f"a significant change (Welch's test, {_p(c['mean_change_p_value'])})"
    else:
        judged = f"not a significant change (Welch's test, {_p(c['mean_change_p_value'])})"
    text = f"{head}: {judged}; p95 {seconds(c['endpoint_p95_before'])} → "
    text += f"{seconds(c['endpoint_p95_after'])}, across {count(n1)} → {count(n2)} requests."
    if c["share_before"] is not None and c["share_after"] is not None:
        # "The share of": the sentence starts with a capital, whatever the probe is named.
        text += f" The share of {who} went from {pct(c['share_before'])} to {pct(c['share_after'])}"
        if c["share_change_significant"] is True:
            text += " (significant)."
        elif c["share_change_significant"] is False:
            text += " (not significant)."
        else:
            text += "."
    return text


def _p(p: float | None) -> str:
    if p is None:
        return MISSING
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _compare_one(
    before: Snapshot, after: Snapshot, info: HypothesisInfo, endpoint: str
) -> Comparison:
    b = verdict_for(before, info, endpoint)
    a = verdict_for(after, info, endpoint)
    sb, sa = _stats(before, info.id, endpoint), _stats(after, info.id, endpoint)
    enough = min(sb.n, sa.n) >= _ratio.MIN_REQUESTS
    mean_p: float | None = None
    if sb.mean is not None and sa.mean is not None:
        w = welch(Sample(sb.n, sb.mean, sb.var), Sample(sa.n, sa.mean, sa.var))
        mean_p = None if w is None else w.p_value
    share_p: float | None = None
    eb = _ratio.estimate(before.moments_for(info.id, endpoint))
    ea = _ratio.estimate(after.moments_for(info.id, endpoint))
    if eb.share is not None and ea.share is not None and eb.se is not None and ea.se is not None:
        se = math.hypot(eb.se, ea.se)
        diff = ea.share - eb.share
        share_p = (1.0 if diff == 0 else 0.0) if se == 0 else _two_sided_p(diff / se)
    values: dict[str, Any] = {
        "hypothesis": info.id,
        "endpoint": endpoint,
        "claim": info.claim,
        "requests_before": round(sb.n),
        "requests_after": round(sa.n),
    }
    for name, x, y in (
        ("p50", sb.p50, sa.p50),
        ("p95", sb.p95, sa.p95),
        ("p99", sb.p99, sa.p99),
        ("mean", sb.mean, sa.mean),
    ):
        values[f"endpoint_{name}_before"] = x
        values[f"endpoint_{name}_after"] = y
        values[f"endpoint_{name}_change"] = _change(x, y)
    values.update(
        mean_change_p_value=mean_p,
        mean_change_significant=_significance(mean_p, enough),
        share_before=b.aggregate_share,
        share_after=a.aggregate_share,
        share_ci_before=_ci(b),
        share_ci_after=_ci(a),
        share_change_p_value=share_p,
        share_change_significant=_significance(share_p, min(eb.n, ea.n) >= _ratio.MIN_REQUESTS),
        verdict_before=b.verdict,
        verdict_after=a.verdict,
    )
    who = a.probes or b.probes
    values["meaning"] = _sentence(values, subject(who, info.id))
    return Comparison(
        **values,
        endpoint_histogram_before=b.endpoint_histogram,
        endpoint_histogram_after=a.endpoint_histogram,
    )


def _with_data(comparisons: Sequence[Comparison], before: bool) -> str:
    names = [
        f"{c.hypothesis} on {c.endpoint}"
        for c in comparisons
        if (c.requests_before if before else c.requests_after)
    ]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") or (
        "nothing"
    )


def compare(
    before: Snapshot,
    after: Snapshot,
    hypotheses: Sequence[str] | None = None,
    endpoint: str | None = None,
) -> ComparisonReport:
    """Compare every hypothesis (or those named) on each endpoint, before and after.

    Example::

        rep = hypoprobe.analysis.compare(before_snapshot, after_snapshot)
        print(rep.comparisons[0].meaning)
    """
    known: dict[str, HypothesisInfo] = {}
    for snap in (after, before):
        for h in snap.hypotheses:
            known.setdefault(h.id, h)
    if hypotheses:
        unknown = [h for h in hypotheses if h not in known]
        if unknown:
            raise NoDataError(
                f"unknown hypothesis {', '.join(unknown)}: the snapshots have "
                f"{', '.join(sorted(known)) or 'none'}; check the id given to --hypothesis"
            )
        chosen = [known[h] for h in dict.fromkeys(hypotheses)]
    else:
        chosen = sorted(known.values(), key=lambda h: h.id)
    pairs = [(h, e) for h in chosen for e in h.endpoints if endpoint is None or e == endpoint]
    if not pairs:
        raise NoDataError(
            "nothing to compare: no hypothesis "
            + (f"names endpoint {endpoint!r}" if endpoint else "in either snapshot")
        )
    comparisons = tuple(_compare_one(before, after, h, e) for h, e in pairs)
    if all(c.requests_before == 0 and c.requests_after == 0 for c in comparisons):
        raise NoDataError("no requests recorded in either snapshot: widen the windows")
    if not any(c.requests_before and c.requests_after for c in comparisons):
        raise NoDataError(
            "nothing in common: no hypothesis and endpoint has requests in both snapshots "
            f"(before: {_with_data(comparisons, before=True)}; after: "
            f"{_with_data(comparisons, before=False)}); compare snapshots of the same "
            "hypotheses, or name one with --hypothesis and --endpoint"
        )
    return ComparisonReport(before.source, after.source, comparisons)
