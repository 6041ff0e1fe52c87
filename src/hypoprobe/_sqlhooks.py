"""Apply the TOML's ``sql`` matchers to every database driver the process imports.

* SQLAlchemy: class-level event listeners on ``Engine``
  (:func:`hypoprobe.integrations.sqlalchemy.instrument_all_engines`), so every engine,
  created before or after, is probed, sync or async.
* sqlite3 and psycopg (3): ``sqlite3.connect`` (and ``sqlite3.dbapi2.connect``) and
  ``psycopg.connect`` return connections wrapped by
  :func:`hypoprobe.integrations.dbapi.instrument` (Django's database layer included).

A connection SQLAlchemy opens (through its dialect or a ``creator=`` function) is left
to SQLAlchemy's listeners: ``connect`` looks at its callers, so no statement is timed
twice. The hooks are
``wrapt`` post-import hooks: a driver imported after the configuration is covered from
its first connection. Connections opened before a matcher was loaded stay as they were.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any

import wrapt

from . import _faults, _sqlconfig

__all__: list[str] = []

_lock = threading.Lock()
_armed = False
#: Drivers whose hooks are in place in this process ("sqlalchemy", "sqlite3", "psycopg").
HOOKED: set[str] = set()
#: Hypotheses with class-level SQLAlchemy listeners installed by us.
_engine_hypotheses: set[str] = set()
#: How far up the stack ``connect``'s callers are searched for SQLAlchemy's pool.
_CALLER_DEPTH = 40


def arm() -> None:
    """Register the post-import hooks once per process (they fire at once if imported)."""
    global _armed
    with _lock:
        if _armed:
            return
        _armed = True
        _sqlconfig._listeners.append(_sync_engines)
    wrapt.register_post_import_hook(_on_sqlalchemy, "sqlalchemy")
    wrapt.register_post_import_hook(_on_sqlite3, "sqlite3")
    wrapt.register_post_import_hook(_on_psycopg, "psycopg")


# ------------------------------------------------------------------------- SQLAlchemy


def _on_sqlalchemy(module: Any) -> None:
    # Runs inside the application's import: never raise.
    try:
        with _lock:
            HOOKED.add("sqlalchemy")
        _sync_engines()
    except Exception:
        _faults.record("sql_hook_sqlalchemy")


def _sync_engines() -> None:
    """Make the class-level listeners match the active matchers."""
    if "sqlalchemy" not in HOOKED:
        return
    try:
        from .integrations import sqlalchemy as sa

        wanted = _sqlconfig.by_hypothesis()
        with _lock:
            for hid in sorted(_engine_hypotheses):
                sa.uninstrument_all_engines(hid)
            _engine_hypotheses.clear()
            for hid, match in wanted.items():
                sa.instrument_all_engines(hid, match=match)
                _engine_hypotheses.add(hid)
    except Exception:
        _faults.record("sql_hook_sqlalchemy")


# ---------------------------------------------------------------------------- DB-API


def _opened_by_sqlalchemy() -> bool:
    """Is SQLAlchemy (its pool, directly or through a ``creator=``) opening this connection?

    Connections are opened rarely (pools keep them), so walking the callers is cheap.
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_CALLER_DEPTH):
        if frame is None:
            return False
        if str(frame.f_globals.get("__name__", "")).startswith("sqlalchemy."):
            return True
        frame = frame.f_back
    return False


def _instrumented(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    conn = wrapped(*args, **kwargs)
    if _opened_by_sqlalchemy():
        return conn
    try:
        from .integrations import dbapi

        out = conn
        for hid, match in _sqlconfig.by_hypothesis().items():
            out = dbapi.instrument(out, hid, match=match)
        from . import _survey

        return _survey.wrap_connection(out)  # every statement, when a survey runs
    except Exception:
        _faults.record("sql_hook_connect")
        return conn


def _on_sqlite3(module: Any) -> None:
    try:
        # Both names (Django's backend calls sqlite3.dbapi2.connect); each wraps the
        # original function, so one connection is wrapped once.
        wrapt.wrap_function_wrapper(module, "connect", _instrumented)
        wrapt.wrap_function_wrapper(module.dbapi2, "connect", _instrumented)
        with _lock:
            HOOKED.add("sqlite3")
    except Exception:
        _faults.record("sql_hook_sqlite3")


def _on_psycopg(module: Any) -> None:
    try:
        wrapt.wrap_function_wrapper(module, "connect", _instrumented)
        with _lock:
            HOOKED.add("psycopg")
    except Exception:
        _faults.record("sql_hook_psycopg")
