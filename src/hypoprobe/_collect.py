"""Collection: read every shard and freeze it into a :class:`~hypoprobe.model.Snapshot`."""

from __future__ import annotations

import os
import socket
from dataclasses import replace

from . import _metrics as m
from . import _selfcost
from ._config import HOLDER
from ._core import _clock, _faults, _plan
from ._core._hypothesis import REGISTRY, Hypothesis
from ._core._storage import STORAGE, Series, _own_start_time
from ._observers import _customers, _exemplars, _slowest
from ._survey import is_survey_id
from .model import (
    EndpointData,
    EndpointOutcome,
    ExceptionCount,
    Exemplar,
    Histogram,
    HypothesisInfo,
    Moments,
    ProbeData,
    RequestData,
    Snapshot,
    TargetState,
)

__all__ = ["snapshot"]


def _info(h: Hypothesis) -> HypothesisInfo:
    return HypothesisInfo(
        id=h.id,
        claim=h.claim,
        endpoints=h.endpoints,
        min_share=h.min_share,
        observed_probe_seconds=h.observed.probe_seconds if h.observed else None,
        observed_endpoint_seconds=h.observed.endpoint_seconds if h.observed else None,
        slow_threshold=h.slow_threshold,
        owner=h.owner,
        ticket=h.ticket,
        expires=h.expires.isoformat() if h.expires else None,
        # Probes expire on hypoprobe's (monotonic) clock; say so as soon as they have.
        expired=h.is_expired() or any(s.expired for s in _plan.SITES_BY_HYPOTHESIS.get(h.id, ())),
        segments=h.segments,
        segment=h.segment,
    )


def _histogram(
    series: Series,
    ints: list[int],
    exemplars: dict[tuple[str, tuple[str, ...]], tuple[Exemplar, ...]],
) -> Histogram:
    layout = series.layout
    assert layout is not None
    off = series.int_offset
    counts = tuple(ints[off : off + layout.buckets])
    return Histogram(
        layout.natural_bounds,
        counts,
        ints[off + layout.sum_slot] / layout.divisor,
        exemplars.get((series.metric, series.labels), ()) if exemplars else (),
    )


def expire_stale() -> None:
    """Stop probes of hypotheses whose expiry has passed (checked at every collection)."""
    _plan.expire_due(HOLDER.config.clock())


def _pad(hist: Histogram, requests: int) -> Histogram:
    """Add the requests that did not call the probe (value 0: the first bucket)."""
    missing = requests - hist.count
    if missing <= 0:
        return hist
    return replace(hist, counts=(hist.counts[0] + missing, *hist.counts[1:]))


def _with_zero_observations(
    per_request: dict[tuple[str, ...], dict[str, Histogram]], moments: list[Moments]
) -> list[RequestData]:
    """Per-request histograms with one observation per request, 0 where not called.

    A scope records a probe's per-request data only when the probe was called (see
    ``_scope._finish``); every other request of the hypothesis' endpoint is a zero, and the
    hypothesis' moments count those requests exactly.
    """
    requests_seen = {
        (mo.hypothesis, mo.endpoint, mo.segment, mo.slow): mo.requests for mo in moments
    }
    out = []
    for (hid, name, endpoint, segment), parts in per_request.items():
        if len(parts) != 4:
            continue
        fast = requests_seen.get((hid, endpoint, segment, False), 0)
        slow = requests_seen.get((hid, endpoint, segment, True), 0)
        out.append(
            RequestData(
                hid,
                name,
                endpoint,
                probe_seconds_fast=_pad(parts["probe_seconds_fast"], fast),
                probe_seconds_slow=_pad(parts["probe_seconds_slow"], slow),
                share=_pad(parts["share"], fast + slow),
                calls=_pad(parts["calls"], fast + slow),
                segment=segment,
            )
        )
    return out


def snapshot() -> Snapshot:
    """Freeze everything this process (or, in multi-process mode, this host) recorded.

    The result is plain, immutable data with a stable, versioned JSON form: the input of
    ``hypoprobe report`` and ``hypoprobe compare``.

    Example::

        snap = hypoprobe.snapshot()
        for mo in snap.moments:
            print(mo.hypothesis, mo.endpoint, mo.probe_seconds / mo.endpoint_seconds)
        open("snapshot.json", "w").write(snap.to_json())
    """
    expire_stale()
    series = STORAGE.all_series()
    ints, floats = STORAGE.totals()
    exemplars = _exemplars.collect()
    endpoints: list[EndpointData] = []
    probes: list[ProbeData] = []
    moments: list[Moments] = []
    exceptions: list[ExceptionCount] = []
    outcomes: list[EndpointOutcome] = []
    targets: list[TargetState] = []
    per_request: dict[tuple[str, ...], dict[str, Histogram]] = {}
    for s in series:
        if s.metric == m.ENDPOINT_DURATION.name:
            endpoints.append(EndpointData(s.labels[0], _histogram(s, ints, exemplars)))
        elif s.metric == m.PROBE_DURATION.name:
            hid, name, endpoint = s.labels
            probes.append(ProbeData(hid, name, endpoint, _histogram(s, ints, exemplars)))
        elif s.metric == m.REQUEST_PROBE.name:
            part = "probe_seconds_slow" if s.labels[4] == "true" else "probe_seconds_fast"
            per_request.setdefault(s.labels[:4], {})[part] = _histogram(s, ints, exemplars)
        elif s.metric == m.REQUEST_SHARE.name:
            per_request.setdefault(s.labels, {})["share"] = _histogram(s, ints, exemplars)
        elif s.metric == m.REQUEST_CALLS.name:
            per_request.setdefault(s.labels, {})["calls"] = _histogram(s, ints, exemplars)
        elif s.metric == m.MOMENTS_SERIES:
            io, fo = s.int_offset, s.float_offset
            moments.append(
                Moments(
                    s.labels[0],
                    s.labels[1],
                    s.labels[3] == "true",
                    segment=s.labels[2],
                    requests=ints[io],
                    requests_with_probe=ints[io + 1],
                    probe_seconds=ints[io + 2] / 1e9,
                    endpoint_seconds=ints[io + 3] / 1e9,
                    probe_seconds_squared=floats[fo],
                    endpoint_seconds_squared=floats[fo + 1],
                    probe_endpoint_seconds_squared=floats[fo + 2],
                )
            )
        elif s.metric == m.ENDPOINT_REQUESTS.name:
            endpoint, status, exception = s.labels
            outcomes.append(EndpointOutcome(endpoint, status, exception, ints[s.int_offset]))
        elif s.metric == m.PROBE_TARGET.name:
            if ints[s.int_offset] > 0:
                hid, target, kind, state, reason = s.labels
                targets.append(TargetState(hid, target, kind, state, reason, ints[s.int_offset]))
        elif s.metric == m.PROBE_EXCEPTIONS.name:
            hid, name, exc_class = s.labels
            exceptions.append(ExceptionCount(hid, name, exc_class, ints[s.int_offset]))
    requests = _with_zero_observations(per_request, moments)
    registered = {h.id for h in REGISTRY.all()}
    # Survey candidates are unregistered by design, never a hypothesis to register.
    unregistered = sorted(
        {s.hypothesis_id for s in _plan.all_sites() if not is_survey_id(s.hypothesis_id)}
        - registered
    )
    snap = Snapshot(
        created_at=_clock.wall(),
        source=f"process {os.getpid()} on {socket.gethostname()}",
        hypotheses=tuple(_info(h) for h in REGISTRY.all()),
        endpoints=tuple(endpoints),
        probes=tuple(probes),
        requests=tuple(requests),
        moments=tuple(moments),
        exceptions=tuple(exceptions),
        outcomes=tuple(outcomes),
        unregistered=tuple(unregistered),
        internal_errors=_faults.snapshot(),
        series_overflow=dict(STORAGE.dropped),
        slowest=_slowest.collect(),
        customers=_customers.collect(),
        targets=tuple(targets),
        origins=(_origin(),),
    )
    # From the counts just read: the hot path keeps nothing for it.
    return replace(snap, self_seconds=_selfcost.estimate(snap))


def _origin() -> str:
    """Who recorded these counters: this process, or every process of a multiproc directory."""
    host = socket.gethostname()
    directory = STORAGE.directory
    if directory is not None:
        return f"{host}:multiproc:{directory.path}"
    pid = os.getpid()
    return f"{host}:{pid}:{_own_start_time(pid)}"
