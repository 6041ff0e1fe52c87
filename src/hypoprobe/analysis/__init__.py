"""Verdict statistics: turn a :class:`~hypoprobe.Snapshot` into verdicts and comparisons.

``report(snapshot)`` judges every hypothesis on each of its endpoints: the aggregate share
Σ probe time / Σ endpoint time with a 95% interval (ratio estimator, linearised), against
the claim's ``min_share`` — CONFIRMED, DISPROVED or INCONCLUSIVE, or UNMEASURED when its
probes never ran or one of its targets failed — beside the anecdote's
percentile, the share among slow requests, latency percentiles, calls per request and the
expected saving. ``compare(before, after)`` measures a fix. The method is documented in
``docs/verdicts.md``.

Example::

    import hypoprobe
    from hypoprobe import analysis

    rep = analysis.report(hypoprobe.snapshot())
    for v in rep.verdicts:
        print(v.verdict, v.meaning)
"""

from __future__ import annotations

from ._compare import ALPHA, Comparison, ComparisonReport, Sample, Welch, compare, welch
from ._impact import CustomerImpact, customer_impact
from ._ratio import MIN_REQUESTS, Z95, RatioEstimate, estimate, requests_needed
from ._timeline import SharePoint, is_series, timeline, window_timeline
from ._verdict import (
    CONFIRMED,
    DISPROVED,
    INCONCLUSIVE,
    UNMEASURED,
    NoDataError,
    Report,
    SegmentShare,
    Verdict,
    report,
)

__all__ = [
    "ALPHA",
    "CONFIRMED",
    "Comparison",
    "CustomerImpact",
    "ComparisonReport",
    "DISPROVED",
    "INCONCLUSIVE",
    "MIN_REQUESTS",
    "NoDataError",
    "RatioEstimate",
    "Report",
    "Sample",
    "SegmentShare",
    "SharePoint",
    "UNMEASURED",
    "Verdict",
    "Welch",
    "Z95",
    "compare",
    "customer_impact",
    "estimate",
    "is_series",
    "report",
    "requests_needed",
    "timeline",
    "welch",
    "window_timeline",
]
