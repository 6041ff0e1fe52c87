"""Faults inside hypoprobe: counted, logged once per kind, never raised into the app.

Signal-safe: a fault can be counted inside a signal handler that interrupted a fault count
on the same thread (Python runs handlers between two bytecodes of the main thread), so
``record`` never waits for a lock. It appends the kind to a queue (``deque.append`` is one
C call: a handler cannot run in its middle) and then folds the queue into the counts only
if it gets the lock at once; whoever holds the lock — the interrupted call, another thread,
``snapshot`` — folds what was queued before letting go, so no count is lost or doubled.
Whether a kind is seen for the first time (to log it once, with the caller's traceback) is
decided by one ``dict.setdefault``, atomic for the same reason.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading

from . import _state

__all__: list[str] = []

_log = logging.getLogger("hypoprobe")
_lock = threading.Lock()
COUNTS: dict[str, int] = {}
#: Faults counted but not yet folded into COUNTS.
_queue: collections.deque[str] = collections.deque()
#: Kinds already logged (the value is the first caller's marker).
_logged: dict[str, object] = {}


def _fold() -> None:
    """Fold the queue into COUNTS, if the lock is free now; never waits."""
    while _queue:
        if not _lock.acquire(blocking=False):
            return  # its holder folds what is queued before it lets go
        try:
            while True:
                try:
                    kind = _queue.popleft()
                except IndexError:
                    break
                COUNTS[kind] = COUNTS.get(kind, 0) + 1
        finally:
            _lock.release()
        # Loop: something queued between the last popleft and the release is folded too.


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

    Call it from an ``except`` block or anywhere, a signal handler included; it never
    raises and never blocks.
    """
    try:
        _queue.append(kind)
        _fold()
        marker = object()
        if _logged.setdefault(kind, marker) is marker:
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
    """The counts so far. Never waits either (a handler may collect): a fault that another
    thread is folding at this very moment shows in the next snapshot."""
    _fold()
    return dict(COUNTS)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


def reset() -> None:
    with _lock:
        COUNTS.clear()
        _queue.clear()
        _logged.clear()


_state.owns("faults", after_fork=_after_fork_in_child, reset=reset)
