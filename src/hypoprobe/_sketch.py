"""Distinct customers and their summed value, as a mergeable bottom-k (KMV) sample.

A customer is a 64-bit keyed hash (see ``_observers._customers``), ``u`` that hash as a fraction of
2**64. A sketch keeps two samples of ``K`` customers each, both exact sets below ``K``:

- for the distinct count, the ``K`` smallest hashes (KMV): with ``U`` the largest kept, the
  estimate is ``(K - 1) / U``, relative standard error about ``1 / sqrt(K - 2)`` (0.78% at
  ``K = 16384``);
- for the summed value, the ``K`` smallest ranks ``u / value`` (priority sampling): with
  ``T`` the largest kept rank, the estimate is the sum over the others of
  ``max(value, 1 / T)``. A uniform sample would miss the value that a few large accounts
  hold (1% of the customers paying 85% of the revenue is ordinary); priority sampling
  keeps every customer worth more than ``1 / T`` exactly and samples only the small ones.

The union of two sketches is the bottom-k of the union of their entries, which is exactly
the sketch of the union of their customers: merging is associative, commutative and
idempotent, so threads, processes, hosts and windows merge alike, in any order, with
nothing counted twice (one customer's value is the largest given for it).

Memory is bounded per sketch: at most ``2 K`` entries of a hash and a value (16 bytes each,
512 KiB in a shard file at ``K = 16384``), whatever the number of customers or requests.

Beside the sample each sketch carries plain sums (requests, probe time, value-weighted probe
time) that merge by addition, and the wall time of its first request (merged by ``min``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__: list[str] = []

#: Entries kept per sketch.
K = 16384
#: Hashes are 64-bit; 0 marks an empty slot in shard files, so a hash is never 0.
HASH_SPACE = 1 << 64
SEEN = "seen"
AFFECTED = "affected"


def _max_value(a: float | None, b: float | None) -> float | None:
    """One customer's value, however many requests named it: the largest given."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def bottom_k(entries: Mapping[int, float | None], k: int = K) -> dict[int, float | None]:
    """The ``k`` smallest hashes of ``entries`` with their values."""
    if len(entries) <= k:
        return dict(entries)
    return {h: entries[h] for h in sorted(entries)[:k]}


def rank(h: int, value: float) -> tuple[float, int]:
    """A customer's priority-sampling rank (smaller is kept first); value must be > 0."""
    return (h / value, h)


def bottom_k_weighted(entries: Mapping[int, float], k: int = K) -> dict[int, float]:
    """The ``k`` customers of smallest rank ``hash / value``."""
    if len(entries) <= k:
        return dict(entries)
    kept = sorted(entries, key=lambda h: rank(h, entries[h]))[:k]
    return {h: entries[h] for h in kept}


def union_entries(
    parts: Iterable[Mapping[int, float | None]], k: int = K
) -> dict[int, float | None]:
    """Bottom-k of the union of several samples (values of one hash merged by max)."""
    out: dict[int, float | None] = {}
    for part in parts:
        for h, v in part.items():
            out[h] = _max_value(out.get(h), v) if h in out else v
    return bottom_k(out, k)


@dataclass(frozen=True)
class CustomerSketch:
    """The customers of one hypothesis, endpoint and segment label: ``seen`` or ``affected``.

    ``seen``: every request of the hypothesis' endpoint that named a customer. ``affected``:
    the requests whose probe share was at least ``min_share`` (and slow, where the hypothesis
    sets a slow threshold). ``entries`` maps keyed customer hashes to values (None: no value
    given); no raw id is ever part of it.
    """

    hypothesis: str
    endpoint: str
    segment: str
    kind: str
    entries: Mapping[int, float | None] = field(default_factory=dict)
    k: int = K
    #: Requests that named a customer, and the probe seconds in them.
    requests: int = 0
    probe_seconds: float = 0.0
    #: Sum over those requests of probe seconds times the customer's value.
    probe_value_seconds: float = 0.0
    #: Wall time of the first request counted (None: none yet).
    first_at: float | None = None
    #: The priority sample for value sums: hash -> value (> 0), smallest hash/value kept.
    weighted: Mapping[int, float] = field(default_factory=dict)
    #: True for a window (``Snapshot.minus``): the sums are the window's, the samples are
    #: since the start, so the distinct figures are upper bounds for the window.
    cumulative: bool = False
    #: (distinct, value) read from ``/metrics`` gauges instead of samples: a host's figures,
    #: or for several hosts their sum (an upper bound: one customer may use two hosts).
    estimate: tuple[float, float | None] | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.hypothesis, self.endpoint, self.segment, self.kind)

    @property
    def exact(self) -> bool:
        """True while fewer than ``k`` customers were seen: the figures are exact."""
        if self.estimate is not None:
            return False
        return len(self.entries) < self.k and len(self.weighted) < self.k

    def _theta(self) -> float:
        return max(self.entries) / HASH_SPACE

    def distinct(self) -> float:
        """Distinct customers (exact below ``k``; the KMV estimate above)."""
        if self.estimate is not None:
            return self.estimate[0]
        if len(self.entries) < self.k:
            return float(len(self.entries))
        return (self.k - 1) / self._theta()

    def value(self) -> float | None:
        """Summed value of the distinct customers; None when no customer had a value."""
        if self.estimate is not None:
            return self.estimate[1]
        if not self.weighted and all(v is None for v in self.entries.values()):
            return None
        if len(self.weighted) < self.k:
            return math.fsum(self.weighted.values())
        ranked = sorted(self.weighted, key=lambda h: rank(h, self.weighted[h]))
        threshold = rank(ranked[-1], self.weighted[ranked[-1]])[0] / HASH_SPACE
        floor = 1.0 / threshold
        return math.fsum(max(self.weighted[h], floor) for h in ranked[:-1])

    def merge(self, other: CustomerSketch) -> CustomerSketch:
        """The sketch of both sketches' requests together (same key)."""
        k = min(self.k, other.k)
        estimate = None
        if self.estimate is not None or other.estimate is not None:
            values = [v for v in (self.value(), other.value()) if v is not None]
            estimate = (self.distinct() + other.distinct(), sum(values) if values else None)
        firsts = [t for t in (self.first_at, other.first_at) if t is not None]
        return CustomerSketch(
            self.hypothesis,
            self.endpoint,
            self.segment,
            self.kind,
            union_entries((self.entries, other.entries), k),
            k,
            self.requests + other.requests,
            self.probe_seconds + other.probe_seconds,
            self.probe_value_seconds + other.probe_value_seconds,
            min(firsts) if firsts else None,
            bottom_k_weighted(_union_weighted(self.weighted, other.weighted), k),
            self.cumulative or other.cumulative,
            estimate,
        )

    def since(self, earlier: CustomerSketch, at: float) -> CustomerSketch:
        """The window after ``earlier`` (taken at ``at``): sums subtracted, samples kept.

        A sample cannot be subtracted; the distinct customers stay those since the start.
        Sums from a restarted source (smaller than before) are kept whole.
        """
        if earlier.requests > self.requests:
            return self
        return replace(
            self,
            requests=self.requests - earlier.requests,
            probe_seconds=max(0.0, self.probe_seconds - earlier.probe_seconds),
            probe_value_seconds=max(0.0, self.probe_value_seconds - earlier.probe_value_seconds),
            first_at=at if earlier.first_at is not None else self.first_at,
            cumulative=True,
        )

    @classmethod
    def of(
        cls,
        key: tuple[str, str, str, str],
        customers: Mapping[int, float | None],
        k: int = K,
        requests: int = 0,
    ) -> CustomerSketch:
        """The sketch of a set of customer hashes with their values (for tests and tools)."""
        weighted = {h: v for h, v in customers.items() if v is not None and v > 0}
        return cls(
            *key,
            entries=bottom_k(customers, k),
            k=k,
            requests=requests,
            weighted=bottom_k_weighted(weighted, k),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hypothesis": self.hypothesis,
            "endpoint": self.endpoint,
            "segment": self.segment,
            "kind": self.kind,
            "k": self.k,
            "requests": self.requests,
            "probe_seconds": self.probe_seconds,
            "probe_value_seconds": self.probe_value_seconds,
            "first_at": self.first_at,
            "cumulative": self.cumulative,
            "estimate": None if self.estimate is None else list(self.estimate),
            # Hex strings: 64-bit integers do not survive every JSON reader.
            "entries": [[format(h, "x"), v] for h, v in sorted(self.entries.items())],
            "weighted": [[format(h, "x"), v] for h, v in sorted(self.weighted.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CustomerSketch:
        entries: dict[int, float | None] = {}
        for h, v in data.get("entries", ()):
            entries[int(h, 16)] = None if v is None else float(v)
        weighted: dict[int, float] = {}
        for h, v in data.get("weighted", ()):
            weighted[int(h, 16)] = float(v)
        k = int(data.get("k", K))
        if k < 2 or any(not 0 < h < HASH_SPACE for h in (*entries, *weighted)):
            raise ValueError("customer sketch: bad k or hash")
        if any(not (v > 0 and math.isfinite(v)) for v in weighted.values()):
            raise ValueError("customer sketch: a value must be positive and finite")
        first = data.get("first_at")
        return cls(
            str(data["hypothesis"]),
            str(data["endpoint"]),
            str(data.get("segment", "")),
            str(data["kind"]),
            bottom_k(entries, k),
            k,
            int(data.get("requests", 0)),
            float(data.get("probe_seconds", 0.0)),
            float(data.get("probe_value_seconds", 0.0)),
            None if first is None else float(first),
            bottom_k_weighted(weighted, k),
            bool(data.get("cumulative", False)),
            _estimate(data.get("estimate")),
        )


def _estimate(raw: Any) -> tuple[float, float | None] | None:
    if raw is None:
        return None
    distinct, value = raw
    return (float(distinct), None if value is None else float(value))


def _union_weighted(a: Mapping[int, float], b: Mapping[int, float]) -> dict[int, float]:
    out = dict(a)
    for h, v in b.items():
        if v > out.get(h, 0.0):
            out[h] = v
    return out


def merge_all(sketches: Iterable[CustomerSketch]) -> tuple[CustomerSketch, ...]:
    """Merge sketches by key, in a stable order."""
    out: dict[tuple[str, str, str, str], CustomerSketch] = {}
    for s in sketches:
        found = out.get(s.key)
        out[s.key] = s if found is None else found.merge(s)
    return tuple(out[k] for k in sorted(out))
