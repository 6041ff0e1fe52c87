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
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext

from .. import _faults
from .._probe import probe
from ..errors import ConfigurationError
from ._fingerprint import DEFAULT_MAX_FINGERPRINTS, Matcher, Statements

__all__ = ["instrument_engine", "uninstrument_engine"]

_lock = threading.Lock()
_installed: weakref.WeakKeyDictionary[Engine, list[_Listeners]] = weakref.WeakKeyDictionary()


class _Listeners:
    """The three event handlers of one instrumentation, and the probes they have open."""

    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        # The open probe lives in the connection's own ``info`` dict: a DB connection runs
        # one statement at a time, and handle_error is given the connection, not the cursor.
        self.key = f"hypoprobe.open.{id(self)}"

    # The signatures of before/after are SQLAlchemy's event contract.
    def before(  # noqa: PLR0917
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        try:
            name = self.statements.name_for(statement)
            if name is None:
                return
            opened = probe(self.statements.hypothesis_id, name=name)
            opened.__enter__()
            conn.info[self.key] = opened
        except Exception:
            _faults.record("sqlalchemy_before")

    def after(  # noqa: PLR0917
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        try:
            opened = conn.info.pop(self.key, None)
            if opened is not None:
                opened.__exit__(None, None, None)
        except Exception:
            _faults.record("sqlalchemy_after")

    def error(self, ctx: ExceptionContext) -> None:
        try:
            conn = ctx.connection
            if conn is None:
                return
            opened = conn.info.pop(self.key, None)
            if opened is not None:
                exc = ctx.original_exception
                opened.__exit__(type(exc), exc, exc.__traceback__)
        except Exception:
            _faults.record("sqlalchemy_error")

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)
        event.listen(engine, "handle_error", self.error)

    def remove(self, engine: Engine) -> None:
        event.remove(engine, "before_cursor_execute", self.before)
        event.remove(engine, "after_cursor_execute", self.after)
        event.remove(engine, "handle_error", self.error)


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
    listeners = _Listeners(
        Statements(hypothesis, match=match, name=name, max_fingerprints=max_fingerprints)
    )
    if name is not None:
        probe(hypothesis, name=name)  # resolve the site now: the first request counts it too
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
