"""Resolution, done once and off the hot path: probe sites, endpoint indices, scope plans.

A *site* is one (hypothesis, probe name) pair; every decorator or context manager with the
same pair shares it. An endpoint name gets a small integer index when first seen; a site
keeps, per endpoint index, the offset of its per-call series, so a probe call outside a
plan finds its series with one list index. A *plan* is, per endpoint, everything its
scope needs: for each relevant site its per-call series and accumulator slot, and for the
scope's end the hypotheses that name the endpoint with every series offset.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _metrics as m
from . import _clock, _faults, _state, _targets
from ._buckets import BucketLayout
from ._hypothesis import REGISTRY, Hypothesis
from ._storage import OVERFLOW, STORAGE, TLS, Series

if TYPE_CHECKING:
    from .._observers._slowest import _Top

__all__: list[str] = []

_lock = threading.RLock()


def _after_fork_in_child() -> None:
    global _lock  # another thread may have held it at fork: in the child it stays held
    _lock = threading.RLock()


_state.owns("plan", after_fork=_after_fork_in_child)

#: Never expires (as a monotonic-clock nanosecond deadline).
NEVER = 1 << 62

#: A request's accumulator slot for one site holds ``calls << CALLS_SHIFT | probe_ns``, so
#: recording a call into the request is a single addition.
#:
#: Invariant (the per-request slot's limit): the probe-time part of a slot stays below
#: ``ONE_CALL`` (2^48 ns, about 78 hours), else it would carry into the call count. It is
#: established at both ends: a single call of ``TIME_LIMIT`` ns or more never reaches a slot
#: (``_probe._bucket`` refuses it, the slow path counts the fault), and a request that lasted
#: ``TIME_LIMIT`` or more is dropped at its end (``_scope._finish``), so the probe time of
#: the calls it made in sequence fits. Only concurrent tasks of one request summing more
#: than 78 hours of probe time could wrap; that is outside what a request does.
CALLS_SHIFT = 48
ONE_CALL = 1 << CALLS_SHIFT
TIME_MASK = ONE_CALL - 1
TIME_LIMIT = ONE_CALL
assert TIME_MASK + 1 == TIME_LIMIT
assert TIME_LIMIT > 78 * 3600 * 10**9


def request_totals(acc: list[int], positions: tuple[int, ...]) -> tuple[int, int]:
    """A request's probe time (ns) and calls over its accumulator slots at ``positions``.

    The one decoder of the packing above outside the scope's end (``_scope._finish``
    decodes each slot inline, a call per site being a cost on every request).

    Example::

        probe_ns, calls = request_totals(scope.acc, hp.positions)
    """
    if not acc:  # a request named at its end, no probe having run: no slots were made
        return 0, 0
    probe_ns = calls = 0
    for pos in positions:
        slot = acc[pos]
        probe_ns += slot & TIME_MASK
        calls += slot >> CALLS_SHIFT
    return probe_ns, calls


#: Endpoint index of a scope opened before its name is known (``_scope.begin(None, ...)``).
#: It indexes no list: a probe call in such a scope fails its fast path on
#: ``site.by_endpoint[PENDING]`` and the slow path keeps it until the name is bound.
PENDING = 1 << 40


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


#: What a scope's end reads for one hypothesis and segment label, as one plain tuple
#: (unpacking beats attribute lookups): slow threshold (ns); int and float moments offsets
#: for requests not slow, then slow; per site (accumulator position, request offsets (not
#: slow, slow), share offset, calls offset); the slowest-requests lists; hypothesis id;
#: endpoint name.
Row = tuple[
    int, int, int, int, int, tuple[tuple[int, tuple[int, int], int, int], ...], "_Top", str, str
]


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
    #: The slowest-requests lists of (hypothesis, endpoint).
    top: _Top
    #: The scope end's row by segment label ("" when segments are not kept apart), made
    #: with the label's series on first use: the one record of those series' offsets.
    rows: dict[str, Row]


@dataclass(frozen=True)
class Plan:
    """What one endpoint's scope needs: accumulator positions and series offsets."""

    endpoint_index: int
    endpoint_offset: int
    #: Per relevant site: (per-call series offset, accumulator position).
    sites: dict[Site, tuple[int, int]]
    width: int
    hypotheses: tuple[HypothesisPlan, ...]
    #: Offset of the request counter by outcome: the status class ("2xx", "") for requests
    #: that raised nothing, (status class, exception class) otherwise; made on first use and
    #: kept per endpoint across plan rebuilds (see :data:`OUTCOMES`).
    outcomes: dict[object, int]
    #: The rows of the hypotheses that do not keep segments apart: all a request's end
    #: reads for them, prepared here.
    plain_rows: tuple[Row, ...] = ()
    #: The hypotheses that do: (allow-list, the one segment that counts or None, rows by
    #: label, plan), the row picked by the request's segment.
    segment_rows: tuple[tuple[frozenset[str], str | None, dict[str, Row], HypothesisPlan], ...] = ()
    #: False for the plan of requests the survey's sampling left out (see _survey).
    surveyed: bool = True
    #: The request's end for this plan (``_request_end.compile_end``); None: the generic
    #: ``_scope._finish``.
    end: Callable[[Any, int], None] | None = None


#: Distinct exception classes counted per endpoint before the rest count as "other".
MAX_ENDPOINT_EXCEPTIONS = 20
_exceptions_seen: dict[str, set[str]] = {}

KNOWN_ENDPOINTS: dict[str, int] = {m.NO_ENDPOINT: 0}
ENDPOINT_NAMES: list[str] = [m.NO_ENDPOINT]
#: Request counters by outcome, per endpoint index (the dicts plans share; see Plan).
OUTCOMES: list[dict[object, int]] = [{}]
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
# hypotheses (None: no survey), the fraction of requests surveyed, and the sampler
# for_request() calls when that fraction is below 1. Unsurveyed requests use the plans in
# UNSURVEYED, which leave the candidates out.
SURVEY_CANDIDATES: Callable[[str], list[Hypothesis]] | None = None
SURVEY_RATE = 1.0


def _every_request() -> bool:
    return True


SURVEY_SAMPLER: Callable[[], bool] = _every_request
UNSURVEYED: list[Plan | None] = [None]


def endpoint_index(name: str) -> int:
    """Index of an endpoint name, allocated on first sight.

    Past the series cap a new name gets the one ``__overflow__`` endpoint's index: its series
    would be the overflow series anyway, and the name lists, plans and per-site lists that
    grow with endpoint indices stay bounded by the cap.
    """
    found = KNOWN_ENDPOINTS.get(name)
    if found is not None:
        return found
    with _lock:
        found = KNOWN_ENDPOINTS.get(name)
        if found is None:
            if name != OVERFLOW and STORAGE.is_full():
                _count_collapsed(m.ENDPOINT_DURATION.name, (name,))
                return endpoint_index(OVERFLOW)
            found = len(ENDPOINT_NAMES)
            ENDPOINT_NAMES.append(name)
            PLANS.append(None)
            UNSURVEYED.append(None)
            OUTCOMES.append({})
            KNOWN_ENDPOINTS[name] = found
        return found


#: Series keys the storage refused (past the cap), with the overflow series it gave: each is
#: asked for once, so ``hypoprobe_series_overflow_total`` counts series, not the lookups of
#: plan rebuilds. Bounded: past the cap, endpoint and probe names collapse to
#: ``__overflow__`` (see endpoint_index, site), so the keys asked for are those of the
#: names that exist, which the cap bounds.
_REFUSED: dict[tuple[str, tuple[str, ...]], Series] = {}
_MAX_REFUSED = 100_000
#: The first series of each name collapsed past the cap, counted once as refused. Up to a
#: bound: past it, further new names are not counted (the counter then says "at least"),
#: so memory stays bounded whatever a client sends.
_COLLAPSED: set[tuple[str, tuple[str, ...]]] = set()
_MAX_COLLAPSED = 10_000


_DURATION_LAYOUT = m.ENDPOINT_DURATION.layout
assert _DURATION_LAYOUT is m.PROBE_DURATION.layout


def _count_collapsed(metric: str, labels: tuple[str, ...]) -> None:
    """Count the first series of a name collapsed past the cap (a duration histogram)."""
    key = (metric, labels)
    if key not in _COLLAPSED and len(_COLLAPSED) < _MAX_COLLAPSED:
        _COLLAPSED.add(key)
        # Full: counted, and the metric's overflow series given (made if it is the first).
        STORAGE.series(metric, labels, _DURATION_LAYOUT)


def _series(
    metric: str,
    labels: tuple[str, ...],
    layout: BucketLayout | None = None,
    *,
    ints: int = 0,
    floats: int = 0,
) -> Series:
    """``STORAGE.series``, asked once per refused key (called with ``_lock`` held)."""
    key = (metric, labels)
    found = _REFUSED.get(key)
    if found is not None:
        if STORAGE.is_full():
            return found
        _REFUSED.clear()  # the cap was raised: ask again
    made = STORAGE.series(metric, labels, layout, ints=ints, floats=floats)
    if made.labels != labels and len(_REFUSED) < _MAX_REFUSED:
        _REFUSED[key] = made
    return made


def _deadline(hyp: Hypothesis | None, clock_now: int) -> int:
    if hyp is None or hyp.expires is None:
        return NEVER
    remaining = hyp.expires.timestamp() - _clock.wall()
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
            if name != OVERFLOW and STORAGE.is_full():
                # Past the series cap a new probe name is the hypothesis' one overflow
                # site: its series would overflow anyway, and sites (each one a slot in
                # every plan of the hypothesis) stay bounded by the cap.
                _count_collapsed(m.PROBE_DURATION.name, (hypothesis_id, name, m.NO_ENDPOINT))
                return site(hypothesis_id, OVERFLOW)
            from .._config import HOLDER

            found = Site(hypothesis_id, name)
            call_series(found, 0)
            try:
                now = HOLDER.config.clock()
            except Exception:  # a probe made at run time: never raise into the app
                _faults.record("clock")
                now = NEVER  # no deadline armed; expiry is still checked by date
            _arm(found, REGISTRY.get(hypothesis_id), now)
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
    assert eidx < PENDING, "a scope's pending index never reaches a site's list"
    with _lock:
        if len(s.by_endpoint) <= eidx:
            s.by_endpoint.extend([None] * (eidx + 1 - len(s.by_endpoint)))
        offset = s.by_endpoint[eidx]
        if offset is None:
            labels = (s.hypothesis_id, s.name, ENDPOINT_NAMES[eidx])
            series = _series(m.PROBE_DURATION.name, labels, m.PROBE_DURATION.layout)
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
                offset = _series(m.PROBE_EXCEPTIONS.name, labels, ints=1).int_offset
                s.exceptions.setdefault(cls, offset)
    ints = getattr(TLS, "ints", None)
    if ints is None or len(ints) <= offset:
        ints, _ = STORAGE.shard()
    ints[offset] += 1


def segment_series(hp: HypothesisPlan, label: str) -> Row:
    """The scope end's row of a hypothesis plan for one segment label; its series are
    allocated on first use."""
    with _lock:
        found = hp.rows.get(label)
        if found is not None:
            return found
        hyp, endpoint = hp.hypothesis, hp.endpoint
        sites = []
        for pos, s in zip(hp.positions, SITES_BY_HYPOTHESIS.get(hyp.id, ()), strict=False):
            base = (hyp.id, s.name, endpoint, label)
            req = tuple(
                _series(m.REQUEST_PROBE.name, (*base, slow), m.REQUEST_PROBE.layout)
                for slow in ("false", "true")
            )
            share = _series(m.REQUEST_SHARE.name, base, m.REQUEST_SHARE.layout)
            calls = _series(m.REQUEST_CALLS.name, base, m.REQUEST_CALLS.layout)
            offsets = (req[0].int_offset, req[1].int_offset)
            sites.append((pos, offsets, share.int_offset, calls.int_offset))
        moments = [
            _series(
                m.MOMENTS_SERIES,
                (hyp.id, endpoint, label, slow),
                ints=len(m.INT_MOMENTS),
                floats=len(m.FLOAT_MOMENTS),
            )
            for slow in ("false", "true")
        ]
        made: Row = (
            hp.slow_ns,
            moments[0].int_offset,
            moments[0].float_offset,
            moments[1].int_offset,
            moments[1].float_offset,
            tuple(sites),
            hp.top,
            hyp.id,
            endpoint,
        )
        hp.rows[label] = made
        return made


def _hypothesis_plan(
    hyp: Hypothesis, endpoint: str, first_pos: int
) -> tuple[HypothesisPlan, dict[Site, int]]:
    from .._observers import _slowest  # it imports this module's constants

    sites = SITES_BY_HYPOTHESIS.get(hyp.id, [])
    positions = {s: first_pos + i for i, s in enumerate(sites)}
    made = HypothesisPlan(
        hyp,
        endpoint,
        NEVER if hyp.slow_threshold is None else int(hyp.slow_threshold * 1e9),
        tuple(positions.values()),
        None if hyp.segments is None else frozenset(hyp.segments),
        hyp.segment,
        _slowest.top(hyp.id, endpoint),
        {},
    )
    # Series exist (at zero) before the first request, so rate() has a start; segment
    # labels beyond the first appear with their first request.
    segment_series(made, "" if hyp.segments is None else (hyp.segment or hyp.segments[0]))
    return made, positions


#: Compiles a plan's end of request (``_request_end.compile_end``, set when that module is
#: imported: it reads ``_scope``, which imports this one).
COMPILE_END: Callable[[Plan], Callable[[Any, int], None]] | None = None
#: Plan builds in progress on the thread holding the lock. A build that starts inside
#: another (a signal handler's request, say) leaves its plan uncompiled: compiling takes
#: about a millisecond, and handlers arriving faster than that would nest without end.
#: The interrupted build stores its compiled plan over it.
_building = 0


def plan(eidx: int, surveyed: bool = True) -> Plan:
    """The plan for an endpoint index, built on first use after any change.

    ``surveyed=False``: the plan of a request the survey's sampling left out.
    """
    global _building
    with _lock:
        found = PLANS[eidx] if surveyed else UNSURVEYED[eidx]
        if found is not None:
            return found
        _building += 1
        try:
            return _build(eidx, surveyed)
        finally:
            _building -= 1


def _build(eidx: int, surveyed: bool) -> Plan:
    """Build and store the plan (called by plan(), the lock held)."""
    endpoint = ENDPOINT_NAMES[eidx]
    endpoint_series = _series(m.ENDPOINT_DURATION.name, (endpoint,), m.ENDPOINT_DURATION.layout)
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
    made = Plan(
        eidx,
        endpoint_series.int_offset,
        slots,
        width,
        tuple(hyps),
        OUTCOMES[eidx],
        tuple(hp.rows[""] for hp in hyps if hp.allowed is None),
        tuple((hp.allowed, hp.only, hp.rows, hp) for hp in hyps if hp.allowed is not None),
        surveyed,
    )
    outcome_series(made, "")  # the common case exists (at zero) from the start
    if COMPILE_END is not None and _building == 1:  # not nested in another build
        made = dataclasses.replace(made, end=COMPILE_END(made))
    if surveyed:
        PLANS[eidx] = made
    else:
        UNSURVEYED[eidx] = made
    return made


def for_request(eidx: int) -> Plan:
    """The plan a request of the endpoint starts with; the survey's sampling decided here.

    Called once per request, when its endpoint is known (the scope's start, or the bind of
    a name learnt after routing), so the surveyed requests are a random sample.
    """
    found = PLANS[eidx] or plan(eidx)
    if SURVEY_RATE < 1.0 and not SURVEY_SAMPLER():
        found = UNSURVEYED[eidx] or plan(eidx, False)
    return found


#: The plan of a scope whose name is not known yet: no site has a slot in it.
PENDING_PLAN = Plan(PENDING, 0, {}, 0, (), {})


def outcome_series(p: Plan, key: object) -> int:
    """Offset of an endpoint's request counter for an outcome key (see Plan.outcomes)."""
    with _lock:
        found = p.outcomes.get(key)
        if found is not None:
            return found
        endpoint = ENDPOINT_NAMES[p.endpoint_index]
        status: str
        exception: str
        status, exception = (key, "") if isinstance(key, str) else key  # type: ignore[misc]
        if exception:
            seen = _exceptions_seen.setdefault(endpoint, set())
            if exception not in seen and len(seen) >= MAX_ENDPOINT_EXCEPTIONS:
                exception = "other"
            seen.add(exception)
        labels = (endpoint, status, exception)
        offset = _series(m.ENDPOINT_REQUESTS.name, labels, ints=1).int_offset
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
    from .._config import HOLDER

    now = HOLDER.config.clock()
    with _lock:
        for s in SITES_BY_HYPOTHESIS.get(hyp.id, ()):
            _arm(s, hyp, now)
        invalidate()


REGISTRY.add_listener(on_registered)
