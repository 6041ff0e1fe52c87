"""The survey's findings: per endpoint, its candidates ranked by total time, with shares.

A survey candidate is stored as an unregistered internal hypothesis (``SURVEY.sql.<hash>``
or ``SURVEY.fn.<hash>``, see ``hypoprobe._survey``) naming one endpoint, so its share is the
same ratio estimator as a verdict's (Σ probe time / Σ endpoint time over the surveyed
requests, with its 95% interval), and nothing here is ever a verdict.

Example::

    from hypoprobe.analysis._survey import survey_of

    found = survey_of(hypoprobe.snapshot())
    for ep in found.endpoints:
        print(ep.endpoint, [c.probe for c in ep.candidates[:3]])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .._survey import FUNCTION, FUNCTION_OVERFLOW, base_id, kind_of
from ..integrations._fingerprint import OVERFLOW
from ..model import Moments, Snapshot
from . import _ratio
from ._impact import CustomerImpact, customer_impact
from ._verdict import NoDataError

__all__ = ["N_PLUS_ONE_CALLS", "Candidate", "EndpointSurvey", "Survey", "survey_of"]

#: Calls per calling request from which a statement repeated in a loop is flagged N+1.
N_PLUS_ONE_CALLS = 3.0
_FETCH = "fetch: "


@dataclass(frozen=True)
class Candidate:
    """One statement or function of one endpoint, as the survey measured it."""

    probe: str
    kind: str
    hypothesis: str
    share: float | None
    ci_low: float | None
    ci_high: float | None
    total_seconds: float
    requests: int
    requests_with_probe: int
    calls_per_request_mean: float
    calls_per_calling_request: float | None
    n_plus_one: bool
    slow_share: float | None
    slow_requests: int
    overflow: bool
    #: Customers of its surveyed requests (seen) and of the slow ones that ran it
    #: (affected); None when no request named a customer.
    customers: CustomerImpact | None = None


@dataclass(frozen=True)
class EndpointSurvey:
    """An endpoint's surveyed requests and its candidates, the most total time first."""

    endpoint: str
    requests: int
    endpoint_seconds: float
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Survey:
    source: str
    created_at: float
    endpoints: tuple[EndpointSurvey, ...]


def _over_base(mo: Moments, base: Moments) -> Moments:
    """A candidate's moments over every surveyed request of its endpoint.

    A candidate is made at its first call, so its own moments miss the surveyed requests
    before it, in which its probe time was 0: the request count and the endpoint sums
    come from the endpoint's base (counting from the first surveyed request), the probe
    sums from the candidate (the requests it missed add nothing to them).
    """
    if base.requests < mo.requests:  # no base in the data (or an older recording)
        return mo
    return replace(
        mo,
        requests=base.requests,
        endpoint_seconds=base.endpoint_seconds,
        endpoint_seconds_squared=base.endpoint_seconds_squared,
    )


def _candidate(snap: Snapshot, hid: str, endpoint: str) -> Candidate:
    base_id_ = base_id(endpoint)
    mo = _over_base(snap.moments_for(hid, endpoint), snap.moments_for(base_id_, endpoint))
    est = _ratio.estimate(mo)
    names = {r.probe for r in snap.requests if r.hypothesis == hid and r.endpoint == endpoint}
    names |= {p.probe for p in snap.probes if p.hypothesis == hid and p.endpoint == endpoint}
    kind = kind_of(hid) or FUNCTION
    main = sorted(n for n in names if not n.startswith(_FETCH)) or sorted(names) or ["?"]
    probe = main[0]
    calls = 0.0
    spread = 0
    for r in snap.requests:
        if r.hypothesis == hid and r.endpoint == endpoint and r.probe == probe:
            calls += r.calls.sum
            # Buckets holding requests that called it: two or more, the calls vary.
            spread = max(spread, sum(1 for c in r.calls.counts[1:] if c > 0))
    requests = round(mo.requests)
    with_probe = round(mo.requests_with_probe)
    per_calling = calls / with_probe if with_probe else None
    slow = _over_base(
        snap.moments_for(hid, endpoint, slow=True),
        snap.moments_for(base_id_, endpoint, slow=True),
    )
    return Candidate(
        probe=probe,
        kind=kind,
        hypothesis=hid,
        share=est.share,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        total_seconds=mo.probe_seconds,
        requests=requests,
        requests_with_probe=with_probe,
        calls_per_request_mean=calls / requests if requests else 0.0,
        calls_per_calling_request=per_calling,
        n_plus_one=per_calling is not None and per_calling >= N_PLUS_ONE_CALLS and spread >= 2,
        slow_share=slow.probe_seconds / slow.endpoint_seconds if slow.endpoint_seconds else None,
        slow_requests=round(slow.requests),
        overflow=probe in (OVERFLOW, FUNCTION_OVERFLOW),
        customers=customer_impact(snap, hid, endpoint),
    )


def survey_of(snap: Snapshot, endpoint: str | None = None, top: int | None = None) -> Survey:
    """Every surveyed endpoint of ``snap`` (or one) with its top candidates.

    Raises :class:`NoDataError` when the data holds no survey (or not for ``endpoint``).
    """
    pairs = sorted({(mo.endpoint, mo.hypothesis) for mo in snap.moments if kind_of(mo.hypothesis)})
    if not pairs:
        raise NoDataError(
            f"no survey data in {snap.source}: run the application with `hypoprobe run "
            "--survey` (or call hypoprobe.survey()) and let some requests run"
        )
    endpoints: dict[str, list[Candidate]] = {}
    for ep, hid in pairs:
        if endpoint is None or ep == endpoint:
            endpoints.setdefault(ep, []).append(_candidate(snap, hid, ep))
    if not endpoints:
        shown = ", ".join(sorted({repr(ep) for ep, _ in pairs})[:10])
        raise NoDataError(f"the survey has no endpoint {endpoint!r}; it has {shown}")
    out = []
    for ep in sorted(endpoints):
        cands = sorted(endpoints[ep], key=lambda c: (-c.total_seconds, c.probe))
        # The surveyed requests: the endpoint's base counts them all.
        first = max(cands, key=lambda c: c.requests)
        base = snap.moments_for(base_id(ep), ep)
        mo = base if base.requests >= first.requests else snap.moments_for(first.hypothesis, ep)
        out.append(
            EndpointSurvey(
                ep,
                round(mo.requests),
                mo.endpoint_seconds,
                tuple(cands[:top] if top else cands),
            )
        )
    out.sort(key=lambda e: -e.endpoint_seconds)
    return Survey(snap.source, snap.created_at, tuple(out))
