"""Traced requests: exemplars on histogram buckets, and the slowest requests.

Everything here runs once per request, when its endpoint scope ends (``_scope._finish``
asks :func:`traced` when ``ON`` and writes the exemplars in its one pass), never per probe
call. With a sampled OpenTelemetry
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

from bisect import bisect_right
from typing import TYPE_CHECKING

from opentelemetry import context as _otel_context
from opentelemetry import trace as _trace

from .._core import _clock, _state
from .._core._plan import request_totals
from .._core._storage import STORAGE, Series
from ..model import Exemplar
from . import _slowest

if TYPE_CHECKING:
    from .._core._scope import Scope

__all__: list[str] = []

#: Exemplars, slowest requests or span annotations are wanted (``_scope._finish`` reads
#: its own two switches, set by ``configure()`` beside this one).
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
_SAMPLED = _trace.TraceFlags.SAMPLED


def traced() -> tuple[_trace.Span, int, int] | None:
    """The calling context's sampled span, as (span, trace id, span id); None if none.

    ``_scope._finish`` asks once per request when ``EXEMPLARS`` or ``ANNOTATE`` is on, and
    writes the request's exemplars into :data:`_KEPT` in its one pass over the request.
    """
    # An empty OpenTelemetry context holds no span: one cheap lookup decides most untraced
    # requests before the (several times dearer) current-span lookup.
    current = _get_current_context()
    if not current:
        return None
    span = _get_current_span(current)
    context = span.get_span_context()
    trace_id, span_id = context.trace_id, context.span_id
    # SpanContext.is_valid without the property's cost; and, as OpenTelemetry's default
    # exemplar filter, only sampled spans: others never reach a trace store.
    if trace_id and span_id and context.trace_flags & _SAMPLED:
        return span, trace_id, span_id
    return None


def annotate(span: _trace.Span, scope: Scope, elapsed: int) -> None:
    """Write each hypothesis' part of this request onto its span (configure(annotate_spans)).

    Attributes: ``hypoprobe.hypotheses`` (the ids judged on this request), and per id
    ``hypoprobe.<id>.probe_seconds``, ``.share`` and ``.calls``.
    """
    acc = scope.acc
    attributes: dict[str, str | float | int | list[str]] = {}
    ids = []
    for hp in scope.plan.hypotheses:
        probe_ns, calls = request_totals(acc, hp.positions)
        hid = hp.hypothesis.id
        ids.append(hid)
        attributes[f"hypoprobe.{hid}.probe_seconds"] = probe_ns / 1e9
        attributes[f"hypoprobe.{hid}.share"] = probe_ns / elapsed if elapsed > 0 else 0.0
        attributes[f"hypoprobe.{hid}.calls"] = calls
    if ids:
        attributes["hypoprobe.hypotheses"] = ids
        span.set_attributes(attributes)


def _annotate_observer(scope: Scope, elapsed: int, span: _trace.Span | None) -> None:
    if span is not None:  # only a sampled span is annotated
        annotate(span, scope, elapsed)


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
    from .._core import _scope  # imported late: _scope imports this module

    _scope.observe("exemplars", _annotate_observer, on=annotate_spans)
    _slowest.configure(slowest_requests, slowest_window_seconds)
    ON = exemplars or slowest_requests > 0 or annotate_spans
    if not exemplars:
        _KEPT.clear()


def _reset() -> None:
    # After a fork the parent's exemplars point at buckets the child has not counted.
    _KEPT.clear()


_state.owns("exemplars", reset=_reset)
