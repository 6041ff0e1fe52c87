"""Endpoint scopes: the per-request accumulator, and what a request records when it ends.

The current scope lives in a ContextVar, so each thread and each asyncio task sees its own
request. Probes add their time and calls into the scope's accumulator (a flat list, two
slots per relevant probe); at the scope's end the request's endpoint time, and for every
hypothesis that names the endpoint its probe time, share, calls and moments, are recorded
into the calling thread's shard.

Nested scopes: only the outermost scope of a context is a request. An inner
``endpoint(...)`` records nothing and probe time keeps flowing to the outer request.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast

from .._observers import _exemplars, _slowest
from ..errors import ConfigurationError
from . import _buckets, _clock, _faults, _plan
from ._hypothesis import OTHER_SEGMENT, validate_endpoint
from ._storage import STORAGE, TLS

__all__ = ["endpoint", "segment"]

F = TypeVar("F", bound=Callable[..., Any])

#: Hot-path switches, rebound by ``configure()``.
ENABLED = True
CLOCK: Callable[[], int] = time.perf_counter_ns


class Scope:
    """One request in flight: which endpoint, when it began, and what probes added.

    What every request sets or its end reads lives in slots; what few set and only they read
    (segment, customer, re-entry) is a class default until set (then in the instance
    ``__dict__``), so a request pays for what it uses.
    """

    __slots__ = (
        "__dict__",
        "acc",
        "early",
        "eidx",
        "exception",
        "opener",
        "pending",
        "plan",
        "sites",
        "start",
        "state",
        "status",
        "token",
    )

    #: The request's segment (hypoprobe.segment); only allow-listed values become labels.
    segment: str | None = None
    #: (account id, value) from hypoprobe.customer(); read once at the end, never kept.
    customer: tuple[str | int, float | None] | None = None
    #: How often the endpoint object that opened this scope was entered again inside it
    #: (those exits are ignored).
    reentered: int = 0

    def __init__(self, plan: _plan.Plan, start: int, state: int = 0) -> None:
        # begin() sets these same slots without calling here: keep the two in step.
        self.plan = plan
        self.eidx = plan.endpoint_index
        self.sites = plan.sites
        self.start = start
        #: Response status class ("2xx"), set by the web integrations; "" if none.
        self.status = ""
        #: The endpoint object that opened this scope and the token that made it current.
        #: Kept per request, so one endpoint object can serve concurrent requests.
        self.opener: object = None
        self.token: Token[Scope | None] | None = None
        #: While the endpoint name is not known yet (see begin()): what names it later.
        self.pending: _Pending | None = None
        #: Bits: FINISHED (recorded), MIDDLEWARE, HANDED_OFF, ITERATING (see below).
        self.state = state
        #: Class of the exception that ended the request; "" if none. (Slots, though few
        #: requests set them: every request's end reads them, and a slot reads fastest.)
        self.exception = ""
        #: Probe calls made before the name was known: (site, ns), recorded at bind().
        self.early: list[tuple[_plan.Site, int]] | None = None
        #: Per relevant site: ``calls << CALLS_SHIFT | probe_ns`` (see _plan.CALLS_SHIFT).
        #: A plan without sites (a pending scope's, say) shares one empty list: nothing
        #: indexes it.
        width = plan.width
        self.acc = [0] * width if width else _NO_SITES


_NO_SITES: list[int] = []

#: Scope.state bits. FINISHED: the request has been recorded (finish() ran); further
#: finish() calls do nothing. The others are set by web middlewares: opened by one
#: (MIDDLEWARE: the next request of its context may reclaim it, see begin()), its body
#: handed to the server (HANDED_OFF), and the server iterating that body (ITERATING).
FINISHED = 1
MIDDLEWARE = 2
HANDED_OFF = 4
ITERATING = 8


#: How a scope opened before routing gets its name: (fallback name, resolver or None, the
#: resolver's argument). A plain tuple: most framework requests make one.
_Pending = tuple[str, "Resolver | None", Any]


#: A function naming a pending scope from ``arg`` once the framework has routed the
#: request: the endpoint name, or None while (or because) no route is known.
Resolver = Callable[[Any], "str | None"]

#: Probe calls kept per request before its name is known; the rest count a fault.
MAX_EARLY_CALLS = 1000

CURRENT: ContextVar[Scope | None] = ContextVar("hypoprobe_scope", default=None)
_PENDING_PLAN = _plan.PENDING_PLAN
_new = object.__new__
_KNOWN_ENDPOINTS = _plan.KNOWN_ENDPOINTS
_PLANS = _plan.PLANS

#: Status class by the status a framework gave (``200``, ``"404 Not Found"``), bounded.
_STATUS_CLASS: dict[object, str] = {}
_MAX_STATUS_CLASSES = 512


def set_status(scope: Scope, status: object) -> None:
    """Record a web response's status class on a request (``200``, ``"404 Not Found"``)."""
    try:
        found = _STATUS_CLASS.get(status)
    except TypeError:  # unhashable
        found = None
    if found is None:
        try:
            code = int(str(status)[:3])
        except ValueError:
            _faults.record("status_not_a_code")
            return
        found = f"{code // 100}xx" if 100 <= code <= 599 else "other"
        if len(_STATUS_CLASS) < _MAX_STATUS_CLASSES:
            with contextlib.suppress(TypeError):
                _STATUS_CLASS[status] = found
    scope.status = found


def refresh(scope: Scope) -> None:
    """Move a request in flight onto its endpoint's current plan (slow path only).

    A probe first used, or a hypothesis registered, while the request runs is missing from
    the plan the request started with; what was accumulated so far carries over.
    """
    if scope.pending is not None:
        return  # no plan yet: bind() takes the current one
    current = _plan.plan(scope.eidx, scope.plan.surveyed)
    if current is scope.plan:
        return
    acc = [0] * current.width
    for site, (_, old_pos) in scope.plan.sites.items():
        slot = current.sites.get(site)
        if slot is not None:
            acc[slot[1]] = scope.acc[old_pos]
    scope.plan, scope.sites, scope.acc = current, current.sites, acc


# -- the core's request API, for integrations ------------------------------------------------
#
# ``endpoint`` is a context manager; a middleware needs the three steps apart: begin() when
# the request enters (before the framework routes it), bind() when the route is known, and
# finish() when the response is done (possibly from another task), then detach() in the
# context that began. None of them raises.


def _index(name: object, fallback: str) -> int:
    """Endpoint index of ``name``; of ``fallback`` (counting a fault) if it is invalid."""
    eidx = _plan.KNOWN_ENDPOINTS.get(name) if type(name) is str else None
    if eidx:  # 0 is the reserved "<none>"
        return eidx
    try:
        return _plan.endpoint_index(validate_endpoint(name))
    except ConfigurationError:
        _faults.record("integration_name")
        return _plan.endpoint_index(validate_endpoint(fallback))


def begin(
    name: str | None,
    fallback: str,
    resolve: Resolver | None = None,
    arg: Any = None,
    state: int = 0,
) -> Scope | None:
    """Open the current context's request scope now; None when nested, disabled or faulty.

    ``name`` None: the name is bound later, by :func:`bind` or, the first time a probe
    needs it, by ``resolve(arg)`` (the framework's matched route); a request never named
    ends as ``fallback`` (``"GET <unmatched>"``). Probe calls made before the name is known
    are kept and recorded under it. An invalid name counts a fault and uses ``fallback``.
    ``state``: the scope's first state bits; a middleware passes ``MIDDLEWARE``, so that a
    request of its context never ended there (a body the server never closed, say) is
    reclaimed when the next one begins instead of making it a nested scope.

    Example (an integration)::

        scope = _scope.begin(None, "GET <unmatched>", route_of, environ)
        ...  # the framework routes, then: _scope.bind(scope, "GET /campaigns/{id}")
        _scope.finish(scope)
        _scope.detach(scope)
    """
    if not ENABLED:
        return None
    try:
        prev = CURRENT.get()
        if prev is not None and not (prev.state & MIDDLEWARE and _reclaim(prev)):
            return None  # nested in another request
        start = CLOCK()
        if start >= _plan.NEXT_DEADLINE:
            _plan.expire_due(start)
        # Scope.__init__, inlined: a class call with a Python __init__ costs about as much
        # again as the stores (test_scope_made_by_begin_has_every_slot keeps them in step).
        scope = _new(Scope)
        if name is None:
            plan = _PENDING_PLAN
            scope.pending = (fallback, resolve, arg)
        else:
            eidx = _KNOWN_ENDPOINTS.get(name) if type(name) is str else None
            if not eidx:  # unseen, invalid or the reserved "<none>"
                eidx = _index(name, fallback)
            plan = _plan.for_request(eidx)
            scope.pending = None
        scope.plan = plan
        scope.eidx = plan.endpoint_index
        scope.sites = plan.sites
        scope.start = start
        scope.status = ""
        scope.opener = None
        scope.state = state
        scope.exception = ""
        scope.early = None
        width = plan.width
        scope.acc = [0] * width if width else _NO_SITES
        scope.token = CURRENT.set(scope)
        return scope
    except Exception:  # never let instrumentation break the request
        _faults.record("scope_enter")
        return None


def _reclaim(scope: Scope) -> bool:
    """A middleware's request still current as the next one begins: True once unset.

    Left alone, a request that will never be ended in this context makes every later
    request of it a nested scope recording nothing.
    """
    state = scope.state
    if state & FINISHED:  # finished elsewhere, not yet detached here: detach here
        detach(scope)
    elif state & HANDED_OFF and not state & ITERATING:
        # A body the server never closed (PEP 3333 says it must): its end is unknown,
        # so drop it rather than record a made-up duration.
        _faults.record("integration_body_not_closed")
        scope.state = state | FINISHED
        detach(scope)
    return CURRENT.get() is None


def bind(scope: Scope, name: str | None) -> None:
    """Name a pending scope (None: its fallback); a scope already named is left alone."""
    pending = scope.pending
    if pending is None:
        return
    try:
        eidx = _plan.KNOWN_ENDPOINTS.get(name) if type(name) is str else None
        if not eidx:  # unseen, invalid, None (unmatched) or the reserved "<none>"
            eidx = _index(name, pending[0]) if name else _index(pending[0], "")
        plan = _plan.for_request(eidx)
        scope.plan, scope.eidx, scope.sites = plan, eidx, plan.sites
        if plan.width:
            scope.acc = [0] * plan.width
        scope.pending = None
        early = scope.early
        if early:
            _replay(scope, early)
    except Exception:
        scope.pending = None
        _faults.record("scope_bind")


def _replay(scope: Scope, early: list[tuple[_plan.Site, int]]) -> None:
    """Record the probe calls a scope kept while unnamed, as the probe would have."""
    ints, _ = STORAGE.shard()
    acc, sites = scope.acc, scope.sites
    for site, dt in early:
        if site.off:
            continue
        slot = sites.get(site)
        if slot is None:
            off = _plan.call_series(site, scope.eidx)
            ints, _ = STORAGE.shard()  # a series may have been made: re-read the alias
        else:
            off = slot[0]
        ints[off + bisect_left(_DURATION_BOUNDS, dt)] += 1
        ints[off + _DURATION_SUM] += dt
        if slot is not None:
            acc[slot[1]] += dt + _ONE_CALL


def resolve_now(scope: Scope) -> bool:
    """Name a pending scope if the framework has routed it by now; True once it is named."""
    pending = scope.pending
    if pending is None:
        return True
    fallback, resolve, arg = pending
    if resolve is None:
        return False
    try:
        name = resolve(arg)
    except Exception:
        _faults.record("integration_name")
        scope.pending = (fallback, None, arg)
        name = None
    if name:
        bind(scope, name)
    return scope.pending is None


def keep_early(scope: Scope, site: _plan.Site, dt: int) -> bool:
    """A probe call of ``dt`` ns in a pending scope: name the scope if the route is known
    now (then the caller records as usual: False), else keep the call for bind() (True).
    """
    pending = scope.pending
    if pending is None:
        return False
    if pending[1] is not None and resolve_now(scope):
        return False  # bound: record as usual
    early = scope.early
    if early is None:
        early = scope.early = []
    if len(early) < MAX_EARLY_CALLS:
        early.append((site, dt))
    else:
        _faults.record("probe_before_name_dropped")
    return True


def settle(scope: Scope) -> None:
    """Name a pending scope now, by its resolver, else its fallback (the route is final).

    For integrations whose framework forgets the route before the request ends (Flask
    clears its request from the environ when its context pops).
    """
    pending = scope.pending
    if pending is None:
        return
    name = None
    _, resolve, arg = pending
    if resolve is not None:
        try:
            name = resolve(arg)
        except Exception:
            _faults.record("integration_name")
    bind(scope, name)


def finish(scope: Scope, exc: BaseException | None = None, and_detach: bool = False) -> None:
    """Record the request as ended now, from any context; only the first call records.

    ``exc``: the exception that ended the request, counted by class. A scope still unnamed
    is named by its resolver, else its fallback. ``and_detach``: then unset the scope in
    this context, which began it (what :func:`end` does), in the same call: a middleware's
    request ends here once per request.

    Example (a middleware, after the framework answered)::

        _scope.finish(scope, None, True)
    """
    state = scope.state
    if not state & FINISHED:  # an ASGI request ends twice, say: the clock only once
        try:
            end = CLOCK()
            scope.state = state | FINISHED
            pending = scope.pending
            if pending is not None:  # most framework requests are named here
                # settle(), inlined for a name seen before: the request is over, so its
                # probe slots are never made (observers read an empty accumulator as "no
                # probe").
                _, resolve, arg = pending
                name = None
                if resolve is not None:
                    try:
                        name = resolve(arg)
                    except Exception:
                        _faults.record("integration_name")
                eidx = _KNOWN_ENDPOINTS.get(name) if type(name) is str else None
                if eidx and scope.early is None and _plan.SURVEY_RATE >= 1.0:
                    scope.plan = _PLANS[eidx] or _plan.plan(eidx)
                    scope.eidx = eidx
                    scope.pending = None
                else:  # unseen or no name, probe calls to replay, or the survey samples
                    bind(scope, name)
            if exc is not None:
                scope.exception = _plan.exception_name(type(exc))
            (scope.plan.end or _finish)(scope, end - scope.start)
        except Exception:
            _faults.record("scope_exit")
    if and_detach:
        token = scope.token
        if token is not None:
            try:  # detach(), inlined for the context that began
                CURRENT.reset(token)
                scope.token = None
            except Exception:
                detach(scope)


def end(scope: Scope, exc: BaseException | None = None) -> None:
    """:func:`finish` unless done, then :func:`detach`: the request ended where it began.

    ``exc``: the exception that ended the request, counted by class.
    """
    finish(scope, exc, True)


def detach(scope: Scope) -> bool:
    """Unset the scope in the context :func:`begin` ran in; False from another context.

    From a copy of that context (a child task) the scope is unset there too, and False is
    returned: the beginning context still holds it.
    """
    token = scope.token
    if token is None:
        return True
    try:
        CURRENT.reset(token)
    except ValueError:  # not begin()'s context
        if CURRENT.get() is scope:
            CURRENT.set(None)
        return False
    except Exception:
        _faults.record("scope_context")
        return False
    scope.token = None
    return True


_DURATION_BOUNDS = _buckets.DURATION.bounds
_DURATION_SUM = _buckets.DURATION.sum_slot
_SHARE_BOUNDS = _buckets.SHARE.bounds
_SHARE_SUM = _buckets.SHARE.sum_slot
_CALLS_BOUNDS = _buckets.CALLS.bounds
_CALLS_SUM = _buckets.CALLS.sum_slot
_CALLS_SHIFT = _plan.CALLS_SHIFT
_TIME_MASK = _plan.TIME_MASK
_TIME_LIMIT = _plan.TIME_LIMIT
_ONE_CALL = _plan.ONE_CALL
_PPB = 1_000_000_000
_OTHER = OTHER_SEGMENT


def _finish(scope: Scope, elapsed: int) -> None:
    """Record one finished request, in one pass over rows its plan prepared.

    Endpoint time and outcome, then per hypothesis its moments, its per-request data for
    each probe called, its slowest-request lists and (on a sampled trace) the exemplars of
    every bucket the request landed in. A probe not called in the request is not touched
    here: its zero observations (probe time 0, share 0, calls 0) are the requests counted in
    the hypothesis' moments but not in the probe's histograms, and collection adds them to
    the first bucket. That keeps a request's cost proportional to the probes it called, not
    to the probes that exist.
    """
    if elapsed < 0:
        _faults.record("clock_backwards")
        return
    if elapsed >= _TIME_LIMIT:  # the accumulator's limit (see _plan.CALLS_SHIFT)
        _faults.record("request_over_time_limit")
        return
    try:
        ints, floats = TLS.shard
        short = len(ints) < STORAGE.int_slots or len(floats) < STORAGE.float_slots
    except AttributeError:
        short = True
    if short:  # a new thread, or series created since this thread's shard was sized
        ints, floats = STORAGE.shard()
    plan = scope.plan
    off = plan.endpoint_offset
    bucket = off + bisect_left(_DURATION_BOUNDS, elapsed)
    ints[bucket] += 1
    ints[off + _DURATION_SUM] += elapsed
    exception = scope.exception
    outcome: object = (scope.status, exception) if exception else scope.status
    off = plan.outcomes.get(outcome)  # type: ignore[assignment]
    if off is None:
        off = _plan.outcome_series(plan, outcome)
        ints, floats = STORAGE.shard()  # a series was made: re-read the aliases
    ints[off] += 1
    rows = plan.plain_rows
    if plan.segment_rows:
        segment = scope.segment
        picked = []
        for allowed, only, by_label, hp in plan.segment_rows:
            if only is not None and segment != only:
                continue  # the hypothesis is about another segment's requests
            label = segment if segment is not None and segment in allowed else _OTHER
            row = by_label.get(label)
            if row is None:  # the first request of this segment label
                _plan.segment_series(hp, label)
                ints, floats = STORAGE.shard()  # series were made: re-read the aliases
                row = by_label[label]
            picked.append(row)
        rows = (*rows, *picked)
    kept: dict[int, tuple[float, int, int, float]] | None = None
    span: Any = None
    trace_id = span_id = 0
    now = 0.0
    if TRACE and _otel_context():  # an empty OpenTelemetry context: no span, decided
        try:
            found = _exemplars.traced()
        except Exception:  # never let a trace lookup break the request
            _faults.record("exemplars")
            found = None
        if found is not None:
            span, trace_id, span_id = found
            if _exemplars.EXEMPLARS:
                kept = _exemplars._KEPT
                now = _clock.wall()
                kept[bucket] = (elapsed / _PPB, trace_id, span_id, now)
    acc = scope.acc
    # A request that called no probe (a cache hit, another code path) skips every site.
    called_any = any(acc)
    e_seconds = elapsed / _PPB
    e_squared = e_seconds * e_seconds
    for slow_ns, m0, f0, m1, f1, sites, top, hid, endpoint_name in rows:
        if elapsed > slow_ns:
            off, fo, slow = m1, f1, 1
        else:
            off, fo, slow = m0, f0, 0
        ints[off] += 1
        ints[off + 3] += elapsed
        floats[fo + 1] += e_squared
        total = 0
        calls = 0
        for pos, request_offsets, share_off, calls_off in sites if called_any else ():
            slot = acc[pos]
            if not slot:
                continue
            # The slot's packing (_plan.CALLS_SHIFT), decoded inline as request_totals does.
            p = slot & _TIME_MASK
            n = slot >> _CALLS_SHIFT
            total += p
            calls += n
            req_off = request_offsets[slow]
            bucket = req_off + bisect_left(_DURATION_BOUNDS, p)
            ints[bucket] += 1
            ints[req_off + _DURATION_SUM] += p
            share = p * _PPB // elapsed if elapsed > 0 else 0
            share_bucket = share_off + bisect_left(_SHARE_BOUNDS, share)
            ints[share_bucket] += 1
            ints[share_off + _SHARE_SUM] += share
            ints[calls_off + bisect_left(_CALLS_BOUNDS, n)] += 1
            ints[calls_off + _CALLS_SUM] += n
            if kept is not None:
                kept[bucket] = (p / _PPB, trace_id, span_id, now)
                kept[share_bucket] = (share / _PPB, trace_id, span_id, now)
        if calls:
            ints[off + 1] += 1
            ints[off + 2] += total
            p_seconds = total / _PPB
            floats[fo] += p_seconds * p_seconds
            floats[fo + 2] += p_seconds * e_seconds
            if SLOWEST:
                ratio = total / elapsed if elapsed > 0 else 0.0
                if ratio > top.share_floor or elapsed > top.latency_floor:
                    _offer_slowest(top, hid, endpoint_name, elapsed, total, calls, trace_id)
        elif SLOWEST and elapsed > top.latency_floor:  # share 0: only the latency list
            _offer_slowest(top, hid, endpoint_name, elapsed, 0, 0, trace_id)
    if OBSERVERS:
        notify(OBSERVERS, scope, elapsed, span)


def notify(observers: Observers, scope: Scope, elapsed: int, span: Any) -> None:
    """Call a request end's observers; a fault in one is counted under its kind."""
    for kind, observer in observers:
        try:
            observer(scope, elapsed, span)
        except Exception:
            _faults.record(kind)


def _offer_slowest(top: _slowest._Top, hid: str, endpoint_name: str, *request: int) -> None:
    elapsed, total, calls, trace_id = request
    try:
        ratio = total / elapsed if elapsed > 0 else 0.0
        _slowest._admit(top, hid, endpoint_name, (elapsed, total, calls, ratio), trace_id)
    except Exception:
        _faults.record("slowest")


#: A request end's observers after the recording loop, as (fault kind, observer), each
#: called with the scope, its elapsed ns and its sampled span (or None), and deciding itself
#: whether the request concerns it. Registered only while in use (span annotation when
#: configured, customers from the first hypoprobe.customer() call), so a request pays one
#: empty-tuple loop for them otherwise. Exemplar buckets and the slowest lists stay inline
#: above: they need each site's decoded slot, and a call per site would cost every request.
Observers = tuple[tuple[str, Callable[[Scope, int, Any], None]], ...]
OBSERVERS: Observers = ()


def observe(kind: str, observer: Callable[[Scope, int, Any], None], on: bool = True) -> None:
    """Register (or with ``on=False`` remove) a request-end observer; idempotent.

    A fault in the observer is counted under ``kind``; the tuple is replaced whole, so a
    request ending meanwhile reads either the old or the new one.
    """
    global OBSERVERS
    kept = tuple(entry for entry in OBSERVERS if entry[1] is not observer)
    OBSERVERS = (*kept, (kind, observer)) if on else kept


def configure_request_end(exemplars: bool, annotate: bool, slowest: int) -> None:
    """configure(): what a request's end does besides recording (read as two globals)."""
    global SLOWEST, TRACE
    TRACE = exemplars or annotate
    SLOWEST = slowest > 0


#: configure(exemplars= or annotate_spans=): look for a sampled span at a request's end.
TRACE = True
#: configure(slowest_requests=) > 0.
SLOWEST = True


def _otel_context_getter() -> Callable[[], object]:
    """OpenTelemetry's current context, read straight from its ContextVar when it has one.

    ``opentelemetry.context.get_current()`` is two Python calls around that read; at every
    request's end the read alone says "no span" for an untraced request. Any other runtime
    context (``OTEL_PYTHON_CONTEXT``) goes through the public function.
    """
    from opentelemetry import context as otel_context

    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if isinstance(var, ContextVar):
        return var.get
    return otel_context.get_current


_otel_context = _otel_context_getter()


class endpoint:
    """Open an endpoint scope: one request or job whose latency is the share's denominator.

    Use it as a context manager (``with`` / ``async with``) or as a decorator on a sync or
    async function. Probe time inside the scope is attributed to this request, per thread
    and per asyncio task. Only the outermost scope counts; nested ones are ignored.

    Example::

        with hypoprobe.endpoint("GET /campaigns"):
            render_campaigns()

        @hypoprobe.endpoint("job send_newsletter")
        def send_newsletter(batch): ...
    """

    __slots__ = ("_eidx", "name")

    def __init__(self, name: str) -> None:
        # A name seen before was validated then: a request pays one dict lookup.
        eidx = _plan.KNOWN_ENDPOINTS.get(name) if type(name) is str else None
        if not eidx:  # unseen, or 0: the reserved "<none>"
            eidx = _plan.endpoint_index(validate_endpoint(name))
        self.name = name
        self._eidx = eidx

    @classmethod
    def _fresh(cls, name: str, eidx: int) -> endpoint:
        """A new, already validated scope for one call of a decorated function."""
        made = cls.__new__(cls)
        made.name = name
        made._eidx = eidx
        return made

    def __enter__(self) -> endpoint:
        current = CURRENT.get()
        if current is not None:
            if current.opener is self:
                current.reentered += 1
            return self
        if not ENABLED:
            return self
        try:
            start = CLOCK()
            if start >= _plan.NEXT_DEADLINE:
                _plan.expire_due(start)
            scope = Scope(_plan.for_request(self._eidx), start)
            scope.opener = self
            scope.token = CURRENT.set(scope)
        except Exception:  # never let instrumentation break the request
            _faults.record("scope_enter")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = CURRENT.get()
        if scope is None or scope.opener is not self:
            return  # an ignored inner scope
        if scope.reentered:
            scope.reentered -= 1
            return
        # The scope stops being current first, whatever fails after: a scope left current
        # would make every later request of this context an inner scope recording nothing.
        try:
            CURRENT.reset(scope.token)  # type: ignore[arg-type]
        except Exception:  # exited in another context than entered
            CURRENT.set(None)
            _faults.record("scope_context")
        try:  # finish(), inlined: an endpoint scope is never pending, nor finished twice
            end = CLOCK()
            if exc is not None:
                scope.exception = _plan.exception_name(type(exc))
            (scope.plan.end or _finish)(scope, end - scope.start)
        except Exception:
            _faults.record("scope_exit")

    async def __aenter__(self) -> endpoint:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigurationError(
                f"@hypoprobe.endpoint cannot scope the generator function {fn.__qualname__}: "
                "its body runs after the call returns; open the scope inside it instead"
            )
        name, eidx = self.name, self._eidx
        fresh = endpoint._fresh
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_scoped(*args: Any, **kwargs: Any) -> Any:
                async with fresh(name, eidx):
                    return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)

            return cast(F, async_scoped)

        @functools.wraps(fn)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            with fresh(name, eidx):
                return fn(*args, **kwargs)

        return cast(F, scoped)


def segment(value: str) -> None:
    """Tag the current request with a segment ("for these users"), such as a plan or tier.

    Hypotheses that declare ``segments=[...]`` keep their shares per segment; a value not
    on a hypothesis' allow-list is counted as ``other``, so a raw user id or e-mail never
    becomes a label. Outside an endpoint scope, or with a value that is not a string, it
    does nothing (and never raises).

    Example::

        with hypoprobe.endpoint("GET /campaigns"):
            hypoprobe.segment(account.plan)  # "free", "pro" or "enterprise"
            ...
    """
    scope = CURRENT.get()
    if scope is None:
        return
    if isinstance(value, str):
        scope.segment = value
    else:
        _faults.record("segment_not_a_string")
