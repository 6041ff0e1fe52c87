"""Whom a request served: ``hypoprobe.customer()`` and the per-hypothesis customer sketches.

``customer(account_id, value)`` only stores the id on the current scope. At the scope's end
(one hook in ``_scope._finish``, only for requests that named a customer) the id is hashed
with the deployment's key (``configure(customer_key=...)`` / ``HYPOPROBE_CUSTOMER_KEY``):
keyed BLAKE2b, 64 bits. Only that hash is kept, in the sketches of ``_sketch``; the raw id
is never stored, exported, logged or used as a label, and without the key a hash cannot be
tied back to an account by guessing ids. With no key configured nothing is recorded (a
fault, logged once): a per-process random key would count one customer once per process.

Per process there is one sketch per (hypothesis, endpoint, segment label, seen/affected),
guarded by its own lock. In multi-process mode each sketch is backed by a memory-mapped file
``customers-PID-START-N.hpc`` in the multi-process directory, written through on every
change, so a worker killed with SIGKILL keeps what it recorded; collection unions the files
of every process, live and dead.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import math
import mmap
import os
import struct
import threading
import time
from typing import Any

from .._core import _faults, _multiproc, _plan, _scope, _state
from .._core._hypothesis import OTHER_SEGMENT
from .._sketch import AFFECTED, SEEN, CustomerSketch, K, merge_all

__all__ = ["customer"]

_log = logging.getLogger("hypoprobe")

#: The keyed-hash key (32 bytes), or None: customers are not recorded.
KEY: bytes | None = None
_warned_no_key = False

PREFIX = "customers-"
SUFFIX = ".hpc"
_MAGIC = b"HPCUST\x00\x01"
_HEADER = 4096
_SCALARS_AT = 3072
_SCALARS = struct.Struct("<qqdd")  # requests, probe ns, probe-value seconds, first_at
_NEVER = _plan.NEVER


def set_key(secret: str | None) -> None:
    """Use ``secret`` (from the configuration) as the hash key; None stops recording."""
    global KEY
    KEY = None if secret is None else hashlib.sha256(secret.encode("utf-8")).digest()


def hash_id(account_id: object, key: bytes) -> int:
    """The keyed 64-bit hash of an id (``str(id)``: 42 and "42" are one customer); never 0."""
    digest = hashlib.blake2b(str(account_id).encode("utf-8"), key=key, digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def customer(account_id: str | int, value: float | None = None) -> None:
    """Name the customer the current request serves, and optionally what it is worth.

    ``account_id`` is an account or tenant id (a string or an integer); it is hashed with the
    deployment's key (``configure(customer_key=...)`` or ``HYPOPROBE_CUSTOMER_KEY``) at the
    end of the request and never stored raw. ``value`` is what the customer pays (per month,
    say) or any non-negative weight; reports sum it over the distinct customers a hypothesis
    affects. Outside an endpoint scope, or with a bad id or value, it does nothing (and
    never raises); a later call in the same request wins.

    Example::

        with hypoprobe.endpoint("GET /campaigns"):
            hypoprobe.customer(account.id, value=account.monthly_fee)
            ...
    """
    scope = _scope.CURRENT.get()
    if scope is None:
        return
    if isinstance(account_id, bool) or not isinstance(account_id, (str, int)):
        _faults.record("customer_id_type")
        return
    if value is not None:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            _faults.record("customer_value")
            return
        value = float(value)
    if not _observing:
        _observe()
    scope.customer = (account_id, value)


#: The request-end observer is registered from the first customer(): until then a request
#: pays nothing for customers.
_observing = False


def _observe() -> None:
    global _observing
    _scope.observe("customers", _after_request_observer)
    _observing = True


def _after_request_observer(scope: Any, elapsed: int, span: object) -> None:
    if scope.customer is not None:  # named by hypoprobe.customer() in this request
        after_request(scope, elapsed)


class _File:
    """The memory-mapped backing of one sketch in multi-process mode.

    After the header: the count sample's hashes then values (``k`` each), then the value
    sample's hashes then values. A hash of 0 is an empty slot.
    """

    def __init__(self, directory: str, key: tuple[str, str, str, str], k: int, seq: int) -> None:
        pid = os.getpid()
        meta = json.dumps({"key": list(key), "k": k, "pid": pid}).encode()
        if 16 + len(meta) > _SCALARS_AT:
            raise ValueError("customer sketch key too long")
        size = _HEADER + 32 * k
        started = _multiproc.start_time(pid)
        name = f"{PREFIX}{pid}-{started}-{seq}{SUFFIX}"
        tmp = os.path.join(directory, f"{_multiproc.TMP_PREFIX}{name}")
        with open(tmp, "wb") as f:
            f.truncate(size)
            f.write(_MAGIC + struct.pack("<I", len(meta)) + b"\0\0\0\0" + meta)
            f.seek(_SCALARS_AT)
            f.write(_SCALARS.pack(0, 0, 0.0, math.nan))
        os.replace(tmp, os.path.join(directory, name))  # readers never see half a header
        with open(os.path.join(directory, name), "r+b") as f:
            self.map = mmap.mmap(f.fileno(), size)
        view = memoryview(self.map)
        self.scalars_i = view[_SCALARS_AT : _SCALARS_AT + 16].cast("q")
        self.scalars_f = view[_SCALARS_AT + 16 : _SCALARS_AT + 32].cast("d")
        self.regions = [
            (view[at : at + 8 * k].cast("Q"), view[at + 8 * k : at + 16 * k].cast("d"))
            for at in (_HEADER, _HEADER + 16 * k)
        ]


class _Sample:
    """One bottom-k sample being recorded: by hash (counts) or by hash / value (values)."""

    __slots__ = ("entries", "free", "hashes", "heap", "slot_of", "values", "weighted")

    def __init__(self, weighted: bool, region: tuple[Any, Any] | None) -> None:
        self.weighted = weighted
        self.entries: dict[int, float | None] = {}
        #: Negated ranks with their hash: the largest kept rank on top.
        self.heap: list[tuple[float, int]] = []
        self.hashes: Any = region[0] if region is not None else None
        self.values: Any = region[1] if region is not None else None
        self.slot_of: dict[int, int] = {}
        self.free = list(range(K - 1, -1, -1)) if region is not None else []

    def add(self, h: int, value: float | None) -> None:
        entries = self.entries
        if h in entries:
            old = entries[h]
            if value is not None and (old is None or value > old):
                entries[h] = value
                self._write(h, value)
            return
        # The same rank as _sketch's bottom-k (exact ints for counts), so that what is kept
        # here is exactly the sample a merge would keep.
        r: float = h / value if self.weighted and value else h
        if len(entries) < K:
            entries[h] = value
            heapq.heappush(self.heap, (-r, h))
            self._write(h, value)
        elif r < -self.heap[0][0]:
            evicted = heapq.heapreplace(self.heap, (-r, h))[1]
            del entries[evicted]
            entries[h] = value
            self._write(h, value, evicted)

    def _write(self, h: int, value: float | None, evicted: int = 0) -> None:
        hashes, values = self.hashes, self.values
        if hashes is None or values is None:
            return
        slot = self.slot_of.get(h)
        if slot is None:
            slot = self.slot_of.pop(evicted) if evicted else self.free.pop()
            self.slot_of[h] = slot
        # Empty the slot first: a process killed between the stores leaves an empty slot
        # (losing only the entry being evicted), never a hash paired with another's value.
        hashes[slot] = 0
        values[slot] = math.nan if value is None else value
        hashes[slot] = h


class _Live:
    """One sketch being recorded by this process."""

    __slots__ = (
        "by_value",
        "count",
        "file",
        "first_at",
        "key",
        "lock",
        "probe_ns",
        "probe_value",
        "requests",
    )

    def __init__(self, key: tuple[str, str, str, str], file: _File | None) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.requests = 0
        self.probe_ns = 0
        self.probe_value = 0.0
        self.first_at: float | None = None
        self.file = file
        regions = file.regions if file is not None else [None, None]
        self.count = _Sample(False, regions[0])
        self.by_value = _Sample(True, regions[1])

    def add(self, h: int, value: float | None, probe_ns: int) -> None:
        with self.lock:
            self.requests += 1
            self.probe_ns += probe_ns
            if value is not None:
                self.probe_value += probe_ns / 1e9 * value
            if self.first_at is None:
                self.first_at = time.time()
            self.count.add(h, value)
            if value:
                self.by_value.add(h, value)
            f = self.file
            if f is not None:
                f.scalars_i[0] = self.requests
                f.scalars_i[1] = self.probe_ns
                f.scalars_f[0] = self.probe_value
                f.scalars_f[1] = self.first_at

    def frozen(self) -> CustomerSketch:
        with self.lock:
            return CustomerSketch(
                *self.key,
                entries=dict(self.count.entries),
                requests=self.requests,
                probe_seconds=self.probe_ns / 1e9,
                probe_value_seconds=self.probe_value,
                first_at=self.first_at,
                weighted={h: v for h, v in self.by_value.entries.items() if v},
            )


_lock = threading.Lock()
_LIVE: dict[tuple[str, str, str, str], _Live] = {}
_seq = 0


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


def _reset() -> None:
    # After a fork the child starts from zero, as the histogram storage does: the parent
    # reports its own.
    global _LIVE, _seq
    with _lock:
        _LIVE = {}
        _seq = 0


_state.owns("customers", after_fork=_after_fork_in_child, reset=_reset)


def _live(key: tuple[str, str, str, str]) -> _Live:
    global _seq
    found = _LIVE.get(key)
    if found is not None:
        return found
    with _lock:
        found = _LIVE.get(key)
        if found is None:
            from .._config import HOLDER

            directory = HOLDER.config.multiproc_dir
            file = None
            if directory is not None:
                try:
                    _seq += 1
                    file = _File(directory, key, K, _seq)
                except Exception:
                    _faults.record("customer_file")
            found = _LIVE[key] = _Live(key, file)
        return found


def after_request(scope: Any, elapsed: int) -> None:
    """The scope's-end hook: add the request's customer to its hypotheses' sketches."""
    global _warned_no_key
    key = KEY
    if key is None:
        _faults.record("customer_key_missing")
        if not _warned_no_key:
            _warned_no_key = True
            _log.warning(
                "hypoprobe: customer() was called but no customer key is configured; "
                "customers are not recorded (set HYPOPROBE_CUSTOMER_KEY or "
                "configure(customer_key=...), the same secret on every host)"
            )
        return
    account_id, value = scope.customer
    h = hash_id(account_id, key)
    plan = scope.plan
    endpoint = _plan.ENDPOINT_NAMES[plan.endpoint_index]
    acc = scope.acc
    segment = scope.segment
    for hp in plan.hypotheses:
        allowed, slow_ns = hp.allowed, hp.slow_ns
        if allowed is None:
            label = ""
        else:
            if hp.only is not None and segment != hp.only:
                continue
            label = segment if segment is not None and segment in allowed else OTHER_SEGMENT
        total = _plan.request_totals(acc, hp.positions)[0]
        hid = hp.hypothesis.id
        _live((hid, endpoint, label, SEEN)).add(h, value, total)
        share = total / elapsed if elapsed > 0 else 0.0
        # total: a survey candidate's min_share is 0, and a request that never ran it is
        # not affected by it (a declared hypothesis' min_share > 0 implies it already).
        if total and share >= hp.hypothesis.min_share and (slow_ns == _NEVER or elapsed > slow_ns):
            _live((hid, endpoint, label, AFFECTED)).add(h, value, total)


def _read_file(path: str) -> CustomerSketch | None:
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != _MAGIC:
        return None
    (meta_len,) = struct.unpack_from("<I", data, 8)
    meta = json.loads(data[16 : 16 + meta_len])
    k = int(meta["k"])
    requests, probe_ns, probe_value, first_at = _SCALARS.unpack_from(data, _SCALARS_AT)
    samples: list[dict[int, float | None]] = []
    for at in (_HEADER, _HEADER + 16 * k):
        hashes = memoryview(data)[at : at + 8 * k].cast("Q")
        values = memoryview(data)[at + 8 * k : at + 16 * k].cast("d")
        samples.append(
            {h: None if math.isnan(v) else v for h, v in zip(hashes, values, strict=True) if h}
        )
    entries, by_value = samples
    hid, endpoint, segment, kind = (str(part) for part in meta["key"])
    return CustomerSketch(
        hid,
        endpoint,
        segment,
        kind,
        entries=entries,
        k=k,
        requests=requests,
        probe_seconds=probe_ns / 1e9,
        probe_value_seconds=probe_value,
        first_at=None if math.isnan(first_at) else first_at,
        weighted={h: v for h, v in by_value.items() if v is not None and v > 0},
    )


#: Files of processes that have exited never change again: read once. Path -> sketch.
_DEAD: dict[str, CustomerSketch | None] = {}


def _read_cached(path: str, name: str) -> CustomerSketch | None:
    """A sketch file's contents, read once if its process has exited, else every time."""
    if path in _DEAD:
        return _DEAD[path]
    try:
        pid, started = (int(part) for part in name[len(PREFIX) :].split("-")[:2])
        # Asked before reading: a process dead already wrote its last before this read.
        dead = pid != os.getpid() and not _multiproc.is_alive(pid, started)
    except ValueError:
        dead = False
    found = _read_file(path)
    if dead:
        _DEAD[path] = found
    return found


def collect() -> tuple[CustomerSketch, ...]:
    """Every sketch of this process, or in multi-process mode of every process' files."""
    from .._config import HOLDER

    with _lock:
        live = list(_LIVE.values())
    out = [s.frozen() for s in live if s.file is None]
    directory = HOLDER.config.multiproc_dir
    if directory is not None:
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(directory)):
                if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
                    continue
                try:
                    found = _read_cached(os.path.join(directory, name), name)
                except Exception:
                    _faults.record("customer_file_read")
                    continue
                if found is not None:
                    out.append(found)
    return merge_all(out)


#: A middleware's ``customer=`` option: request -> id, (id, value), or None.
CustomerOf = Any


def from_request(fn: CustomerOf | None, arg: Any, scope: Any) -> None:
    """Call a middleware's ``customer=`` function and name the request's customer.

    Only for a request with a scope (``scope`` not None). Never raises: a function that
    fails, or returns something else than an id, an ``(id, value)`` pair or None, is
    counted as the fault ``integration_customer``.
    """
    if fn is None or scope is None:
        return
    try:
        found = fn(arg)
        if found is None:
            return
        if isinstance(found, tuple):
            account_id, value = found
        else:
            account_id, value = found, None
    except Exception:
        _faults.record("integration_customer")
        return
    current = _scope.CURRENT
    if current.get() is scope:
        customer(account_id, value)
    else:  # the integration opened the scope in another context than the app runs in
        token = current.set(scope)
        try:
            customer(account_id, value)
        finally:
            current.reset(token)
