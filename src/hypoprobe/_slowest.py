"""The slowest requests: per hypothesis and endpoint, the top K by probe share and by latency.

Fed once per request from ``_scope._finish`` (never from a probe call), in the same pass
that records the request. Each (hypothesis, endpoint, kind) keeps a bounded min-heap; a
request that does not beat the heap's smallest entry is rejected by one float comparison
without a lock, so the lock is taken only by requests that make the list (rare once the
heaps are full).

Every reader sees the same lists: nothing is taken away at collection, so a Prometheus
scrape cannot steal the requests a report wants to show. Entries stay for a rolling window
(``slowest_window_seconds``): the heaps start afresh every half window, and the previous
half's heaps are kept beside the current ones, so the lists always cover at least the last
half window and never anything older than a whole one. The lists are this process' own;
in multi-process mode each process keeps its own (``Snapshot.merge`` combines them).

A request may end inside a signal handler, which runs on the thread it interrupted, perhaps
in the middle of this module's own update: the lock is re-entrant and a ``_busy`` flag
marks the update in progress, so such a request skips the lists (one candidate fewer)
instead of waiting forever for a lock its own thread holds.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from dataclasses import replace

from opentelemetry import trace as _trace

from .snapshot import SlowRequest

__all__: list[str] = []

#: configure(slowest_requests=...): how many to keep per list (0: none).
K = 5
#: configure(slowest_window_seconds=...).
WINDOW = 600.0

_lock = threading.RLock()
#: True while the lock's holder is changing the lists (only the holder reads or writes it).
_busy = False
_seq = itertools.count()
_PPB = 1_000_000_000

# A share list only admits requests that called a probe; a latency list admits any request.
_SHARE_FLOOR = 0.0
_LATENCY_FLOOR = -1


class _Top:
    """The lists of one hypothesis and endpoint: current half-window heaps and the previous."""

    __slots__ = ("latency", "latency_floor", "previous", "share", "share_floor")

    def __init__(self) -> None:
        #: Min-heaps of (rank, sequence number, request); latency ranks are nanoseconds.
        self.share: list[tuple[float, int, SlowRequest]] = []
        self.latency: list[tuple[float, int, SlowRequest]] = []
        #: The rank a request must beat; read without the lock (a stale read only costs
        #: one needless lock, or at a half-window turn skips a request that a fresh list
        #: would have taken).
        self.share_floor = _SHARE_FLOOR
        self.latency_floor = _LATENCY_FLOOR
        self.previous: list[SlowRequest] = []

    def rotate(self) -> None:
        self.previous = [r for _, _, r in (*self.share, *self.latency)]
        self.share, self.latency = [], []
        self.share_floor, self.latency_floor = _SHARE_FLOOR, _LATENCY_FLOOR


_TOPS: dict[tuple[str, str], _Top] = {}
#: Wall time at which the current half window started.
_started = time.time()


def _rotate_if_due(now: float) -> None:
    """Start a new half window when the current one is over (called with the lock held)."""
    global _started
    if now < _started + WINDOW / 2:
        return
    stale = now >= _started + WINDOW  # nothing happened for a whole window: forget it all
    for top in _TOPS.values():
        top.rotate()
        if stale:
            top.previous = []
    _started = now


def top(hid: str, endpoint: str) -> _Top:
    """The lists of one hypothesis and endpoint, made on first use.

    Called when a plan is built (``_plan.plan``), which keeps the object in the plan's row:
    a request reaches its lists without building a key. The objects live as long as the
    process (a reset empties them in place), so a plan never holds a stale one.
    """
    global _busy
    with _lock:
        found = _TOPS.get((hid, endpoint))
        if found is not None:
            return found
        if _busy:
            # A signal handler's request built a plan while this thread was changing the
            # lists: a detached object, so nothing changes under the interrupted update
            # (that plan's requests are not listed until the plan is rebuilt).
            return _Top()
        _busy = True
        try:
            return _TOPS.setdefault((hid, endpoint), _Top())
        finally:
            _busy = False


def _admit(
    top: _Top,
    hid: str,
    endpoint: str,
    request: tuple[int, int, int, float],
    trace_id: int,
) -> None:
    global _busy
    now = time.time()
    with _lock:
        if _busy:
            return  # a signal handler interrupted this thread's own update: skip
        _busy = True
        try:
            _admit_locked(top, hid, endpoint, request, trace_id, now=now)
        finally:
            _busy = False


def _admit_locked(
    top: _Top,
    hid: str,
    endpoint: str,
    request: tuple[int, int, int, float],
    trace_id: int,
    *,
    now: float,
) -> None:
    elapsed, total, calls, share = request
    made: SlowRequest | None = None
    _rotate_if_due(now)
    for kind, rank, heap in (("share", share, top.share), ("latency", elapsed, top.latency)):
        full = len(heap) >= K
        if (full and rank <= heap[0][0]) or (kind == "share" and rank <= _SHARE_FLOOR):
            continue
        if made is None:
            made = SlowRequest(
                hid,
                endpoint,
                kind,
                elapsed / _PPB,
                total / _PPB,
                calls,
                share,
                now,
                _trace.format_trace_id(trace_id) if trace_id else None,
            )
        elif made.kind != kind:
            made = replace(made, kind=kind)
        if full:
            heapq.heapreplace(heap, (rank, next(_seq), made))
        else:
            heapq.heappush(heap, (rank, next(_seq), made))
        if len(heap) >= K:
            if kind == "share":
                top.share_floor = heap[0][0]
            else:
                top.latency_floor = int(heap[0][0])


def collect() -> tuple[SlowRequest, ...]:
    """Every kept request of the window, per (hypothesis, endpoint, kind) highest first."""
    global _busy
    if not _TOPS:
        return ()
    now = time.time()
    cutoff = now - WINDOW
    out: list[SlowRequest] = []
    with _lock:
        if _busy:
            return ()  # collecting from a signal handler amid this thread's own update
        _busy = True
        try:
            _rotate_if_due(now)
            tops = sorted(_TOPS.items())
            for _, top in tops:
                everything = [
                    *top.previous,
                    *(r for _, _, r in top.share),
                    *(r for _, _, r in top.latency),
                ]
                for kind in ("latency", "share"):
                    ranked = sorted(
                        (r for r in everything if r.kind == kind and r.at >= cutoff),
                        key=lambda r: (-r.rank_value, -r.at),
                    )
                    out.extend(ranked[:K])
        finally:
            _busy = False
    return tuple(out)


def configure(k: int, window: float) -> None:
    """Apply configure(slowest_requests=, slowest_window_seconds=); a change starts afresh."""
    global K, WINDOW, _busy
    if k == K and window == WINDOW:
        return
    with _lock:
        was, _busy = _busy, True
        try:
            K, WINDOW = k, window
            _reset_locked()
        finally:
            _busy = was


def _reset_locked() -> None:
    global _started
    for kept in _TOPS.values():  # emptied in place: plans hold these objects
        kept.rotate()
        kept.previous = []
    _started = time.time()


def _after_fork_in_child() -> None:
    # The parent's requests are the parent's to report; the lock may be held by a thread
    # that does not exist in the child.
    global _lock, _busy
    _lock = threading.RLock()
    _busy = False
    _reset_locked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
