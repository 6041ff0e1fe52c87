"""Faults inside hypoprobe: counted, logged once per kind, never raised into the app."""

from __future__ import annotations

import logging
import threading

from . import _state

__all__: list[str] = []

_log = logging.getLogger("hypoprobe")
_lock = threading.Lock()
COUNTS: dict[str, int] = {}


def record(kind: str) -> None:
    """Count a fault of ``kind``; log it (with the traceback, if any) the first time only.

    Call it from an ``except`` block or anywhere; it never raises.
    """
    try:
        with _lock:
            n = COUNTS.get(kind, 0) + 1
            COUNTS[kind] = n
        if n == 1:
            _log.warning(
                "hypoprobe: internal fault %r (counted in hypoprobe_internal_errors_total, "
                "logged once); the application is unaffected",
                kind,
                exc_info=True,
            )
    except Exception:
        pass


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(COUNTS)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


def reset() -> None:
    with _lock:
        COUNTS.clear()


_state.owns("faults", after_fork=_after_fork_in_child, reset=reset)
