"""Resolution, done once and off the hot path: probe sites, endpoint indices, scope plans.

A *site* is one (hypothesis, probe name) pair; every decorator or context manager with the
same pair shares it. An endpoint name gets a small integer index when first seen; a site
keeps, per endpoint index, the offset of its per-call series, so a probe call outside a
plan finds its series with one list index. A *plan* is, per endpoint, everything its
scope needs: for each relevant site its per-call series and accumulator slot, and for the
scope's end the hypotheses that name the endpoint with every series offset.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import _metrics as m
from . import _targets
from ._hypothesis import REGISTRY, Hypothesis
from ._storage import STORAGE, TLS

__all__: list[str] = []

_lock = threading.RLock()


def _after_fork_in_child() -> None:
    global _lock  # another thread may have held it at fork: in the child it stays held
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: Never expires (as a monotonic-clock nanosecond deadline).
NEVER = 1 << 62

#: A request's accumulator slot for one site holds ``calls << CALLS_SHIFT | probe_ns``, so
#: recording a call into the request is a single addition.
CALLS_SHIFT = 48
ONE_CALL = 1 << CALLS_SHIFT
TIME_MASK = ONE_CALL - 1


class Site:
    """One (hypothesis, probe name) pair, shared by every decorator and ``with`` using it."""

    __slots__ = (
        "__weakref__",
        "by_endpoint",
        "deadline",
        "exceptions",
        "expired",
        "hypothesis_id",
        "name",
        "off",
    )

    def __init__(self, hypothesis_id: str, name: str) -> None:
        self.hypothesis_id = hypothesis_id
        self.name = name
        #: Offset of the per-call duration series, by endpoint index (0 is outside scopes).
        self.by_endpoint: list[int | None] = []
        #: Clock value at which the hypothesis expires.
        self.deadline = NEVER
        self.expired = False
        #: The one flag the hot path reads: disabled by configure(), or expired.
        self.off = False
        #: Offset of the exception counter, by exception class name (bounded).
        self.exceptions: dict[str, int] = {}


@dataclass(frozen=True)
class SegmentSeries:
    """Series offsets of one hypothesis, endpoint and segment label."""

    #: Per site, in the hypothesis' site order: (request offsets (not slow, slow), share, calls).
    sites: tuple[tuple[tuple[int, int], int, int], ...]
    int_moments: tuple[int, int]  # (not slow, slow)
    float_moments: tuple[int, int]
    #: What a scope's end reads, as plain tuples (unpacking beats attribute lookups):
    #: per site (accumulator position, request offsets, share offset, calls offset), and
    #: per slow flag (int moments offset, float moments offset).
    rows: tuple[tuple[int, tuple[int, int], int, int], ...] = ()
    moments: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))


@dataclass(frozen=True)
class HypothesisPlan:
    hypothesis: Hypothesis
    endpoint: str
    slow_ns: int
    #: Accumulator position of each of the hypothesis' sites, in site order.
    positions: tuple[int, ...]
    #: The segment allow-list (None: segments not kept apart) and the one segment that
    #: counts (None: every request counts).
    allowed: frozenset[str] | None
    only: str | None
    #: Series by segment label ("" when segments are not kept apart), made on first use.
    series: dict[str, SegmentSeries]


@dataclass(frozen=True)
class Plan:
    """What one endpoint's scope needs: accumulator positions and series offsets."""

    endpoint_index: int
    endpoint_offset: int
    #: Per relevant site: (per-call series offset, accumulator position).
    sites: dict[Site, tuple[int, int]]
    width: int
    hypotheses: tuple[HypothesisPlan, ...]
    #: Offset of the request counter by (status class, exception class), made on first use.
    outcomes: dict[tuple[str, str], int]
    #: Per hypothesis, as a plain tuple for the scope's end: (plan, allow-list, the one
    #: segment, series by label, slow threshold in ns, the series when segments are not
    #: kept apart).
    rows: tuple[
        tuple[
            HypothesisPlan,
            frozenset[str] | None,
            str | None,
            dict[str, SegmentSeries],
            int,
            SegmentSeries | None,
        ],
        ...,
    ] = ()
    #: False for the plan of requests the survey's sampling left out (see _survey).
    surveyed: bool = True


#: Distinct exception classes counted per endpoint before the rest count as "other".
MAX_ENDPOINT_EXCEPTIONS = 20
_exceptions_seen: dict[str, set[str]] = {}

KNOWN_ENDPOINTS: dict[str, int] = {m.NO_ENDPOINT: 0}
ENDPOINT_NAMES: list[str] = [m.NO_ENDPOINT]
#: Every site, by (hypothesis id, probe name).
SITES: dict[tuple[str, str], Site] = {}
SITES_BY_HYPOTHESIS: dict[str, list[Site]] = {}
#: Plans by endpoint index; None means "build on next use" (after any registration).
PLANS: list[Plan | None] = [None]
#: Earliest clock value at which some probed hypothesis expires; scopes check it.
NEXT_DEADLINE = NEVER
#: configure(enabled=...); sites created later start from it.
ENABLED = True

# Survey hooks (hypoprobe._survey): the candidates of an endpoint name, as unregistered
# hypotheses (None: no survey), the fraction of requests surveyed, and the sampler a
# scope calls at its start when that fraction is below 1. Unsurveyed requests use the
# plans in UNSURVEYED, which leave the candidates out.
SURVEY_CANDIDATES: Callable[[str], list[Hypothesis]] | None = None
SURVEY_RATE = 1.0


def _every_request() -> bool:
    return True


SURVEY_SAMPLER: Callable[[], bool] = _every_request
UNSURVEYED: list[Plan | None] = [None]


def endpoint_index(name: str) -> int:
    """Index of an endpoint name, allocated on first sight."""
    found = KNOWN_ENDPOINTS.get(name)
    if found is not None:
        return found
    with _lock:
        found = KNOWN_ENDPOINTS.get(name)
        if found is None:
            found = len(ENDPOINT_NAMES)
            ENDPOINT_NAMES.append(name)
            PLANS.append(None)
            UNSURVEYED.append(None)
            KNOWN_ENDPOINTS[name] = found
        return found


def _deadline(hyp: Hypothesis | None, clock_now: int) -> int:
    if hyp is None or hyp.expires is None:
        return NEVER
    remaining = hyp.expires.timestamp() - time.time()
    return clock_now + max(0, int(remaining * 1e9))


def _arm(s: Site, hyp: Hypothesis | None, now: int) -> None:
    """Set a site's expiry deadline and on/off state from its hypothesis."""
    global NEXT_DEADLINE
    s.deadline = _deadline(hyp, now)
    s.expired = hyp is not None and hyp.is_expired()
    s.off = s.expired or not ENABLED
    if s.expired and hyp is not None:
        REGISTRY.warn_expired(hyp)
    elif s.deadline < NEXT_DEADLINE:
        NEXT_DEADLINE = s.deadline


def site(hypothesis_id: str, name: str) -> Site:
    """The site for (hypothesis, name), created on first use with its out-of-scope series."""
    key = (hypothesis_id, name)
    found = SITES.get(key)
    if found is not None:
        return found
    with _lock:
        found = SITES.get(key)
        if found is None:
            from ._config import HOLDER

            found = Site(hypothesis_id, name)
            call_series(found, 0)
            _arm(found, REGISTRY.get(hypothesis_id), HOLDER.config.clock())
            SITES[key] = found
            SITES_BY_HYPOTHESIS.setdefault(hypothesis_id, []).append(found)
            invalidate()
            _targets.site_created(hypothesis_id, name)
        return found


def all_sites() -> list[Site]:
    with _lock:
        return list(SITES.values())


def set_enabled(enabled: bool) -> None:
    """configure(enabled=...): switch every site, and the sites created from now on."""
    global ENABLED
    with _lock:
        ENABLED = enabled
        for s in SITES.values():
            s.off = s.expired or not enabled


def expire_due(now: int) -> None:
    """Turn off the sites whose hypothesis has expired by ``now`` (a clock value)."""
    global NEXT_DEADLINE
    with _lock:
        upcoming = NEVER
        changed = False
        for s in SITES.values():
            if s.expired:
                continue
            hyp = REGISTRY.get(s.hypothesis_id)
            if now >= s.deadline or (hyp is not None and hyp.is_expired()):
                s.expired = s.off = True
                changed = True
                if hyp is not None:
                    REGISTRY.warn_expired(hyp)
            else:
                upcoming = min(upcoming, s.deadline)
        NEXT_DEADLINE = upcoming
        if changed:
            invalidate()


def call_series(s: Site, eidx: int) -> int:
    """Offset of the site's per-call series for an endpoint index, allocated on first use."""
    with _lock:
        if len(s.by_endpoint) <= eidx:
            s.by_endpoint.extend([None] * (eidx + 1 - len(s.by_endpoint)))
        offset = s.by_endpoint[eidx]
        if offset is None:
            labels = (s.hypothesis_id, s.name, ENDPOINT_NAMES[eidx])
            series = STORAGE.series(m.PROBE_DURATION.name, labels, m.PROBE_DURATION.layout)
            offset = series.int_offset
            s.by_endpoint[eidx] = offset
        return offset


def exception_name(exc_type: type[BaseException]) -> str:
    """``ValueError`` for builtins, ``module.Qualname`` otherwise: the label of a class."""
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


def count_exception(s: Site, exc_type: type[BaseException], limit: int) -> None:
    """Count an exception that passed through the site, by class (``other`` past ``limit``)."""
    cls = exception_name(exc_type)
    offset = s.exceptions.get(cls)
    if offset is None:
        with _lock:
            offset = s.exceptions.get(cls)
            if offset is None:
                if len(s.exceptions) >= limit:
                    cls = "other"
                labels = (s.hypothesis_id, s.name, cls)
                offset = STORAGE.series(m.PROBE_EXCEPTIONS.name, labels, ints=1).int_offset
                s.exceptions.setdefault(cls, offset)
    ints = getattr(TLS, "ints", None)
    if ints is None or len(ints) <= offset:
        ints, _ = STORAGE.shard()
    ints[offset] += 1


def segment_series(hp: HypothesisPlan, label: str) -> SegmentSeries:
    """The series of a hypothesis plan for one segment label, allocated on first use."""
    with _lock:
        found = hp.series.get(label)
        if found is not None:
            return found
        hyp, endpoint = hp.hypothesis, hp.endpoint
        sites = []
        for s in SITES_BY_HYPOTHESIS.get(hyp.id, ())[: len(hp.positions)]:
            base = (hyp.id, s.name, endpoint, label)
            req = tuple(
                STORAGE.series(m.REQUEST_PROBE.name, (*base, slow), m.REQUEST_PROBE.layout)
                for slow in ("false", "true")
            )
            share = STORAGE.series(m.REQUEST_SHARE.name, base, m.REQUEST_SHARE.layout)
            calls = STORAGE.series(m.REQUEST_CALLS.name, base, m.REQUEST_CALLS.layout)
            offsets = (req[0].int_offset, req[1].int_offset)
            sites.append((offsets, share.int_offset, calls.int_offset))
        moments = [
            STORAGE.series(
                m.MOMENTS_SERIES,
                (hyp.id, endpoint, label, slow),
                ints=len(m.INT_MOMENTS),
                floats=len(m.FLOAT_MOMENTS),
            )
            for slow in ("false", "true")
        ]
        made = SegmentSeries(
            tuple(sites),
            (moments[0].int_offset, moments[1].int_offset),
            (moments[0].float_offset, moments[1].float_offset),
            tuple((pos, *site) for pos, site in zip(hp.positions, sites, strict=False)),
            (
                (moments[0].int_offset, moments[0].float_offset),
                (moments[1].int_offset, moments[1].float_offset),
            ),
        )
        hp.series[label] = made
        return made


def _hypothesis_plan(
    hyp: Hypothesis, endpoint: str, first_pos: int
) -> tuple[HypothesisPlan, dict[Site, int]]:
    sites = SITES_BY_HYPOTHESIS.get(hyp.id, [])
    positions = {s: first_pos + i for i, s in enumerate(sites)}
    made = HypothesisPlan(
        hyp,
        endpoint,
        NEVER if hyp.slow_threshold is None else int(hyp.slow_threshold * 1e9),
        tuple(positions.values()),
        None if hyp.segments is None else frozenset(hyp.segments),
        hyp.segment,
        {},
    )
    # Series exist (at zero) before the first request, so rate() has a start; segment
    # labels beyond the first appear with their first request.
    segment_series(made, "" if hyp.segments is None else (hyp.segment or hyp.segments[0]))
    return made, positions


def plan(eidx: int, surveyed: bool = True) -> Plan:
    """The plan for an endpoint index, built on first use after any change.

    ``surveyed=False``: the plan of a request the survey's sampling left out.
    """
    with _lock:
        found = PLANS[eidx] if surveyed else UNSURVEYED[eidx]
        if found is not None:
            return found
        endpoint = ENDPOINT_NAMES[eidx]
        endpoint_series = STORAGE.series(
            m.ENDPOINT_DURATION.name, (endpoint,), m.ENDPOINT_DURATION.layout
        )
        hyps: list[HypothesisPlan] = []
        slots: dict[Site, tuple[int, int]] = {}
        width = 0
        candidates = SURVEY_CANDIDATES
        survey = candidates(endpoint) if candidates is not None and surveyed else []
        for hyp in (*REGISTRY.all(), *survey):
            expired = any(s.expired for s in SITES_BY_HYPOTHESIS.get(hyp.id, ()))
            if endpoint not in hyp.endpoints or expired or hyp.is_expired():
                continue
            hp, positions = _hypothesis_plan(hyp, endpoint, width)
            for s, position in positions.items():
                slots[s] = (call_series(s, eidx), position)
            width += len(hp.positions)
            hyps.append(hp)
        rows = tuple(
            (hp, hp.allowed, hp.only, hp.series, hp.slow_ns, hp.series.get("")) for hp in hyps
        )
        made = Plan(eidx, endpoint_series.int_offset, slots, width, tuple(hyps), {}, rows, surveyed)
        outcome_series(made, ("", ""))  # the common case exists (at zero) from the start
        if surveyed:
            PLANS[eidx] = made
        else:
            UNSURVEYED[eidx] = made
        return made


def outcome_series(p: Plan, key: tuple[str, str]) -> int:
    """Offset of an endpoint's request counter for (status, exception), made on first use."""
    with _lock:
        found = p.outcomes.get(key)
        if found is not None:
            return found
        endpoint = ENDPOINT_NAMES[p.endpoint_index]
        status, exception = key
        if exception:
            seen = _exceptions_seen.setdefault(endpoint, set())
            if exception not in seen and len(seen) >= MAX_ENDPOINT_EXCEPTIONS:
                exception = "other"
            seen.add(exception)
        labels = (endpoint, status, exception)
        offset = STORAGE.series(m.ENDPOINT_REQUESTS.name, labels, ints=1).int_offset
        p.outcomes[key] = offset
        return offset


def invalidate() -> None:
    """Forget every plan: the next scope of each endpoint rebuilds its own."""
    with _lock:
        for i in range(len(PLANS)):
            PLANS[i] = None
            UNSURVEYED[i] = None


def on_registered(hyp: Hypothesis) -> None:
    """A hypothesis was registered: arm its sites' expiry and rebuild plans."""
    from ._config import HOLDER

    now = HOLDER.config.clock()
    with _lock:
        for s in SITES_BY_HYPOTHESIS.get(hyp.id, ()):
            _arm(s, hyp, now)
        invalidate()


REGISTRY.add_listener(on_registered)
