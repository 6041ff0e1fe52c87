"""Customer impact: for whom a hypothesis matters, how many customers, and how much.

From a snapshot's customer sketches (``hypoprobe.customer``), per hypothesis and endpoint
(and segment): distinct customers seen, distinct customers *affected* (at least one request
whose probe share was at or above ``min_share``, and slow where a slow threshold is set),
their summed value, the probe time in affected requests, and the expected saving per day
if the probed code cost nothing, in seconds and value-weighted (Σ probe seconds * the
customer's value). Counts and values are exact below the sketch size (16,384 customers)
and estimates above (relative standard error 0.78% for counts).

Example::

    from hypoprobe.analysis import customer_impact
    impact = customer_impact(hypoprobe.snapshot(), "PERF-123", "GET /campaigns")
    if impact is not None:
        print(impact.affected, "of", impact.seen, "customers affected")
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .._sketch import AFFECTED, SEEN, CustomerSketch
from ..model import Snapshot

__all__ = ["CustomerImpact", "customer_impact"]

DAY = 86_400.0


@dataclass(frozen=True)
class CustomerImpact:
    """Customers of one hypothesis on one endpoint (every segment, or one)."""

    seen: int
    affected: int
    seen_value: float | None
    affected_value: float | None
    #: True when every figure is exact (fewer customers than the sketch keeps).
    exact: bool
    #: Requests that named a customer, and those that were affected.
    requests: int
    affected_requests: int
    #: Probe seconds in all requests naming a customer, and in the affected ones.
    probe_seconds: float
    affected_probe_seconds: float
    #: Seconds from the first request naming a customer to the snapshot (None: unknown).
    window_seconds: float | None
    #: The probe's time per day over those requests: what removing it would save.
    saving_seconds_per_day: float | None
    #: The same, each request's seconds times its customer's value (None: no values).
    value_saving_per_day: float | None
    #: True for a snapshot window: distinct figures are since the start (upper bounds for
    #: the window), except that a window without affected requests affected no customer.
    cumulative: bool = False

    @property
    def affected_fraction(self) -> float | None:
        return self.affected / self.seen if self.seen else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "affected": self.affected,
            "seen_value": self.seen_value,
            "affected_value": self.affected_value,
            "exact": self.exact,
            "requests": self.requests,
            "affected_requests": self.affected_requests,
            "affected_probe_seconds": self.affected_probe_seconds,
            "saving_seconds_per_day": self.saving_seconds_per_day,
            "value_saving_per_day": self.value_saving_per_day,
            "cumulative": self.cumulative,
        }


def _union(sketches: list[CustomerSketch]) -> CustomerSketch | None:
    out: CustomerSketch | None = None
    for s in sketches:
        # Segments and endpoints partition requests, not customers: union, then the figures.
        keyless = replace(s, hypothesis="", endpoint="", segment="")
        out = keyless if out is None else out.merge(keyless)
    return out


def customer_impact(
    snap: Snapshot, hypothesis_id: str, endpoint: str | None = None, segment: str | None = None
) -> CustomerImpact | None:
    """The customer impact of a hypothesis (on one endpoint, or all; one segment, or all).

    None when no request of it named a customer.
    """

    def pick(kind: str) -> CustomerSketch | None:
        return _union(
            [
                c
                for c in snap.customers
                if c.hypothesis == hypothesis_id
                and c.kind == kind
                and (endpoint is None or c.endpoint == endpoint)
                and (segment is None or c.segment == segment)
            ]
        )

    seen = pick(SEEN)
    if seen is None or seen.requests == 0:
        return None
    affected = pick(AFFECTED)
    window = snap.created_at - seen.first_at if seen.first_at is not None else None
    if window is not None and window <= 0:
        window = None
    has_values = seen.value() is not None
    per_day = DAY / window if window else None
    if affected is not None and affected.cumulative and affected.requests == 0:
        affected = None  # no affected request in the window: no affected customer in it
    return CustomerImpact(
        seen=round(seen.distinct()),
        affected=round(affected.distinct()) if affected is not None else 0,
        seen_value=seen.value(),
        affected_value=(
            (affected.value() if affected is not None else 0.0) if has_values else None
        ),
        exact=seen.exact
        and (affected is None or affected.exact)
        and not (seen.cumulative or (affected is not None and affected.cumulative)),
        requests=seen.requests,
        affected_requests=affected.requests if affected is not None else 0,
        probe_seconds=seen.probe_seconds,
        affected_probe_seconds=affected.probe_seconds if affected is not None else 0.0,
        window_seconds=window,
        saving_seconds_per_day=seen.probe_seconds * per_day if per_day else None,
        value_saving_per_day=(
            seen.probe_value_seconds * per_day if per_day and has_values else None
        ),
        cumulative=seen.cumulative,
    )


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def sentence(impact: CustomerImpact | None) -> str | None:
    """One line for reports: how many customers, and how much they are worth."""
    if impact is None:
        return None
    approx = "at most " if impact.cumulative else "" if impact.exact else "about "
    text = f"Customers: {approx}{impact.affected:,} of {impact.seen:,} affected"
    if impact.affected_fraction is not None:
        text += f" ({impact.affected_fraction:.0%})"
    if impact.affected_value is not None and impact.seen_value:
        text += (
            f", worth {_num(impact.affected_value)} of {_num(impact.seen_value)}"
            f" ({impact.affected_value / impact.seen_value:.0%} of the value)"
        )
    if impact.saving_seconds_per_day is not None:
        text += f"; saving {_num(impact.saving_seconds_per_day)} s/day"
    return text + "."
