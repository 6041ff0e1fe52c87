"""The share over time: one point per interval between successive snapshots of one source.

A process's snapshots are cumulative (everything since it started), so the interval between
two of them is the later minus the earlier; each interval is judged on its own, which shows
*when* the probe's share was high, not only how high it was on average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from ..errors import HypoprobeError
from ..model import Snapshot

__all__ = ["SharePoint", "is_series", "timeline", "window_timeline"]


@dataclass(frozen=True)
class SharePoint:
    """One hypothesis on one endpoint over one interval: its share and 95% interval.

    Example::

        for p in analysis.timeline([s1, s2, s3]):
            print(p.hypothesis, p.end, p.share)
    """

    hypothesis: str
    endpoint: str
    start: float
    end: float
    requests: int
    share: float | None
    ci_low: float | None
    ci_high: float | None


def is_series(snapshots: Sequence[Snapshot]) -> bool:
    """Whether ``snapshots`` are one source at several distinct times (not several sources).

    Example::

        is_series([web1_at_10h, web1_at_11h])  # True: same source, two times
    """
    if len(snapshots) < 2:
        return False
    times = [s.created_at for s in snapshots]
    return len({s.source for s in snapshots}) == 1 and len(set(times)) == len(times)


def timeline(snapshots: Sequence[Snapshot]) -> tuple[SharePoint, ...]:
    """The share of every hypothesis and endpoint per interval between ``snapshots``.

    The snapshots are put in time order; an interval with no requests (or after a restart,
    where the counters went back) yields no point.

    Example::

        points = timeline([load("t0.json"), load("t1.json"), load("t2.json")])
    """
    ordered = sorted(snapshots, key=lambda s: s.created_at)
    return window_timeline(
        [(earlier.created_at, later.created_at, later.minus(earlier)) for earlier, later in
         pairwise(ordered)]
    )  # fmt: skip


def window_timeline(windows: Sequence[tuple[float, float, Snapshot]]) -> tuple[SharePoint, ...]:
    """The share of every hypothesis and endpoint in each ``(start, end, window)``.

    For sources that are windows already (a Prometheus server queried interval by
    interval); a window with no requests yields no point.

    Example::

        points = window_timeline([(t0, t1, query_prometheus(url, t1 - t0, at=t1)), ...])
    """
    from ._verdict import report

    out: list[SharePoint] = []
    for start, end, window in sorted(windows, key=lambda w: w[1]):
        try:
            rep = report(window)
        except HypoprobeError:  # nothing recorded in this interval
            continue
        out += [
            SharePoint(
                v.hypothesis,
                v.endpoint,
                start,
                end,
                v.requests,
                v.aggregate_share,
                v.ci_low,
                v.ci_high,
            )
            for v in rep.verdicts
            if v.requests > 0
        ]
    return tuple(out)
