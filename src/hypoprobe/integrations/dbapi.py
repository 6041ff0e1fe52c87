"""Probe the queries of a DB-API 2.0 connection (sqlite3, psycopg 3, ...) for a hypothesis.

:func:`instrument` wraps a connection in a transparent proxy (``wrapt.ObjectProxy``):
everything behaves as before, ``isinstance`` included, but the cursors it hands out are
proxies too, and every ``execute`` / ``executemany`` whose statement matches is timed as a
probe named by the statement's fingerprint (see ``_fingerprint``). Fetches of a matched
statement (``fetchone``, ``fetchmany``, ``fetchall``, or iterating the cursor) are timed
as a second probe, ``fetch: <fingerprint>``, so that the *calls* of the first probe stay
one per query — which is what makes N+1 loops visible as calls per request. A ``for``
loop over a cursor records one call when the loop ends, for the time spent fetching rows.
asyncio connections (psycopg's ``AsyncConnection``) get the same probes around the awaited
calls (``async for`` and ``async with`` included).

Statements that do not match pass straight to the driver. Driver exceptions propagate
unchanged; faults of the instrumentation itself are counted, never raised.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import wrapt

from .._core import _faults, _plan, _probe
from .._core._probe import probe
from ..errors import ConfigurationError
from ._fingerprint import DEFAULT_MAX_FINGERPRINTS, Matcher, Statements, statement_text

__all__ = ["instrument"]

C = TypeVar("C")

_MAX_NAME = 200


def _invoke(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _rows(cursor: Any) -> Iterator[Any]:
    yield from cursor


async def _ainvoke(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    return await fn(*args, **kwargs)


async def _arows(cursor: Any) -> AsyncIterator[Any]:
    async for row in cursor:
        yield row


class _Entry:
    """The probed callables of one probe name: the statement's, and its fetches'."""

    __slots__ = ("acall", "afetch", "arows", "call", "call_site", "fetch", "fetch_site", "rows")

    def __init__(self, hypothesis_id: str, name: str) -> None:
        # Decorating a pass-through once per name reuses the probe's hot path (enabled
        # switch, expiry, exception counts) with the site resolved here, not per query.
        self.call: Callable[..., Any] = probe(hypothesis_id, name=name)(_invoke)
        fetch_name = f"fetch: {name}"[:_MAX_NAME]
        self.fetch: Callable[..., Any] = probe(hypothesis_id, name=fetch_name)(_invoke)
        self.rows: Callable[[Any], Iterator[Any]] = probe(hypothesis_id, name=fetch_name)(_rows)
        # The same for asyncio drivers (psycopg's AsyncConnection): the awaited time counts.
        self.acall: Callable[..., Awaitable[Any]] = probe(hypothesis_id, name=name)(_ainvoke)
        self.afetch: Callable[..., Awaitable[Any]] = probe(hypothesis_id, name=fetch_name)(_ainvoke)
        self.arows: Callable[[Any], AsyncIterator[Any]] = probe(hypothesis_id, name=fetch_name)(
            _arows
        )
        # For stacked proxies (a survey over declared matchers, several hypotheses on one
        # connection): the outermost times the driver once and records into every layer.
        self.call_site = _plan.site(hypothesis_id, name)
        self.fetch_site = _plan.site(hypothesis_id, fetch_name)


# --------------------------------------------------------------- stacked proxies
#
# One definition of a statement's time for every layer: the driver's own execute (or
# executemany) call, and separately its fetches, timed once by the outermost proxy after
# every layer has looked its statement up. No layer's matching, fingerprinting or
# recording falls inside another layer's time.


def _timed(sites: list[_plan.Site], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` timed once, the duration recorded at each site."""
    live = [site for site in sites if not site.off]
    if not live:
        return fn(*args, **kwargs)
    t0 = _probe._now()
    if t0 < 0:
        return fn(*args, **kwargs)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        _record_raised(live, exc, t0)
        raise
    _record_all(live, t0)
    return result


async def _atimed(
    sites: list[_plan.Site], fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
) -> Any:
    """As :func:`_timed`, for an awaited call: the awaited time counts."""
    live = [site for site in sites if not site.off]
    if not live:
        return await fn(*args, **kwargs)
    t0 = _probe._now()
    if t0 < 0:
        return await fn(*args, **kwargs)
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        _record_raised(live, exc, t0)
        raise
    _record_all(live, t0)
    return result


def _record_all(sites: list[_plan.Site], t0: int) -> None:
    spent = _probe._lap(0, t0)
    if spent >= 0:
        for site in sites:
            _probe._record_safely(site, spent)


def _record_raised(sites: list[_plan.Site], exc: BaseException, t0: int) -> None:
    _record_all(sites, t0)
    for site in sites:
        _probe._count_exception_safely(site, exc)


def _rows_timed(sites: list[_plan.Site], cursor: Any) -> Iterator[Any]:
    """The rows of ``cursor``, the time spent producing them recorded once at each site."""
    spent = 0
    it = iter(cursor)
    try:
        while True:
            t0 = _probe._now()
            try:
                row = next(it)
            except StopIteration:
                spent = _probe._lap(spent, t0)
                return
            except BaseException as exc:
                spent = _probe._lap(spent, t0)
                for site in sites:
                    _probe._count_exception_safely(site, exc)
                raise
            spent = _probe._lap(spent, t0)
            yield row
    finally:
        if spent >= 0:
            for site in sites:
                _probe._record_safely(site, spent)


class _Probes:
    """What one instrumented connection shares with its cursors."""

    __slots__ = ("_entries", "statements")

    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        self._entries: dict[str, _Entry] = {}
        if statements.name is not None:
            # Known up front: resolve now, so the very first request already counts it.
            self._entries[statements.name] = _Entry(statements.hypothesis_id, statements.name)

    def lookup(self, operation: object, connection: object) -> _Entry | None:
        """The entry to time ``operation`` with, or None to pass it through. Never raises."""
        try:
            name = self.statements.name_for(statement_text(operation, connection))
            if name is None:
                return None
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry(self.statements.hypothesis_id, name)
            return entry
        except Exception:
            _faults.record("dbapi_statement")
            return None


class _CursorProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A cursor whose matching statements, and their fetches, are probed."""

    def __init__(self, wrapped: Any, probes: _Probes, entry: _Entry | None = None) -> None:
        super().__init__(wrapped)
        self._self_probes = probes
        #: The entry of the statement last executed, for its fetches (None: not probed).
        self._self_entry = entry

    def _resolve(self, operation: Any) -> None:
        """Find the entry of ``operation`` here and in every proxy this one wraps, so that
        no layer's matching or fingerprinting falls inside another layer's timing."""
        wrapped = self.__wrapped__
        self._self_entry = self._self_probes.lookup(operation, getattr(wrapped, "connection", None))
        if isinstance(wrapped, _CursorProxy):
            wrapped._resolve(operation)

    def _stack(self, fetch: bool) -> tuple[Any, list[_plan.Site]]:
        """The driver's cursor under every stacked layer, and the layers' sites."""
        sites = []
        layer: Any = self
        while isinstance(layer, _CursorProxy):
            entry = layer._self_entry
            if entry is not None:
                sites.append(entry.fetch_site if fetch else entry.call_site)
            layer = layer.__wrapped__
        return layer, sites

    def _run(self, method: str, operation: Any, args: Any, kwargs: Any) -> Any:
        self._resolve(operation)
        wrapped = self.__wrapped__
        entry = self._self_entry
        if isinstance(wrapped, _CursorProxy):
            raw, sites = self._stack(False)
            result = _timed(sites, getattr(raw, method), operation, *args, **kwargs)
            return self if result is raw else result
        fn = getattr(wrapped, method)
        if entry is None:
            result = fn(operation, *args, **kwargs)
        else:
            result = entry.call(fn, operation, *args, **kwargs)
        # Drivers return the cursor itself (sqlite3, psycopg): keep handing out the proxy.
        return self if result is wrapped else result

    def _fetch(self, method: str, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        if isinstance(wrapped, _CursorProxy):
            raw, sites = self._stack(True)
            return _timed(sites, getattr(raw, method), *args, **kwargs)
        entry = self._self_entry
        if entry is None:
            return getattr(wrapped, method)(*args, **kwargs)
        return entry.fetch(getattr(wrapped, method), *args, **kwargs)

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run("execute", operation, args, kwargs)

    def executemany(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run("executemany", operation, args, kwargs)

    def fetchone(self) -> Any:
        wrapped = self.__wrapped__
        if isinstance(wrapped, _CursorProxy):
            return self._fetch("fetchone")
        entry = self._self_entry
        if entry is None:
            return wrapped.fetchone()
        return entry.fetch(wrapped.fetchone)

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        return self._fetch("fetchmany", *args, **kwargs)

    def fetchall(self) -> Any:
        wrapped = self.__wrapped__
        if isinstance(wrapped, _CursorProxy):
            return self._fetch("fetchall")
        entry = self._self_entry
        if entry is None:
            return wrapped.fetchall()
        return entry.fetch(wrapped.fetchall)

    def __iter__(self) -> Iterator[Any]:
        entry = self._self_entry
        if isinstance(self.__wrapped__, _CursorProxy):
            raw, sites = self._stack(True)
            return _rows_timed(sites, raw) if sites else iter(raw)
        if entry is None:
            return iter(self.__wrapped__)
        # One call per loop, for the time spent producing rows (not the loop body's).
        return entry.rows(self.__wrapped__)

    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self.__wrapped__.__exit__(*exc_info)


class _IteratorCursorProxy(_CursorProxy):
    """For cursors that are their own iterators (sqlite3): ``next(cursor)`` keeps working."""

    def __next__(self) -> Any:
        return next(self.__wrapped__)


class _AsyncCursorProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An asyncio cursor (psycopg's AsyncCursor): the same probes, around awaited calls."""

    def __init__(self, wrapped: Any, probes: _Probes, entry: _Entry | None = None) -> None:
        super().__init__(wrapped)
        self._self_probes = probes
        self._self_entry = entry

    def _resolve(self, operation: Any) -> None:
        """As ``_CursorProxy._resolve``: every stacked layer's entry before any timing."""
        wrapped = self.__wrapped__
        self._self_entry = self._self_probes.lookup(operation, getattr(wrapped, "connection", None))
        if isinstance(wrapped, _AsyncCursorProxy):
            wrapped._resolve(operation)

    def _stack(self, fetch: bool) -> tuple[Any, list[_plan.Site]]:
        """As ``_CursorProxy._stack``."""
        sites = []
        layer: Any = self
        while isinstance(layer, _AsyncCursorProxy):
            entry = layer._self_entry
            if entry is not None:
                sites.append(entry.fetch_site if fetch else entry.call_site)
            layer = layer.__wrapped__
        return layer, sites

    async def _run(self, method: str, operation: Any, args: Any, kwargs: Any) -> Any:
        self._resolve(operation)
        wrapped = self.__wrapped__
        entry = self._self_entry
        if isinstance(wrapped, _AsyncCursorProxy):
            raw, sites = self._stack(False)
            result = await _atimed(sites, getattr(raw, method), operation, *args, **kwargs)
            return self if result is raw else result
        fn = getattr(wrapped, method)
        if entry is None:
            result = await fn(operation, *args, **kwargs)
        else:
            result = await entry.acall(fn, operation, *args, **kwargs)
        return self if result is wrapped else result

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._run("execute", operation, args, kwargs)

    def executemany(self, operation: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._run("executemany", operation, args, kwargs)

    def _fetch(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        if isinstance(self.__wrapped__, _AsyncCursorProxy):
            raw, sites = self._stack(True)
            return _atimed(sites, getattr(raw, method), *args, **kwargs)
        fn = getattr(self.__wrapped__, method)
        entry = self._self_entry
        if entry is None:
            return fn(*args, **kwargs)  # type: ignore[no-any-return]
        return entry.afetch(fn, *args, **kwargs)

    def fetchone(self) -> Awaitable[Any]:
        return self._fetch("fetchone")

    def fetchmany(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._fetch("fetchmany", *args, **kwargs)

    def fetchall(self) -> Awaitable[Any]:
        return self._fetch("fetchall")

    def __aiter__(self) -> AsyncIterator[Any]:
        entry = self._self_entry
        if entry is None:
            return self.__wrapped__.__aiter__()  # type: ignore[no-any-return]
        return entry.arows(self.__wrapped__)

    def __anext__(self) -> Awaitable[Any]:
        return self.__wrapped__.__anext__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Any:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc_info)


#: (class, method) -> is it a coroutine function: asked once per cursor class, not per
#: cursor (a statement's cursor is wrapped on every call).
_ASYNC: dict[tuple[type, str], bool] = {}


def _is_async(obj: Any, method: str) -> bool:
    # A proxy's own methods are plain functions returning awaitables: ask what it wraps.
    if isinstance(obj, _AsyncConnectionProxy | _AsyncCursorProxy):
        return True
    if isinstance(obj, _ConnectionProxy | _CursorProxy):
        return False
    key = (type(obj), method)
    found = _ASYNC.get(key)
    if found is None:
        found = inspect.iscoroutinefunction(getattr(key[0], method, None))
        if len(_ASYNC) < 256:
            _ASYNC[key] = found
    return found


def _wrap_cursor(cursor: Any, probes: _Probes, entry: _Entry | None = None) -> Any:
    if isinstance(cursor, _CursorProxy | _AsyncCursorProxy) and cursor._self_probes is probes:
        return cursor
    if _is_async(cursor, "execute"):
        return _AsyncCursorProxy(cursor, probes, entry)
    if hasattr(type(cursor), "__next__"):
        return _IteratorCursorProxy(cursor, probes, entry)
    return _CursorProxy(cursor, probes, entry)


class _ConnectionProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A connection whose cursors, and ``execute`` shortcuts, are probed."""

    def __init__(self, wrapped: Any, probes: _Probes) -> None:
        super().__init__(wrapped)
        self._self_probes = probes

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return _wrap_cursor(self.__wrapped__.cursor(*args, **kwargs), self._self_probes)

    def _resolve(self, operation: Any) -> list[_Entry | None]:
        """The entries of ``operation`` in this proxy and each it wraps (outermost first),
        all found before any layer starts timing."""
        entries = []
        layer: Any = self
        while isinstance(layer, _ConnectionProxy):
            entries.append(layer._self_probes.lookup(operation, layer.__wrapped__))
            layer = layer.__wrapped__
        return entries

    def _layers(self) -> list[_ConnectionProxy]:
        layers = []
        layer: Any = self
        while isinstance(layer, _ConnectionProxy):
            layers.append(layer)
            layer = layer.__wrapped__
        return layers

    def _wrap_stacked(self, cursor: Any, entries: list[_Entry | None]) -> Any:
        """The driver's cursor wrapped by every layer, innermost first, each with its entry."""
        for layer, entry in zip(reversed(self._layers()), reversed(entries), strict=True):
            cursor = _wrap_cursor(cursor, layer._self_probes, entry)
        return cursor

    def _run(self, method: str, operation: Any, args: Any, kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        if isinstance(wrapped, _ConnectionProxy):
            entries = self._resolve(operation)
            raw = self._layers()[-1].__wrapped__
            sites = [e.call_site for e in entries if e is not None]
            cursor = _timed(sites, getattr(raw, method), operation, *args, **kwargs)
            return self._wrap_stacked(cursor, entries)
        entry = self._self_probes.lookup(operation, wrapped)
        fn = getattr(wrapped, method)
        if entry is None:
            cursor = fn(operation, *args, **kwargs)
        else:
            cursor = entry.call(fn, operation, *args, **kwargs)
        # sqlite3 and psycopg return the new cursor: its fetches belong to this statement.
        return _wrap_cursor(cursor, self._self_probes, entry)

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run("execute", operation, args, kwargs)

    def executemany(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run("executemany", operation, args, kwargs)

    def __enter__(self) -> Any:
        # sqlite3's and psycopg's __enter__ return the raw connection: hand back the proxy.
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self.__wrapped__.__exit__(*exc_info)


class _AsyncConnectionProxy(_ConnectionProxy):
    """An asyncio connection (psycopg's AsyncConnection): awaited ``execute`` shortcuts."""

    async def _arun(self, method: str, operation: Any, args: Any, kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        if isinstance(wrapped, _ConnectionProxy):
            entries = self._resolve(operation)
            raw = self._layers()[-1].__wrapped__
            sites = [e.call_site for e in entries if e is not None]
            cursor = await _atimed(sites, getattr(raw, method), operation, *args, **kwargs)
            return self._wrap_stacked(cursor, entries)
        entry = self._self_probes.lookup(operation, wrapped)
        fn = getattr(wrapped, method)
        if entry is None:
            cursor = await fn(operation, *args, **kwargs)
        else:
            cursor = await entry.acall(fn, operation, *args, **kwargs)
        return _wrap_cursor(cursor, self._self_probes, entry)

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        return self._arun("execute", operation, args, kwargs)

    def executemany(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        return self._arun("executemany", operation, args, kwargs)

    async def __aenter__(self) -> Any:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc_info)


def instrument(
    connection: C,
    hypothesis: str,
    match: Matcher = None,
    name: str | None = None,
    *,
    max_fingerprints: int = DEFAULT_MAX_FINGERPRINTS,
) -> C:
    """Return ``connection`` wrapped so its matching queries are probes of ``hypothesis``.

    ``match`` selects the statements: a regular expression searched in the statement
    (ignoring case), a compiled pattern, a callable taking the statement text, or None
    for every statement. Each matching statement is a probe named by its fingerprint
    (literals stripped; at most ``max_fingerprints`` names per hypothesis, then
    ``(other statements)``), or ``name`` for all of them. Use the returned object in
    place of the connection; the original is untouched.

    Example::

        import sqlite3
        from hypoprobe.integrations import dbapi

        conn = dbapi.instrument(sqlite3.connect("app.db"), "PERF-1", match=r"FROM campaigns")
        with hypoprobe.endpoint("GET /campaigns"):
            rows = conn.execute("SELECT * FROM campaigns WHERE account = ?", (7,)).fetchall()
    """
    if not callable(getattr(connection, "cursor", None)):
        raise ConfigurationError(
            f"instrument() needs a DB-API 2.0 connection (with .cursor()), got "
            f"{type(connection).__name__}"
        )
    statements = Statements(hypothesis, match=match, name=name, max_fingerprints=max_fingerprints)
    inner: Any = connection
    while isinstance(inner, _ConnectionProxy):  # several hypotheses may share a connection
        if inner._self_probes.statements.hypothesis_id == statements.hypothesis_id:
            raise ConfigurationError(
                f"this connection is already instrumented for {hypothesis}: instrumenting "
                "it again would time its statements twice; use one match for both"
            )
        inner = inner.__wrapped__
    proxy = _AsyncConnectionProxy if _is_async(connection, "execute") else _ConnectionProxy
    return proxy(connection, _Probes(statements))  # type: ignore[return-value]
