"""Faults inside hypoprobe: counted, logged once per kind, never raised into the app."""

from __future__ import annotations

import logging
import sys
import threading

__all__: list[str] = []

_log = logging.getLogger("hypoprobe")
_lock = threading.Lock()
COUNTS: dict[str, int] = {}

#: What to do about a fault whose cause is usually the caller's setup, not hypoprobe.
HINTS = {
    "integration_body_not_closed": (
        "a WSGI response body was never closed (PEP 3333), so its request is not "
        "recorded; a test client must close responses, e.g. Flask's "
        "app.test_client().get(url, buffered=True) or `with client.get(url) as r:`"
    ),
}


def record(kind: str) -> None:
    """Count a fault of ``kind``; log it (with the traceback, if any) the first time only.

    Call it from an ``except`` block or anywhere; it never raises.
    """
    try:
        with _lock:
            n = COUNTS.get(kind, 0) + 1
            COUNTS[kind] = n
        if n == 1:
            hint = HINTS.get(kind)
            _log.warning(
                "hypoprobe: internal fault %r (counted in hypoprobe_internal_errors_total, "
                "logged once); the application is unaffected%s",
                kind,
                f": {hint}" if hint else "",
                # The traceback when there is one; outside an except block there is none,
                # and exc_info=True would log a bare "NoneType: None".
                exc_info=sys.exc_info()[0] is not None,
            )
    except Exception:
        pass


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(COUNTS)


def reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    COUNTS.clear()
