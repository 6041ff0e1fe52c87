"""Probe the queries of a SQLAlchemy 2.x engine for a hypothesis, with engine events.

:func:`instrument_engine` listens to ``before_cursor_execute`` / ``after_cursor_execute``
(and ``handle_error``, so failed statements are timed and their exception counted) on one
engine. The statement that reaches the driver — the SQL the ORM or Core compiled — is
matched and fingerprinted exactly like in :mod:`hypoprobe.integrations.dbapi`, so a
hypothesis about "the campaigns query" reads the same whichever layer probes it.
Fetching rows happens after ``after_cursor_execute`` and is not timed here.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from .._core._probe import probe
from ..errors import ConfigurationError
from ._engine_events import _Listeners
from ._fingerprint import DEFAULT_MAX_FINGERPRINTS, Matcher, Statements

__all__ = [
    "instrument_all_engines",
    "instrument_engine",
    "uninstrument_all_engines",
    "uninstrument_engine",
]

_lock = threading.Lock()
_installed: weakref.WeakKeyDictionary[Engine, list[_Instrumentation]] = weakref.WeakKeyDictionary()
#: Class-level listeners (every engine) by hypothesis id.
_every_engine: dict[str, _EveryEngine] = {}


class _Instrumentation(_Listeners):
    """The listeners of one :func:`instrument_engine`: its matched statements, probed."""

    faults = ("sqlalchemy_before", "sqlalchemy_after", "sqlalchemy_error")

    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        self.key = f"hypoprobe.open.{id(self)}"

    def _probe(self, conn: Connection, statement: str) -> Any:
        name = self.statements.name_for(statement)
        return None if name is None else probe(self.statements.hypothesis_id, name=name)


class _EveryEngine(_Instrumentation):
    """Class-level listeners: they step aside on an engine instrumented for the same
    hypothesis by :func:`instrument_engine`, so no statement is timed twice."""

    def _probe(self, conn: Connection, statement: str) -> Any:
        own = _installed.get(conn.engine)
        if own and any(o.statements.hypothesis_id == self.statements.hypothesis_id for o in own):
            return None
        return super()._probe(conn, statement)


_I = TypeVar("_I", bound=_Instrumentation)


def _made(
    kind: type[_I], hypothesis: str, match: Matcher, name: str | None, max_fingerprints: int
) -> _I:
    listeners = kind(
        Statements(hypothesis, match=match, name=name, max_fingerprints=max_fingerprints)
    )
    if name is not None:
        probe(hypothesis, name=name)  # resolve the site now: the first request counts it too
    return listeners


def _sync_engine(engine: Any) -> Engine:
    sync = getattr(engine, "sync_engine", engine)  # an AsyncEngine wraps a sync one
    if not isinstance(sync, Engine):
        raise ConfigurationError(
            f"expected a SQLAlchemy Engine or AsyncEngine, got {type(engine).__name__}"
        )
    return sync


def instrument_engine(
    engine: Any,
    hypothesis: str,
    match: Matcher = None,
    name: str | None = None,
    *,
    max_fingerprints: int = DEFAULT_MAX_FINGERPRINTS,
) -> None:
    """Probe the statements ``engine`` sends to its driver as evidence for ``hypothesis``.

    ``match`` and ``name`` work as in :func:`hypoprobe.integrations.dbapi.instrument`:
    a regular expression (ignoring case), compiled pattern or callable selects the
    statements; each is named by its fingerprint unless ``name`` is given. Call it several
    times for several hypotheses; :func:`uninstrument_engine` removes them all.

    Example::

        from sqlalchemy import create_engine
        from hypoprobe.integrations.sqlalchemy import instrument_engine

        engine = create_engine("postgresql+psycopg://app@db/app")
        instrument_engine(engine, "PERF-1", match=r"FROM campaigns")
    """
    sync = _sync_engine(engine)
    listeners = _made(_Instrumentation, hypothesis, match, name, max_fingerprints)
    with _lock:
        if any(
            other.statements.hypothesis_id == listeners.statements.hypothesis_id
            for other in _installed.get(sync, ())
        ):
            raise ConfigurationError(
                f"this engine is already instrumented for {hypothesis}: instrumenting it "
                "again would time its statements twice; use one match for both"
            )
        listeners.listen(sync)
        _installed.setdefault(sync, []).append(listeners)


def uninstrument_engine(engine: Any) -> None:
    """Remove every hypoprobe listener from ``engine``; its statements are no longer timed.

    Example::

        uninstrument_engine(engine)
    """
    sync = _sync_engine(engine)
    with _lock:
        for listeners in _installed.pop(sync, []):
            listeners.remove(sync)


def instrument_all_engines(
    hypothesis: str,
    match: Matcher = None,
    name: str | None = None,
    *,
    max_fingerprints: int = DEFAULT_MAX_FINGERPRINTS,
) -> None:
    """Probe the statements of every SQLAlchemy engine, existing and future, for ``hypothesis``.

    Class-level event listeners on ``Engine`` (async engines included, through their sync
    engine); ``match`` and ``name`` as in :func:`instrument_engine`. An engine also given
    to :func:`instrument_engine` for the same hypothesis is timed by that one only. This is
    what a ``sql = [...]`` key in the TOML file does.

    Example::

        instrument_all_engines("PERF-1", match=r"FROM campaigns")
    """
    listeners = _made(_EveryEngine, hypothesis, match, name, max_fingerprints)
    with _lock:
        if hypothesis in _every_engine:
            raise ConfigurationError(
                f"every engine is already instrumented for {hypothesis}: instrumenting them "
                "again would time their statements twice; use one match for both"
            )
        listeners.listen(Engine)
        _every_engine[hypothesis] = listeners


def uninstrument_all_engines(hypothesis: str | None = None) -> None:
    """Remove the listeners of :func:`instrument_all_engines` (one hypothesis', or all).

    Example::

        uninstrument_all_engines("PERF-1")
    """
    with _lock:
        for hid in [hypothesis] if hypothesis is not None else list(_every_engine):
            listeners = _every_engine.pop(hid, None)
            if listeners is not None:
                listeners.remove(Engine)
