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

import functools
import inspect
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast

from . import _buckets, _exemplars, _faults, _plan
from ._hypothesis import OTHER_SEGMENT, validate_endpoint
from ._storage import STORAGE, TLS
from .errors import ConfigurationError

__all__ = ["endpoint", "segment"]

F = TypeVar("F", bound=Callable[..., Any])

#: Hot-path switches, rebound by ``configure()``.
ENABLED = True
CLOCK: Callable[[], int] = time.perf_counter_ns


class Scope:
    """One request in flight: which endpoint, when it began, and what probes added."""

    __slots__ = (
        "acc",
        "eidx",
        "exception",
        "opener",
        "plan",
        "reentered",
        "segment",
        "sites",
        "start",
        "status",
        "token",
    )

    def __init__(self, plan: _plan.Plan, start: int) -> None:
        self.plan = plan
        self.eidx = plan.endpoint_index
        self.sites = plan.sites
        self.start = start
        #: The request's segment (hypoprobe.segment); only allow-listed values become labels.
        self.segment: str | None = None
        #: Response status class ("2xx"), set by the web integrations; "" if none.
        self.status = ""
        #: Class of the exception that ended the request; "" if none.
        self.exception = ""
        #: The endpoint object that opened this scope, the token that made it current, and
        #: how often that same object was entered again inside it (those exits are ignored).
        #: Kept per request, so one endpoint object can serve concurrent requests.
        self.opener: object = None
        self.token: Token[Scope | None] | None = None
        self.reentered = 0
        #: Per relevant site: ``calls << CALLS_SHIFT | probe_ns`` (see _plan.CALLS_SHIFT).
        self.acc = [0] * plan.width


CURRENT: ContextVar[Scope | None] = ContextVar("hypoprobe_scope", default=None)


def set_status(scope: Scope, status: object) -> None:
    """Record a web response's status class on a request (``200``, ``"404 Not Found"``)."""
    try:
        code = int(str(status)[:3])
    except ValueError:
        _faults.record("status_not_a_code")
        return
    scope.status = f"{code // 100}xx" if 100 <= code <= 599 else "other"


def refresh(scope: Scope) -> None:
    """Move a request in flight onto its endpoint's current plan (slow path only).

    A probe first used, or a hypothesis registered, while the request runs is missing from
    the plan the request started with; what was accumulated so far carries over.
    """
    current = _plan.plan(scope.eidx, scope.plan.surveyed)
    if current is scope.plan:
        return
    acc = [0] * current.width
    for site, (_, old_pos) in scope.plan.sites.items():
        slot = current.sites.get(site)
        if slot is not None:
            acc[slot[1]] = scope.acc[old_pos]
    scope.plan, scope.sites, scope.acc = current, current.sites, acc


_DURATION_BOUNDS = _buckets.DURATION.bounds
_DURATION_SUM = _buckets.DURATION.sum_slot
_SHARE_BOUNDS = _buckets.SHARE.bounds
_SHARE_SUM = _buckets.SHARE.sum_slot
_CALLS_BOUNDS = _buckets.CALLS.bounds
_CALLS_SUM = _buckets.CALLS.sum_slot
_CALLS_SHIFT = _plan.CALLS_SHIFT
_TIME_MASK = _plan.TIME_MASK
_PPB = 1_000_000_000
_OTHER = OTHER_SEGMENT


def _finish(scope: Scope, elapsed: int) -> None:
    """Record one finished request: endpoint time, then every hypothesis' per-request data.

    A probe not called in the request is not touched here: its zero observations (probe
    time 0, share 0, calls 0) are the requests counted in the hypothesis' moments but not
    in the probe's histograms, and collection adds them to the first bucket. That keeps a
    request's cost proportional to the probes it called, not to the probes that exist.
    """
    try:
        ints = TLS.ints
        floats = TLS.floats
        short = len(ints) < STORAGE.int_slots or len(floats) < STORAGE.float_slots
    except AttributeError:
        short = True
    if short:  # a new thread, or series created since this thread's shard was sized
        ints, floats = STORAGE.shard()
    plan = scope.plan
    off = plan.endpoint_offset
    ints[off + bisect_left(_DURATION_BOUNDS, elapsed)] += 1
    ints[off + _DURATION_SUM] += elapsed
    outcome = (scope.status, scope.exception)
    off = plan.outcomes.get(outcome)  # type: ignore[assignment]
    if off is None:
        off = _plan.outcome_series(plan, outcome)
        ints, floats = STORAGE.shard()
    ints[off] += 1
    acc = scope.acc
    e_seconds = elapsed / _PPB
    e_squared = e_seconds * e_seconds
    segment = scope.segment
    for hp, allowed, only, by_label, slow_ns, plain in plan.rows:
        if plain is not None:
            series = plain
        else:
            if only is not None and segment != only:
                continue  # the hypothesis is about another segment's requests
            label = segment if segment is not None and segment in allowed else _OTHER  # type: ignore[operator]
            found = by_label.get(label)
            if found is None:  # the first request of this segment label
                found = _plan.segment_series(hp, label)
                ints, floats = STORAGE.shard()
            series = found
        slow = 1 if elapsed > slow_ns else 0
        total = 0
        called = 0
        for pos, request_offsets, share_off, calls_off in series.rows:
            slot = acc[pos]
            if not slot:
                continue
            p = slot & _TIME_MASK
            calls = slot >> _CALLS_SHIFT
            total += p
            called = 1
            off = request_offsets[slow]
            ints[off + bisect_left(_DURATION_BOUNDS, p)] += 1
            ints[off + _DURATION_SUM] += p
            share = p * _PPB // elapsed if elapsed > 0 else 0
            ints[share_off + bisect_left(_SHARE_BOUNDS, share)] += 1
            ints[share_off + _SHARE_SUM] += share
            ints[calls_off + bisect_left(_CALLS_BOUNDS, calls)] += 1
            ints[calls_off + _CALLS_SUM] += calls
        off, fo = series.moments[slow]
        ints[off] += 1
        ints[off + 3] += elapsed
        floats[fo + 1] += e_squared
        if called:
            ints[off + 1] += 1
            ints[off + 2] += total
            p_seconds = total / _PPB
            floats[fo] += p_seconds * p_seconds
            floats[fo + 2] += p_seconds * e_seconds
    if _exemplars.ON:  # traces and slowest requests: once per request, never per call
        _exemplars.after_request(scope, elapsed)


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

    __slots__ = ("_eidx", "_scope", "_token", "name")

    def __init__(self, name: str) -> None:
        # A name seen before was validated then: a request pays one dict lookup.
        eidx = _plan.KNOWN_ENDPOINTS.get(name) if type(name) is str else None
        if not eidx:  # unseen, or 0: the reserved "<none>"
            eidx = _plan.endpoint_index(validate_endpoint(name))
        self.name = name
        self._eidx = eidx
        self._scope: Scope | None = None
        self._token: Token[Scope | None] | None = None

    @classmethod
    def _fresh(cls, name: str, eidx: int) -> endpoint:
        """A new, already validated scope for one call of a decorated function."""
        made = cls.__new__(cls)
        made.name = name
        made._eidx = eidx
        made._scope = None
        made._token = None
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
            plan = _plan.PLANS[self._eidx] or _plan.plan(self._eidx)
            # Survey sampling hook (hypoprobe._survey): surveyed or not, decided here, once.
            if _plan.SURVEY_RATE < 1.0 and not _plan.SURVEY_SAMPLER():
                plan = _plan.UNSURVEYED[self._eidx] or _plan.plan(self._eidx, False)
            scope = Scope(plan, start)
            scope.opener = self
            # _scope/_token: for integrations/_request.py, which takes the scope of a fresh
            # object over; __exit__ itself reads only the context.
            scope.token = self._token = CURRENT.set(scope)
            self._scope = scope
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
            return  # an ignored inner scope, or one an integration took over
        if scope.reentered:
            scope.reentered -= 1
            return
        end = CLOCK()
        self._scope = None
        try:
            CURRENT.reset(scope.token)  # type: ignore[arg-type]
        except Exception:  # exited in another context than entered
            CURRENT.set(None)
            _faults.record("scope_context")
        try:
            if exc is not None:
                scope.exception = _plan.exception_name(type(exc))
            elapsed = end - scope.start
            if elapsed < 0:
                _faults.record("clock_backwards")
                return
            _finish(scope, elapsed)
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
