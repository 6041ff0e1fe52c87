"""Series table and per-thread shards: where recorded integers live until collection.

Recording writes only into the calling thread's own shard (two flat lists: integers, and
floats for the squared moments), at offsets resolved once per series. Nothing on the
recording path takes a lock or looks up labels. Collection sums every live shard plus the
shards of threads that have exited (folded into ``retired`` when the thread dies, so
thread churn neither loses counts nor grows memory).

After ``fork()`` the child starts from zero: whatever the parent recorded is the parent's
to report, so a pre-fork server never counts it twice.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from ._buckets import BucketLayout

__all__: list[str] = []

_log = logging.getLogger("hypoprobe")

OVERFLOW = "__overflow__"

#: Thread-local holder of the calling thread's shard (attributes ``ints`` and ``floats``).
#: The recording path reads it directly; it is never replaced, so it can be imported.
TLS = threading.local()


@dataclass(frozen=True)
class Series:
    """One labelled series: its metric, labels, layout, and where its slots are."""

    metric: str
    labels: tuple[str, ...]
    layout: BucketLayout | None
    int_offset: int
    int_width: int
    float_offset: int
    float_width: int


class _Owner:
    """Lives in a thread's local storage; its death tells us the thread has exited."""

    __slots__ = ("__weakref__",)


class Storage:
    """The series table and the shards of every thread of this process."""

    def __init__(self, max_series: int = 2000) -> None:
        self._lock = threading.RLock()
        self.max_series = max_series
        self._series: list[Series] = []
        self._by_key: dict[tuple[str, tuple[str, ...]], Series] = {}
        self.int_slots = 0
        self.float_slots = 0
        self._live: dict[int, tuple[list[int], list[float]]] = {}
        self._retired_ints: list[int] = []
        self._retired_floats: list[float] = []
        self._generation = 0
        self.dropped: dict[str, int] = {}

    # -- series table (slow path: decoration, scope plans, first call per endpoint) --------

    def series(
        self,
        metric: str,
        labels: tuple[str, ...],
        layout: BucketLayout | None = None,
        *,
        ints: int = 0,
        floats: int = 0,
    ) -> Series:
        """Get or create the series; past ``max_series`` return the metric's overflow series."""
        key = (metric, labels)
        found = self._by_key.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._by_key.get(key)
            if found is not None:
                return found
            if len(self._series) >= self.max_series:
                self.dropped[metric] = self.dropped.get(metric, 0) + 1
                if self.dropped[metric] == 1:
                    _log.warning(
                        "hypoprobe: more than %d series; further %s series are collapsed into "
                        "an overflow series (raise max_series, or reduce label variety)",
                        self.max_series,
                        metric,
                    )
                key = (metric, tuple(OVERFLOW for _ in labels))
                found = self._by_key.get(key)
                if found is not None:
                    return found
            int_width = layout.slots if layout is not None else ints
            made = Series(
                metric, key[1], layout, self.int_slots, int_width, self.float_slots, floats
            )
            self.int_slots += int_width
            self.float_slots += floats
            self._series.append(made)
            self._by_key[key] = made
            return made

    def all_series(self) -> list[Series]:
        with self._lock:
            return list(self._series)

    # -- shards ----------------------------------------------------------------------------

    def shard(self) -> tuple[list[int], list[float]]:
        """The calling thread's shard, created or grown to cover every series so far."""
        ints: list[int] | None = getattr(TLS, "ints", None)
        floats: list[float] | None = getattr(TLS, "floats", None)
        with self._lock:
            if ints is None or floats is None or getattr(TLS, "generation", -1) != self._generation:
                ints, floats = [], []
                owner = _Owner()
                key = id(owner)
                self._live[key] = (ints, floats)
                weakref.finalize(owner, self._retire, key, self._generation)
                TLS.owner = owner
                TLS.generation = self._generation
            if len(ints) < self.int_slots:
                ints.extend([0] * (self.int_slots - len(ints)))
            if len(floats) < self.float_slots:
                floats.extend([0.0] * (self.float_slots - len(floats)))
            TLS.ints = ints
            TLS.floats = floats
        return ints, floats

    def _retire(self, key: int, generation: int) -> None:
        """Fold an exited thread's shard into ``retired``: its counts stay, its memory goes."""
        with self._lock:
            if generation != self._generation:
                return  # a shard from before a fork: the parent reports it
            shard = self._live.pop(key, None)
            if shard is None:
                return
            _add_into(self._retired_ints, shard[0])
            _add_into(self._retired_floats, shard[1])

    def totals(self) -> tuple[list[int], list[float]]:
        """Sum of every shard, live and retired, padded to the full series table."""
        with self._lock:
            ints = [0] * self.int_slots
            floats = [0.0] * self.float_slots
            _add_into(ints, self._retired_ints)
            _add_into(floats, self._retired_floats)
            shards = list(self._live.values())
        for shard_ints, shard_floats in shards:
            # Reading another thread's list while it records is safe: each element read is
            # whole; at worst a count and its sum straddle one in-flight call.
            _add_into(ints, shard_ints)
            _add_into(floats, shard_floats)
        return ints, floats

    def reset(self) -> None:
        """Forget every series and count (tests, and the child after fork)."""
        with self._lock:
            self._series.clear()
            self._by_key.clear()
            self.int_slots = 0
            self.float_slots = 0
            self._drop_counts()

    def _drop_counts(self) -> None:
        self._generation += 1
        self._live.clear()
        self._retired_ints = []
        self._retired_floats = []
        self.dropped.clear()
        for name in ("ints", "floats", "owner"):
            if hasattr(TLS, name):
                delattr(TLS, name)

    def after_fork_in_child(self) -> None:
        """Keep the series table (sites stay valid) but start every count from zero."""
        self._lock = threading.RLock()  # a lock held by another thread at fork is stuck
        self._drop_counts()


def _add_into(target: list[int] | list[float], source: Sequence[int] | Sequence[float]) -> None:
    """target += source, element-wise, growing target when source is longer."""
    if len(source) > len(target):
        target.extend([0] * (len(source) - len(target)))
    n = len(source)
    if n:
        target[:n] = list(map(operator.add, target[:n], source))


STORAGE = Storage()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=STORAGE.after_fork_in_child)
