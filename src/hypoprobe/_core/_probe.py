"""The probe: a decorator or context manager that times a code path. The hot path.

A probed call reads the clock twice, finds its bucket with one ``bisect`` in C, adds to two
integers in the calling thread's shard and, inside an endpoint scope, to two slots of the
request's accumulator. The series was resolved when the probe was created; nothing here
takes a lock, allocates per call, or looks up labels. Anything unexpected (a new thread, a
new endpoint, a fault) drops to ``_record_slow``, which fixes it up or counts the fault.
The wrapped code's return values and exceptions are never touched.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import types
from collections.abc import AsyncGenerator, Callable, Generator
from types import TracebackType
from typing import Any, TypeVar, cast

from ..errors import ConfigurationError
from . import _buckets, _faults, _plan, _signature
from . import _scope as _scope_module
from ._hypothesis import validate_id
from ._scope import keep_early, refresh
from ._storage import STORAGE, TLS

__all__ = ["probe"]

F = TypeVar("F", bound=Callable[..., Any])

#: The clock, rebound by ``configure(clock=...)``.
CLOCK: Callable[[], int] = time.perf_counter_ns
#: The current request scope's getter, bound once. (CPython 3.11 compiles a method call on
#: a name bound by ``import`` as an attribute load, creating a bound method on every call;
#: a bound method held in a global is one call.)
_current_scope = _scope_module.CURRENT.get

_SUM = _buckets.DURATION.sum_slot
#: Bucket of every duration below 2**16 ns, by value: one list index instead of a bisect
#: for the short calls whose overhead matters most (see _buckets.DURATION_FAST).
_FAST_INDEX = _buckets.DURATION_FAST
assert _buckets.FAST_LIMIT == 1 << 16  # the recording code tests ``dt >> 16``
_PREFIX = _buckets.DURATION_PREFIX
_CEILINGS = _buckets.DURATION_CEILINGS
_ONE_CALL = _plan.ONE_CALL
_TIME_LIMIT = _plan.TIME_LIMIT
_MAX_NAME = 200
#: Start-time markers of a context-manager probe: not entered, and entered but not timing.
_IDLE = -2
_OFF = -1
_MAX_EXCEPTION_CLASSES = 20


def _record(site: _plan.Site, dt: int) -> None:
    """Record one call of ``dt`` ns. Raises, before changing anything, when a slow path is due.

    The function wrapper (``_FUNCTION_TEMPLATE``) carries an inlined copy of this body: a call
    costs as much as half of the rest. Keep the two in step (tests/test_probe_forms.py
    checks that every probe form records the same).

    "Before changing anything" holds because a shard grows by whole series (see
    ``Storage.shard``): a series' first slot in the shard means its sum slot is too; and an
    accumulator slot comes from the plan the accumulator was sized for. A scope whose name
    is not known yet indexes no site list (``_plan.PENDING``): its calls take the slow path.
    """
    scope = _current_scope()
    ints = TLS.ints
    slot = None if scope is None else scope.sites.get(site)
    if slot is not None:  # a probe of the request's plan: its series, and its slot
        off, pos = slot
        # ``not dt >> 16``: 0 <= dt < 2**16, in one operation.
        ints[off + (_FAST_INDEX[dt] if not dt >> 16 else _bucket(dt))] += 1
        ints[off + _SUM] += dt
        scope.acc[pos] += dt + _ONE_CALL  # type: ignore[union-attr]
    else:
        off = site.by_endpoint[0 if scope is None else scope.eidx]  # type: ignore[assignment]
        ints[off + (_FAST_INDEX[dt] if not dt >> 16 else _bucket(dt))] += 1
        ints[off + _SUM] += dt


def _bucket(dt: int) -> int:
    """The bucket of a call of 2**16 ns or more (``_buckets.duration_index``, inlined)."""
    if dt < 0 or dt >= _TIME_LIMIT:  # backwards, or past the accumulator's limit
        raise ValueError(f"call of {dt} ns")
    shift = dt.bit_length() - 9
    i = _PREFIX[shift][dt >> shift]
    return i + 1 if dt > _CEILINGS[i] else i


def _record_slow(site: _plan.Site, dt: int) -> None:
    """Make the fast path possible (series, shard), then record; count what cannot be."""
    try:
        if dt < 0:
            _faults.record("clock_backwards")
            return
        if dt >= _TIME_LIMIT:
            _faults.record("probe_over_time_limit")
            return
        scope = _current_scope()
        if scope is not None:
            if scope.pending is not None and keep_early(scope, site, dt):
                return  # kept until the request's name is known
            refresh(scope)  # the site may be newer than the plan this request started with
        _plan.call_series(site, 0 if scope is None else scope.eidx)
        STORAGE.shard()
        _record(site, dt)
    except Exception:
        _faults.record("probe_record")


def _record_call(site: _plan.Site, dt: int) -> None:
    try:
        _record(site, dt)
    except Exception:
        _record_slow(site, dt)


def _record_exception(site: _plan.Site, exc: BaseException, t0: int) -> None:
    """Record a call started at ``t0`` that raised: its duration, and its exception class."""
    try:
        dt = CLOCK() - t0
    except Exception:
        _faults.record("clock")
    else:
        _record_call(site, dt)
    _count_exception(site, exc)


def _unrecorded() -> None:
    """Count a call whose bookkeeping itself failed (near the recursion limit, say).

    Called from an ``except`` around the bookkeeping, inside another ``try``: whatever
    happens here, the caller's own result or exception is what the application gets.
    """
    _faults.record("probe_unrecorded")


def _count_exception(site: _plan.Site, exc: BaseException) -> None:
    try:
        _plan.count_exception(site, type(exc), _MAX_EXCEPTION_CLASSES)
    except Exception:
        _faults.record("probe_exception_count")


# The decorator's wrapper of a function or a coroutine function (``async def``, ``await``),
# as source: made per decorated function with that function's own parameters (see
# _signature), so that a call builds no ``*args``/``**kwargs``. Compiled
# with this file's name and the template's line numbers, so a traceback through it shows
# these lines. Every piece of bookkeeping sits in a ``try`` (free in CPython >= 3.11 until
# it raises), and every handler's own call in another: a raising clock, or the recursion
# limit reached inside the bookkeeping, never replaces the call's result or exception.
# (``suppress()`` is a call, which can fail at the recursion limit: hence the ``pass``es.)
_TEMPLATE_LINE = sys._getframe().f_lineno + 2
_FUNCTION_TEMPLATE = """\
def make(fn, site):
    {def_} probed({params}):
        if site.off:
            return {await_}fn({args})
        try:
            t0 = CLOCK()
        except Exception:
            try:
                _faults.record("clock")
            except Exception:
                pass
            return {await_}fn({args})
        try:
            result = {await_}fn({args})
        except BaseException as exc:
            try:
                _record_exception(site, exc, t0)
            except Exception:
                try:
                    _unrecorded()
                except Exception:
                    pass
            raise
        try:
            dt = CLOCK() - t0
        except Exception:
            try:
                _faults.record("clock")
            except Exception:
                pass
            return result
        try:  # an inlined copy of _record()
            scope = _current_scope()
            ints = TLS.ints
            slot = None if scope is None else scope.sites.get(site)
            if slot is not None:  # a probe of the request's plan: its series, and its slot
                off, pos = slot
                # ``not dt >> 16``: 0 <= dt < 2**16, in one operation.
                ints[off + (_FAST_INDEX[dt] if not dt >> 16 else _bucket(dt))] += 1
                ints[off + _SUM] += dt
                scope.acc[pos] += dt + _ONE_CALL
            else:
                off = site.by_endpoint[0 if scope is None else scope.eidx]
                ints[off + (_FAST_INDEX[dt] if not dt >> 16 else _bucket(dt))] += 1
                ints[off + _SUM] += dt
        except Exception:
            try:
                _record_slow(site, dt)
            except Exception:
                try:
                    _unrecorded()
                except Exception:
                    pass
        return result

    return probed
"""


def _names_used(code: types.CodeType) -> set[str]:
    names = {*code.co_names, *code.co_varnames, *code.co_freevars, *code.co_cellvars}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


def _source(forward: _signature.Forwarding, coroutine: bool) -> str:
    params, args = forward
    return _FUNCTION_TEMPLATE.format(
        def_="async def" if coroutine else "def",
        await_="await " if coroutine else "",
        params=params,
        args=args,
    )


#: Every name the wrapper's body uses (attribute names too, to be safe): a parameter named
#: as one would shadow it, so such a function keeps ``*args, **kwargs``.
_RESERVED = frozenset(
    _names_used(compile(_source(_signature.GENERIC, coroutine=True), "", "exec"))
    - {"args", "kwargs"}
)


#: ``make(fn, site)`` functions by (parameter list, call arguments, coroutine); bounded,
#: since every distinct signature compiles once (about 0.7 ms on the 2-core machine).
_MAKERS: dict[
    tuple[_signature.Forwarding, bool], Callable[[Any, _plan.Site], Callable[..., Any]]
] = {}
_MAX_MAKERS = 2048


def _maker(
    forward: _signature.Forwarding, coroutine: bool
) -> Callable[[Any, _plan.Site], Callable[..., Any]]:
    found = _MAKERS.get((forward, coroutine))
    if found is None:
        text = "\n" * (_TEMPLATE_LINE - 1) + _source(forward, coroutine)
        made: dict[str, Any] = {}
        # This module's globals: ``configure(clock=...)`` rebinds CLOCK for every wrapper.
        exec(compile(text, __file__, "exec"), globals(), made)
        found = made["make"]
        if len(_MAKERS) < _MAX_MAKERS:
            _MAKERS[forward, coroutine] = found
    return found


def _wrap_function(
    fn: Callable[..., Any], site: _plan.Site, coroutine: bool = False
) -> Callable[..., Any]:
    """The probed ``fn``: a coroutine function (its awaited time measured) if ``coroutine``."""
    forward = _signature.forwarding(fn, _RESERVED)
    probed = _maker(forward or _signature.GENERIC, coroutine)(fn, site)
    if forward is not None:
        _signature.share_defaults(probed, fn)  # type: ignore[arg-type]
    return functools.wraps(fn)(probed)


def _now() -> int:
    """The clock for the generator wrappers: -1 (the fault counted) when it raises."""
    try:
        return CLOCK()
    except Exception:
        _faults.record("clock")
        return -1


def _lap(spent: int, t0: int) -> int:
    """``spent`` plus the time since ``t0``; -1 from the first failed or backward reading."""
    if spent < 0 or t0 < 0:
        return -1
    now = _now()
    if now < t0:
        if now >= 0:
            _faults.record("clock_backwards")
        return -1
    return spent + (now - t0)


def _record_safely(site: _plan.Site, dt: int) -> None:
    # In a ``finally`` or beside an exception: nothing may escape (see _wrap_function).
    try:
        _record_call(site, dt)
    except Exception:
        try:  # noqa: SIM105 -- suppress() is a call, which can fail at the recursion limit
            _unrecorded()
        except Exception:
            pass


def _count_exception_safely(site: _plan.Site, exc: BaseException) -> None:
    try:
        _count_exception(site, exc)
    except Exception:
        try:  # noqa: SIM105 -- suppress() is a call, which can fail at the recursion limit
            _unrecorded()
        except Exception:
            pass


def _wrap_generator_function(fn: Callable[..., Generator[Any, Any, Any]], site: _plan.Site) -> Any:
    # A generator's cost to a request is the time spent *inside* it, producing values, not
    # the time its consumer spends between them: sum the time of every resumption and
    # record it once, as one call, when the generator finishes (exhausted, closed or raised).
    @functools.wraps(fn)
    def probed(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = fn(*args, **kwargs)
        if site.off:
            return (yield from gen)
        spent = 0
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                try:  # near the recursion limit even this can fail: never into the app
                    t0 = _now()
                except Exception:
                    t0 = -1
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        value = gen.throw(exc)
                    else:
                        value = gen.send(to_send)
                except StopIteration as stop:
                    try:  # near the recursion limit even this can fail: never into the app
                        spent = _lap(spent, t0)
                    except Exception:
                        spent = -1
                    return stop.value
                except BaseException as exc:
                    try:  # near the recursion limit even this can fail: never into the app
                        spent = _lap(spent, t0)
                    except Exception:
                        spent = -1
                    _count_exception_safely(site, exc)  # the call is recorded below
                    raise
                try:  # near the recursion limit even this can fail: never into the app
                    spent = _lap(spent, t0)
                except Exception:
                    spent = -1
                try:
                    to_send = yield value
                except GeneratorExit:
                    try:  # near the recursion limit even this can fail: never into the app
                        t0 = _now()
                    except Exception:
                        t0 = -1
                    gen.close()
                    try:  # near the recursion limit even this can fail: never into the app
                        spent = _lap(spent, t0)
                    except Exception:
                        spent = -1
                    raise
                except BaseException as exc:
                    to_throw = exc
        finally:
            if spent >= 0:  # else the clock failed: counted, not recorded
                _record_safely(site, spent)

    return probed


def _wrap_async_generator_function(
    fn: Callable[..., AsyncGenerator[Any, Any]], site: _plan.Site
) -> Any:
    # Same rule as for generators: the time spent inside the generator, recorded once.
    @functools.wraps(fn)
    async def probed(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        agen = fn(*args, **kwargs)
        recording = not site.off
        spent = 0
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                try:  # near the recursion limit even this can fail: never into the app
                    t0 = _now()
                except Exception:
                    t0 = -1
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        value = await agen.athrow(exc)
                    else:
                        value = await agen.asend(to_send)
                except StopAsyncIteration:
                    try:  # near the recursion limit even this can fail: never into the app
                        spent = _lap(spent, t0)
                    except Exception:
                        spent = -1
                    return
                except BaseException as exc:
                    try:  # near the recursion limit even this can fail: never into the app
                        spent = _lap(spent, t0)
                    except Exception:
                        spent = -1
                    if recording:
                        _count_exception_safely(site, exc)  # the call is recorded below
                    raise
                try:  # near the recursion limit even this can fail: never into the app
                    spent = _lap(spent, t0)
                except Exception:
                    spent = -1
                try:
                    to_send = yield value
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    to_throw = exc
        finally:
            if recording and spent >= 0:  # else the clock failed: counted, not recorded
                _record_safely(site, spent)

    return probed


def _validate_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise ConfigurationError(
            f"probe name {name!r} must be a non-empty string of at most {_MAX_NAME} characters"
        )
    return name


class probe:
    """Time a code path as evidence for (or against) a hypothesis.

    As a decorator it is transparent: same return values, exception objects, signature,
    ``__name__``, ``__doc__`` and ``__wrapped__``; a plain function's wrapper takes its own
    parameters and defaults, so arguments bind as they would without the probe (a call
    the function cannot take raises its ``TypeError`` before any timing); an ``async def``
    stays a coroutine function and its *awaited* duration is measured; methods,
    classmethods and staticmethods work. On a generator function it measures the time
    spent inside the generator (all its resumptions, not the consumer's time between
    them), as one call.
    ``name`` defaults to the function's ``__qualname__`` (for ``with``: the enclosing
    function's). The hypothesis may be registered later, or in another module.

    Example::

        @hypoprobe.probe("PERF-123")
        def count_subscribers(account_id): ...

        with hypoprobe.probe("PERF-123", name="campaigns.count_query"):
            cursor.execute(COUNT_SQL)

        async with hypoprobe.probe("PERF-123", name="campaigns.fetch"):
            await client.get(url)
    """

    __slots__ = ("_outer", "_site", "_t0", "hypothesis_id", "name")

    def __init__(self, hypothesis_id: str, name: str | None = None, **unknown: object) -> None:
        if unknown:
            raise ConfigurationError(
                f"probe() got unknown keyword(s) {', '.join(sorted(unknown))}; "
                "it takes a hypothesis id and an optional name"
            )
        # ``with probe("PERF-1", name="q"):`` builds a probe per use: a known (id, name)
        # pair was validated when its site was made, so skip straight to the site.
        site = _plan.SITES.get((hypothesis_id, name)) if type(name) is str else None
        if site is None:
            validate_id(hypothesis_id)
            if name is not None:
                site = _plan.site(hypothesis_id, _validate_name(name))
        self.hypothesis_id = hypothesis_id
        self.name = name
        self._site = site
        self._t0 = _IDLE
        #: Start times of outer, still open uses of this object (re-entry), else None.
        self._outer: list[int] | None = None

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        if isinstance(fn, classmethod):
            return cast(F, classmethod(self(fn.__func__)))
        if isinstance(fn, staticmethod):
            return cast(F, staticmethod(self(fn.__func__)))
        if inspect.isclass(fn) or not callable(fn):
            raise ConfigurationError(
                f"@probe decorates functions and methods, not {type(fn).__name__} {fn!r}"
            )
        name = self.name
        if name is None:
            name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        site = _plan.site(self.hypothesis_id, name)
        if inspect.isasyncgenfunction(fn):
            return cast(F, _wrap_async_generator_function(fn, site))
        if inspect.iscoroutinefunction(fn):
            return cast(F, _wrap_function(fn, site, coroutine=True))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _wrap_generator_function(fn, site))
        return cast(F, _wrap_function(fn, site))

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> probe:
        self._enter()
        return self

    def _enter(self) -> None:
        # One probe object may be re-entered (nested): outer start times wait in _outer.
        # For concurrent use from many threads or tasks create one per use: it is cheap.
        if self._t0 != _IDLE:
            if self._outer is None:
                self._outer = []
            self._outer.append(self._t0)
        try:
            site = self._site
            if site is None:  # named after the function holding the ``with`` statement
                code = sys._getframe(2).f_code
                site = self._site = _plan.site(
                    self.hypothesis_id, getattr(code, "co_qualname", code.co_name)
                )
            self._t0 = _OFF if site.off else CLOCK()
        except Exception:
            _faults.record("probe_enter")
            self._t0 = _OFF

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            t0 = self._t0
            self._t0 = self._outer.pop() if self._outer else _IDLE
            site = self._site
            if t0 < 0 or site is None:
                return
            if exc is not None:
                _record_exception(site, exc, t0)
            else:
                _record_call(site, CLOCK() - t0)
        except Exception:
            try:  # noqa: SIM105 -- suppress() is a call, which can fail at the recursion limit
                _faults.record("probe_exit")
            except Exception:  # near the recursion limit: the exception in flight stays
                pass

    async def __aenter__(self) -> probe:
        self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
