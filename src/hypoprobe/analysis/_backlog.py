"""The backlog: every hypothesis ranked by what fixing it is worth.

Rank key, in order (larger first): value-weighted seconds saved per day (Σ probe seconds *
the customer's value, per day, over requests that named a customer); then seconds saved
per day; then the probe's total seconds in the source; ties broken by customers affected,
then the id. A hypothesis without customer values ranks after every one with values, one
without a known window after every one with seconds per day; each row says which key
ranked it (``ranked_by``), so a missing figure is visible rather than silently zero.

Example::

    from hypoprobe.analysis import backlog
    for row in backlog(hypoprobe.snapshot()):
        print(row.rank, row.hypothesis, row.value_saving_per_day)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..model import Snapshot
from ._impact import customer_impact
from ._verdict import NoDataError, Verdict, report

__all__ = ["BacklogRow", "backlog"]

VALUE = "value-weighted seconds per day"
SECONDS = "seconds per day (no customer values)"
TOTAL = "probe seconds in the source (no customers named, so no window)"


@dataclass(frozen=True)
class BacklogRow:
    """One hypothesis in the backlog."""

    rank: int
    hypothesis: str
    claim: str
    #: The verdict per endpoint, "CONFIRMED" when one endpoint, else "GET /a: ..., ...".
    verdict: str
    #: The aggregate share on its busiest endpoint.
    share: float | None
    endpoint: str
    customers_seen: int | None
    customers_affected: int | None
    value_affected: float | None
    saving_seconds_per_day: float | None
    value_saving_per_day: float | None
    probe_seconds: float
    owner: str | None
    ticket: str | None
    expires: str | None
    ranked_by: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key(row: BacklogRow) -> tuple[Any, ...]:
    tier = {VALUE: 0, SECONDS: 1, TOTAL: 2}[row.ranked_by]
    figure = {
        VALUE: row.value_saving_per_day,
        SECONDS: row.saving_seconds_per_day,
        TOTAL: row.probe_seconds,
    }[row.ranked_by]
    return (tier, -(figure or 0.0), -(row.customers_affected or 0), row.hypothesis)


def _verdict_text(verdicts: list[Verdict]) -> str:
    if len(verdicts) == 1:
        return verdicts[0].verdict
    return ", ".join(f"{v.endpoint}: {v.verdict}" for v in verdicts)


def backlog(snap: Snapshot, hypotheses: Sequence[str] | None = None) -> tuple[BacklogRow, ...]:
    """Every hypothesis of ``snap`` (or those named) with requests, ranked (module docstring)."""
    try:
        verdicts = report(snap, hypotheses=hypotheses).verdicts
    except NoDataError:
        return ()
    by_hypothesis: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_hypothesis.setdefault(v.hypothesis, []).append(v)
    rows = []
    for hid, vs in by_hypothesis.items():
        info = snap.hypothesis(hid)
        busiest = max(vs, key=lambda v: (v.requests, v.endpoint))
        impact = customer_impact(snap, hid)
        probe_seconds = sum(snap.moments_for(hid, v.endpoint).probe_seconds for v in vs)
        if impact is not None and impact.value_saving_per_day is not None:
            ranked_by = VALUE
        elif impact is not None and impact.saving_seconds_per_day is not None:
            ranked_by = SECONDS
        else:
            ranked_by = TOTAL
        rows.append(
            BacklogRow(
                rank=0,
                hypothesis=hid,
                claim=busiest.claim,
                verdict=_verdict_text(vs),
                share=busiest.aggregate_share,
                endpoint=busiest.endpoint,
                customers_seen=impact.seen if impact else None,
                customers_affected=impact.affected if impact else None,
                value_affected=impact.affected_value if impact else None,
                saving_seconds_per_day=impact.saving_seconds_per_day if impact else None,
                value_saving_per_day=impact.value_saving_per_day if impact else None,
                probe_seconds=probe_seconds,
                owner=info.owner if info else None,
                ticket=info.ticket if info else None,
                expires=info.expires if info else None,
                ranked_by=ranked_by,
            )
        )
    rows.sort(key=_key)
    return tuple(BacklogRow(**{**row.__dict__, "rank": i}) for i, row in enumerate(rows, start=1))
