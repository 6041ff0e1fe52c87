"""Series table and per-thread shards: where recorded integers live until collection.

Recording writes only into the calling thread's own shard (two flat lists: integers, and
floats for the squared moments), at offsets resolved once per series. Nothing on the
recording path takes a lock or looks up labels. Collection sums every live shard plus the
shards of threads that have exited (folded into ``retired`` when the thread dies, so
thread churn neither loses counts nor grows memory).

After ``fork()`` the child starts from zero: whatever the parent recorded is the parent's
to report, so a pre-fork server never counts it twice.

In multi-process mode (``multiproc_dir``) a thread's shard is instead an int64 and a float64
``memoryview`` over its own memory-mapped file (``_multiproc``), which also records the
series table; collection then reads every file of the directory, live and dead processes
alike, and sums by series key. The recording path cannot tell the difference.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import weakref
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import _faults, _multiproc, _state, _steady
from ._buckets import LAYOUTS, BucketLayout

__all__: list[str] = []

_log = logging.getLogger("hypoprobe")

OVERFLOW = "__overflow__"

#: Thread-local holder of the calling thread's shard: ``ints`` and ``floats``, and both as
#: one tuple ``shard`` (a request's end reads one thread-local attribute, not two; whoever
#: sets one sets all three). The recording path reads it directly; it is never replaced,
#: so it can be imported.
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
        self._pid = os.getpid()
        self.dropped: dict[str, int] = {}
        # Multi-process mode: the directory, each series' encoded record (written into every
        # shard file before the series' slots are used), and the collection-side key table.
        self.directory: _multiproc.Directory | None = None
        self._records: list[bytes] = []
        self._collect_lock = threading.Lock()
        self._merged = _multiproc.Totals()
        #: True while the lock's holder is inside shard(): only that thread reads it.
        self._busy = False
        #: Float totals as last reported: a retired shard's regrouping never steps them back.
        self._steady = _steady.SteadyFloats()

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
            # Reserve the slots in statements without a call between the read and the
            # write: a signal handler (CPython 3.11+ runs one only at calls and loop jumps)
            # creating a series on this thread then never gets the same offsets.
            int_offset, float_offset = self.int_slots, self.float_slots
            self.int_slots, self.float_slots = int_offset + int_width, float_offset + floats
            made = Series(metric, key[1], layout, int_offset, int_width, float_offset, floats)
            self._series.append(made)
            self._by_key[key] = made
            self._records.append(_multiproc.encode_record(_record_of(made)))
            return made

    def is_full(self) -> bool:
        """Whether a new series would be refused (the overflow series given instead)."""
        return len(self._series) >= self.max_series

    def own_series(self) -> list[Series]:
        """This process' own series table, whose offsets index its shards (any mode)."""
        with self._lock:
            return list(self._series)

    def all_series(self) -> list[Series]:
        """Every series; in multi-process mode, of every file in the directory too.

        Offsets index :meth:`totals`' lists, which only ever grow at the end, so a table
        read before ``totals()`` stays valid for its result.
        """
        if self.directory is None:
            with self._lock:
                return list(self._series)
        with self._collect_lock:
            merged = self._merged
            for _, records, _, _ in self.directory.sources(with_data=False):
                for rec in records:
                    merged.slot(rec.key, rec.layout, rec.int_width, rec.float_width)
            with self._lock:
                own = list(self._series)
            for s in own:
                merged.slot((s.metric, s.labels), _layout_name(s), s.int_width, s.float_width)
            out = []
            for key in merged.order:
                layout, io, iw, fo, fw = merged.index[key]
                if layout is not None and layout not in LAYOUTS:
                    continue  # written by another hypoprobe version: summed, not shown
                out.append(Series(key[0], key[1], LAYOUTS.get(layout or ""), io, iw, fo, fw))
            return out

    # -- shards ----------------------------------------------------------------------------

    def shard(self) -> tuple[Any, Any]:
        """The calling thread's shard, created or grown to cover every series so far.

        Invariants the recording path relies on: a shard grows by whole series (it covers
        all of a series' slots or none, because ``int_slots`` moves by a whole series under
        the lock), so a write that found its first slot finds the series' sum slot too and
        a failed fast path has changed nothing; and a caller that may have created a series
        re-reads its shard aliases from here (in multi-process mode the views can be over a
        new file).

        Two flat mutable sequences (ints, floats): lists, or in multi-process mode int64 and
        float64 memoryviews over the thread's file. Never raises on a full disk or the like:
        it counts the fault and falls back to an in-memory shard.

        A signal handler can run on this thread in the middle of this very call, and its
        request then needs a shard too: it gets (and installs, for the handler's duration)
        the thread's spare in-memory shard, always collected, while the interrupted call's
        own shard stays registered and is installed when it resumes. (Creating a shard from
        inside would retire the one the interrupted call is about to install: nobody would
        collect it again.)
        """
        with self._lock:
            if self._busy:
                return self._spare_shard()
            self._busy = True
            try:
                return self._shard_locked()
            finally:
                self._busy = False

    def _spare_shard(self) -> tuple[list[int], list[float]]:
        spare = getattr(TLS, "spare", None)
        if spare is None or spare[0] != self._generation:
            ints: list[int] = []
            floats: list[float] = []
            owner = _Owner()
            key = id(owner)
            self._live[key] = (ints, floats)
            weakref.finalize(owner, self._retire, key, self._generation)
            spare = TLS.spare = (self._generation, owner, ints, floats)
        ints, floats = spare[2], spare[3]
        return self._install(ints, floats)

    def _install(self, ints: list[int], floats: list[float]) -> tuple[list[int], list[float]]:
        """Grow an in-memory shard to cover every series so far; make it the thread's."""
        if len(ints) < self.int_slots:
            ints.extend([0] * (self.int_slots - len(ints)))
        if len(floats) < self.float_slots:
            floats.extend([0.0] * (self.float_slots - len(floats)))
        TLS.ints = ints
        TLS.floats = floats
        TLS.shard = (ints, floats)
        return ints, floats

    def _shard_locked(self) -> tuple[Any, Any]:
        stale = getattr(TLS, "generation", -1) != self._generation
        if self.directory is not None:
            try:
                return self._file_shard(stale)
            except Exception:
                _faults.record("multiproc_shard")
                stale = stale or getattr(TLS, "file", None) is not None
        elif getattr(TLS, "file", None) is not None:
            stale = True  # multi-process mode was switched off
        return self._list_shard(stale)

    def _list_shard(self, stale: bool) -> tuple[list[int], list[float]]:
        ints: list[int] | None = None if stale else getattr(TLS, "ints", None)
        floats: list[float] | None = None if stale else getattr(TLS, "floats", None)
        if ints is None or floats is None or not isinstance(ints, list):
            ints, floats = [], []
            owner = _Owner()
            key = id(owner)
            self._live[key] = (ints, floats)
            weakref.finalize(owner, self._retire, key, self._generation)
            TLS.owner = owner
            TLS.generation = self._generation
            TLS.file = None
        return self._install(ints, floats)

    def _file_shard(self, stale: bool) -> tuple[Any, Any]:
        assert self.directory is not None
        shard: _multiproc.ShardFile | None = None if stale else getattr(TLS, "file", None)
        pending = self._records[shard.n_series :] if shard is not None else self._records
        table_bytes = sum(map(len, pending))
        if shard is None or not shard.fits(table_bytes, self.int_slots, self.float_slots):
            old = shard
            pid = os.getpid()
            shard = _multiproc.ShardFile(
                self.directory.path,
                pid=pid,
                started=_own_start_time(pid),
                int_cap=max(1 << 16, 2 * self.int_slots),
                float_cap=max(1 << 12, 2 * self.float_slots),
                table_cap=max(1 << 18, 2 * sum(map(len, self._records))),
            )
            pending = self._records
            if old is not None:
                old.retire()  # this thread records into the new file from now on
            owner = _Owner()
            weakref.finalize(owner, shard.retire)
            TLS.owner = owner  # the previous owner's finalizer retires its shard
            TLS.generation = self._generation
            TLS.file = shard
        if pending:
            shard.append(list(pending))
        ints, floats = shard.views(self.int_slots, self.float_slots)
        TLS.ints = ints
        TLS.floats = floats
        TLS.shard = (ints, floats)
        return ints, floats

    def _retire(self, key: int, generation: int) -> None:
        """Fold an exited thread's shard into ``retired``: its counts stay, its memory goes."""
        if os.getpid() != self._pid:
            # Inside fork, in the child: the parent's other threads are being discarded,
            # before the after-fork handler renews the lock one of them may hold.
            return
        with self._lock:
            if generation != self._generation:
                return  # a shard from before a fork: the parent reports it
            shard = self._live.pop(key, None)
            if shard is None:
                return
            _add_into(self._retired_ints, shard[0])
            _add_into(self._retired_floats, shard[1])

    def totals(self) -> tuple[list[int], list[float]]:
        """Sum of every shard, live and retired, padded to the full series table.

        In multi-process mode: the sum over every file of the directory (and any in-memory
        shard of this process), laid out as :meth:`all_series` says.
        """
        if self.directory is None:
            own_ints, own_floats = self._memory_totals()
            return own_ints, self._steady.hold(own_floats)
        with self._collect_lock:
            merged = self._merged
            merged.ints = [0] * len(merged.ints)
            merged.floats = [0.0] * len(merged.floats)
            directory = self.directory
            for name, records, ints, floats in directory.sources(with_data=True):
                damaged: list[_multiproc.Key] = []
                if not merged.add(records, ints, floats, damaged):
                    _faults.record("multiproc_series_clash")
                if damaged:
                    directory.note_damaged(name, damaged)
            with self._lock:
                own = [_record_of(s) for s in self._series]
            mem_ints, mem_floats = self._memory_totals()
            merged.add(own, array("q", mem_ints).tobytes(), array("d", mem_floats).tobytes())
            out = list(merged.ints), self._steady.hold(merged.floats)
        self._maybe_compact()
        return out

    def _maybe_compact(self) -> None:
        """Fold dead workers' files into the archive once enough have piled up."""
        directory = self.directory
        if directory is None:
            return
        try:
            if len(directory.compactable()) >= _multiproc.COMPACT_AT:
                directory.compact()
        except Exception:
            _faults.record("multiproc_compact")

    def use_directory(self, path: str | None) -> None:
        """Switch multi-process mode on (a validated directory) or off (None).

        Threads move to file shards the next time they need a shard; counts already in
        memory are still reported by this process. Set it before recording starts.
        """
        with self._lock, self._collect_lock:
            current = self.directory.path if self.directory is not None else None
            if path == current:
                return
            self.directory = _multiproc.Directory(path) if path is not None else None
            self._merged = _multiproc.Totals()
            self._steady.forget()  # another layout: the old totals index other series

    def _memory_totals(self) -> tuple[list[int], list[float]]:
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

    def _drop_counts(self) -> None:
        self._generation += 1
        self._steady.forget()
        self._live.clear()
        self._retired_ints = []
        self._retired_floats = []
        self.dropped.clear()
        for name in ("ints", "floats", "owner", "file", "spare"):
            if hasattr(TLS, name):
                delattr(TLS, name)

    def after_fork_in_child(self) -> None:
        """A child's own locks, pid and directory handle; :meth:`reset` then empties it."""
        self._lock = threading.RLock()  # a lock held by another thread at fork is stuck
        self._collect_lock = threading.Lock()
        self._busy = False
        self._steady = _steady.SteadyFloats()  # its lock too may be held by a lost thread
        self._pid = os.getpid()
        if self.directory is not None:
            self.directory = _multiproc.Directory(self.directory.path)

    def reset(self) -> None:
        """Keep the series table (sites stay valid) but start every count from zero."""
        with self._lock:
            self._drop_counts()


def _layout_name(series: Series) -> str | None:
    return series.layout.name if series.layout is not None else None


def _record_of(series: Series) -> _multiproc.Record:
    return _multiproc.Record(
        (series.metric, series.labels),
        _layout_name(series),
        series.int_offset,
        series.int_width,
        series.float_offset,
        series.float_width,
    )


_START_TIME: dict[int, int] = {}


def _own_start_time(pid: int) -> int:
    """This process' start time, read once per pid (a forked child has a new one)."""
    found = _START_TIME.get(pid)
    if found is None:
        found = _START_TIME[pid] = _multiproc.start_time(pid)
    return found


def _add_into(target: list[int] | list[float], source: Sequence[int] | Sequence[float]) -> None:
    """target += source, element-wise, growing target when source is longer."""
    if len(source) > len(target):
        target.extend([0] * (len(source) - len(target)))
    n = len(source)
    if n:
        target[:n] = list(map(operator.add, target[:n], source))


STORAGE = Storage()

_state.owns("storage", after_fork=STORAGE.after_fork_in_child, reset=STORAGE.reset)
