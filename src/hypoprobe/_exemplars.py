"""Traced requests: exemplars on histogram buckets, and the slowest requests.

Everything here runs once per request, when its endpoint scope ends (``_scope._finish``
calls :func:`after_request` when ``ON``), never per probe call. With a sampled OpenTelemetry
span active, the request offers an exemplar (value, trace id, span id, wall time) for each bucket
it landed in: its endpoint duration, and for each probe it called, its probe time and share.
Each bucket keeps one exemplar, the newest: requests on any thread replace it with a plain
dict item assignment keyed by the storage slot, which is atomic under the GIL, so no lock is
taken. Collection turns slots back into (series, bucket) and drops exemplars older than
``TTL`` (a few scrape intervals), so a bucket no recent traced request reached shows none.

The exemplars are this process' own; in multi-process mode a process shows its own traced
requests on buckets whose counts cover the whole host.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from opentelemetry import context as _otel_context
from opentelemetry import trace as _trace

from . import _buckets, _clock, _faults, _slowest, _state
from ._hypothesis import OTHER_SEGMENT
from ._plan import CALLS_SHIFT as _CALLS_SHIFT
from ._plan import TIME_MASK
from ._storage import STORAGE, Series
from .model import Exemplar

if TYPE_CHECKING:
    from ._scope import Scope

__all__: list[str] = []

#: The one switch ``_scope._finish`` reads: exemplars or slowest requests are wanted.
ON = True
#: configure(exemplars=...).
EXEMPLARS = True
#: configure(annotate_spans=...).
ANNOTATE = False
#: Exemplars older than this (seconds) are dropped at collection.
TTL = 300.0

#: Own storage slot (series offset + bucket) -> (value, trace id, span id, wall time).
_KEPT: dict[int, tuple[float, int, int, float]] = {}

_get_current_span = _trace.get_current_span
_get_current_context = _otel_context.get_current
_DURATION_BOUNDS = _buckets.DURATION.bounds
_SHARE_BOUNDS = _buckets.SHARE.bounds
_PPB = 1_000_000_000
_SAMPLED = _trace.TraceFlags.SAMPLED


def after_request(scope: Scope, elapsed: int) -> None:
    """Offer one finished request (``elapsed`` ns) as exemplar and as slow request."""
    try:
        trace_id = 0
        # An empty OpenTelemetry context holds no span: one cheap lookup decides most
        # untraced requests before the (several times dearer) current-span lookup.
        if (EXEMPLARS or ANNOTATE) and (current := _get_current_context()):
            span = _get_current_span(current)
            context = span.get_span_context()
            trace_id, span_id = context.trace_id, context.span_id
            # SpanContext.is_valid without the property's cost; and, as OpenTelemetry's
            # default exemplar filter, only sampled spans: others never reach a trace store.
            if trace_id and span_id and context.trace_flags & _SAMPLED:
                if EXEMPLARS:
                    _offer(scope, elapsed, trace_id, span_id)
                if ANNOTATE:
                    annotate(span, scope, elapsed)
            else:
                trace_id = 0
        if _slowest.K:
            _slowest.offer(scope, elapsed, trace_id)
    except Exception:  # never let a trace lookup break the request
        _faults.record("exemplars")


def annotate(span: _trace.Span, scope: Scope, elapsed: int) -> None:
    """Write each hypothesis' part of this request onto its span (configure(annotate_spans)).

    Attributes: ``hypoprobe.hypotheses`` (the ids judged on this request), and per id
    ``hypoprobe.<id>.probe_seconds``, ``.share`` and ``.calls``.
    """
    acc = scope.acc
    attributes: dict[str, str | float | int | list[str]] = {}
    ids = []
    for hp in scope.plan.hypotheses:
        probe_ns = calls = 0
        for pos in hp.positions:
            slot = acc[pos]
            probe_ns += slot & TIME_MASK
            calls += slot >> _CALLS_SHIFT
        hid = hp.hypothesis.id
        ids.append(hid)
        attributes[f"hypoprobe.{hid}.probe_seconds"] = probe_ns / 1e9
        attributes[f"hypoprobe.{hid}.share"] = probe_ns / elapsed if elapsed > 0 else 0.0
        attributes[f"hypoprobe.{hid}.calls"] = calls
    if ids:
        attributes["hypoprobe.hypotheses"] = ids
        span.set_attributes(attributes)


def _offer(scope: Scope, elapsed: int, trace_id: int, span_id: int) -> None:
    """Make this request the exemplar of every bucket it landed in (the rule of ``_finish``)."""
    now = _clock.wall()
    kept = _KEPT
    plan = scope.plan
    kept[plan.endpoint_offset + bisect_left(_DURATION_BOUNDS, elapsed)] = (
        elapsed / _PPB,
        trace_id,
        span_id,
        now,
    )
    acc = scope.acc
    segment = scope.segment
    for hp in plan.hypotheses:
        if hp.allowed is None:
            label = ""
        elif hp.only is not None and segment != hp.only:
            continue
        else:
            label = segment if segment in hp.allowed else OTHER_SEGMENT
        series = hp.series.get(label)
        if series is None:
            continue
        slow = 1 if elapsed > hp.slow_ns else 0
        for pos, request_offsets, share_off, _ in series.rows:
            slot = acc[pos]
            if not slot:
                continue
            p = slot & TIME_MASK
            kept[request_offsets[slow] + bisect_left(_DURATION_BOUNDS, p)] = (
                p / _PPB,
                trace_id,
                span_id,
                now,
            )
            share = p * _PPB // elapsed if elapsed > 0 else 0
            kept[share_off + bisect_left(_SHARE_BOUNDS, share)] = (
                share / _PPB,
                trace_id,
                span_id,
                now,
            )


def _own_series() -> tuple[list[Series], list[int]]:
    """This process' own series table (the offsets the slots above index) and its offsets.

    In multi-process mode ``STORAGE.all_series()`` lays out the host-wide table with other
    offsets; the own table is appended to in offset order, so it is already sorted.
    """
    own = STORAGE.own_series()
    return own, [s.int_offset for s in own]


def collect() -> dict[tuple[str, tuple[str, ...]], tuple[Exemplar, ...]]:
    """Live exemplars by series key (metric, labels); expired ones are dropped here."""
    if not _KEPT:
        return {}
    cutoff = _clock.wall() - TTL
    own, starts = _own_series()
    found: dict[tuple[str, tuple[str, ...]], list[Exemplar]] = {}
    for slot, entry in _KEPT.copy().items():  # copy(): requests keep writing meanwhile
        value, trace_id, span_id, at = entry
        if at < cutoff:
            if _KEPT.get(slot) is entry:  # not replaced since the copy
                _KEPT.pop(slot, None)
            continue
        i = bisect_right(starts, slot) - 1
        if i < 0:
            continue
        s = own[i]
        bucket = slot - s.int_offset
        if s.layout is None or bucket >= s.layout.buckets:
            continue
        found.setdefault((s.metric, s.labels), []).append(
            Exemplar(
                bucket,
                value,
                _trace.format_trace_id(trace_id),
                _trace.format_span_id(span_id),
                at,
            )
        )
    return {key: tuple(sorted(exs, key=lambda ex: ex.bucket)) for key, exs in found.items()}


def configure(
    exemplars: bool,
    slowest_requests: int,
    slowest_window_seconds: float,
    annotate_spans: bool = False,
) -> None:
    """Apply the settings; ``ON`` is what the request path checks."""
    global ANNOTATE, EXEMPLARS, ON
    EXEMPLARS = exemplars
    ANNOTATE = annotate_spans
    _slowest.configure(slowest_requests, slowest_window_seconds)
    ON = exemplars or slowest_requests > 0 or annotate_spans
    if not exemplars:
        _KEPT.clear()


def _reset() -> None:
    # After a fork the parent's exemplars point at buckets the child has not counted.
    _KEPT.clear()


_state.owns("exemplars", reset=_reset)
