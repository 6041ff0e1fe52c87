"""A Prometheus server's HTTP API: the whole fleet, already aggregated, over a window.

Every hypoprobe counter and histogram bucket is read with one instant query of the form
``sum by (<hypoprobe labels>) (increase(<series>[<window>]))`` evaluated at ``at``, so
Prometheus sums across instances and jobs; hypotheses come from the latest
``hypoprobe_hypothesis_info`` in the window (``last_over_time``).

``increase()`` extrapolates: it scales the growth it saw between the first and the last
sample in the window out to the window's edges (by up to half a scrape interval on each
side, less when a counter would go below zero), and misses the first sample of a series
that appeared inside the window. Counts are therefore kept as Prometheus returns them,
rounded to whole numbers; the error is at most about one scrape interval out of the window
(0.4% for 15 s scrapes over an hour), and ratios such as the aggregate share are barely
affected because numerator and denominator are scaled alike. See ``docs/sources.md``.
"""

from __future__ import annotations

import functools
import json
import math
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from .. import _metrics as m
from ..model import MAX_INSTANT, Snapshot
from . import _http
from ._errors import EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_USAGE, SourceError
from ._rebuild import Sample, has_data, rebuild

__all__ = ["query_prometheus"]

#: Queries in flight at once: a handful, so a busy Prometheus is not hammered.
MAX_PARALLEL = 4
#: Paths users paste by mistake; the API lives under the base URL.
_API_SUFFIXES = ("/api/v1/query", "/api/v1", "/graph", "/")

Progress = Callable[[str], None]


def query_prometheus(
    url: str,
    window_seconds: float,
    at: float | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Snapshot:
    """Query a Prometheus server for what the fleet recorded in ``window_seconds`` up to ``at``.

    ``url`` is the server's base URL (``http://prometheus:9090``, or with its path prefix);
    ``at`` is a Unix time (default: now). Counts come from ``increase()``, which
    extrapolates to the window's edges: see the module documentation.

    Raises :class:`SourceError`: exit code 3 when the server cannot be reached or answers
    with an error, 4 when it holds no hypoprobe data for the window.

    Example::

        snap = query_prometheus("http://prometheus:9090", window_seconds=3600)
        mo = snap.moments_for("PERF-123", "GET /campaigns")
        print(mo.requests, mo.probe_seconds / mo.endpoint_seconds)
    """
    if not (isinstance(window_seconds, int | float) and math.isfinite(window_seconds)):
        raise SourceError(
            f"the window must be a number of seconds, got {window_seconds!r}", EXIT_USAGE
        )
    if window_seconds < 0.001:
        raise SourceError(f"the window must be at least 1 ms, got {window_seconds!r} s", EXIT_USAGE)
    when = time.time() if at is None else at
    if not (isinstance(when, int | float) and 0 <= when < MAX_INSTANT):
        raise SourceError(
            f"the time must be Unix seconds from 1970 to 9999, got {at!r}", EXIT_USAGE
        )
    base = _base_url(url)
    rng = f"{round(window_seconds * 1000)}ms"
    queries = list(_queries(rng)) + list(_native_queries(rng))

    samples: list[Sample] = []
    native: dict[str, list[Sample]] = {}

    def take(name: str, result: Any, done: int) -> None:
        if name.startswith(_NATIVE):
            family = name[len(_NATIVE) :]
            found = list(_native_samples(family, result))
            if found:
                native[family] = found
        else:
            samples.extend(Sample(name, labels, value) for labels, value in _floats(result))
        if progress is not None:
            progress(f"queried {done}/{len(queries)}: {name}")

    # One deadline for every query: ``timeout`` bounds the whole read, however the server
    # answers (or trickles), and Ctrl-C aborts the queries in flight instead of awaiting them.
    _http.concurrently(
        [(name, functools.partial(_instant_result, base, expr, when)) for name, expr in queries],
        timeout=timeout,
        workers=MAX_PARALLEL,
        each=take,
    )

    if native:
        classic = {f"{f}_bucket" for f in native} | {f"{f}_sum" for f in native}
        samples = [s for s in samples if s.name not in classic]
        for found in native.values():
            samples.extend(found)

    stamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    span = f"the {window_seconds:g} s window ending {stamp}"
    if not samples:
        raise SourceError(
            f"Prometheus at {base} has no hypoprobe series in {span}: check that it scrapes "
            "the processes (up == 1 for their job) and the window and time asked for",
            EXIT_NO_DATA,
        )
    snap = rebuild(samples, source=f"prometheus {base} ({span})", created_at=when)
    if not has_data(snap):
        raise SourceError(
            f"Prometheus at {base} saw no hypoprobe requests in {span}: choose a window "
            "with traffic (a longer window or another --at)",
            EXIT_NO_DATA,
        )
    return snap


def _base_url(url: str) -> str:
    base = _http.normalise_url(url)
    for suffix in _API_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base.rstrip("/")


def _queries(rng: str) -> Iterator[tuple[str, str]]:
    """(sample name to file the result under, PromQL) for every hypoprobe family."""
    for fam in m.HISTOGRAMS:
        by = ", ".join(fam.labels)
        yield f"{fam.name}_bucket", f"sum by (le, {by}) (increase({fam.name}_bucket[{rng}]))"
        yield f"{fam.name}_sum", f"sum by ({by}) (increase({fam.name}_sum[{rng}]))"
    counters = (
        *m.INT_MOMENTS,
        *m.FLOAT_MOMENTS,
        m.PROBE_EXCEPTIONS,
        m.ENDPOINT_REQUESTS,
        m.INTERNAL_ERRORS,
        m.SERIES_DROPPED,
        m.SELF_SECONDS,
    )
    for fam in counters:
        by = ", ".join(fam.labels)
        yield f"{fam.name}_total", f"sum by ({by}) (increase({fam.name}_total[{rng}]))"
    for fam in (m.HYPOTHESIS_INFO, m.HYPOTHESIS_EXPIRED, m.UNKNOWN_HYPOTHESIS, m.PROBE_TARGET):
        by = ", ".join(fam.labels)
        yield fam.name, f"max by ({by}) (last_over_time({fam.name}[{rng}]))"


def _native_queries(rng: str) -> Iterator[tuple[str, str]]:
    """The native form of every hypoprobe histogram family: one query each."""
    for fam in m.HISTOGRAMS:
        by = ", ".join(fam.labels)
        yield f"{_NATIVE}{fam.name}", f"sum by ({by}) (increase({fam.name}[{rng}]))"


_NATIVE = "native:"


def _native_samples(family: str, result: list[dict[str, Any]]) -> Iterator[Sample]:
    """Classic-style samples (``_bucket`` at each native bucket's edges, ``_sum``) of one
    family's native histograms, as the rebuild reads them.

    Both edges of every bucket become bounds (the cumulative count below and at it), so a
    bucket keeps its own width even where Prometheus leaves empty buckets out of its answer.
    The zero bucket ``[-t, t]`` becomes the bound ``t``.
    """
    for series in result:
        try:
            labels = _labels(series)
            hist = series["histogram"][1]
            count, total = float(hist["count"]), float(hist["sum"])
            buckets = sorted(
                ((float(lo), float(hi), float(n)) for _, lo, hi, n in hist.get("buckets") or ()),
                key=lambda b: b[1],
            )
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            continue
        if not (math.isfinite(count) and math.isfinite(total)):
            continue
        cumulative: dict[float, float] = {}
        running = 0.0
        for lower, upper, n in buckets:
            if lower > 0 and lower not in cumulative:
                cumulative[lower] = running
            running += n
            if upper >= 0:
                cumulative[upper] = running
        for le, c in cumulative.items():
            yield Sample(f"{family}_bucket", {**labels, "le": repr(le)}, c)
        yield Sample(f"{family}_bucket", {**labels, "le": "+Inf"}, count)
        yield Sample(f"{family}_sum", labels, total)


def _floats(result: list[dict[str, Any]]) -> list[tuple[dict[str, str], float]]:
    """(labels, value) per series of a vector of floats; other series are skipped."""
    out = []
    for series in result:
        try:
            value = float(series["value"][1])
            labels = _labels(series)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            continue
        if math.isfinite(value):
            out.append((labels, value))
    return out


def _labels(series: dict[str, Any]) -> dict[str, str]:
    """A series' labels; a ``metric`` that is not an object of strings is malformed."""
    metric = series.get("metric", {})
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise TypeError("malformed labels")
    return {str(k): v for k, v in metric.items()}


def _instant_result(
    base: str, expr: str, at: float, deadline: _http.Deadline
) -> list[dict[str, Any]]:
    """Run one instant query; return the series of its vector result, as JSON."""
    query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    resp = _http.get(
        f"{base}/api/v1/query?{query}",
        timeout=deadline.seconds,
        accept="application/json",
        deadline=deadline,
    )
    doc = _json_or_none(resp.body)
    if doc is None or "status" not in doc:
        hint = (
            "pass the Prometheus base URL, such as http://prometheus:9090"
            if resp.status in (200, 404)
            else "check that the URL is a Prometheus server and that it is healthy"
        )
        raise SourceError(
            f"{base} is not answering as a Prometheus API (HTTP {resp.status} for "
            f"/api/v1/query): {hint}",
            EXIT_UNREACHABLE,
        )
    if doc.get("status") != "success":
        raise SourceError(
            f"Prometheus at {base} answered HTTP {resp.status} with an error "
            f"({doc.get('errorType', '?')}: {doc.get('error', '?')}); check the URL, the "
            "window and that the server is healthy",
            EXIT_UNREACHABLE,
        )
    data = doc.get("data")
    result = (data.get("result") or []) if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("resultType") != "vector"
        or not isinstance(result, list)
    ):
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise SourceError(
            f"Prometheus at {base} answered an instant query with {str(kind)[:40]!r} instead "
            "of a vector; is it a Prometheus-compatible API?",
            EXIT_UNREACHABLE,
        )
    return [series for series in result if isinstance(series, dict)]


def _json_or_none(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):  # not JSON, 4,300+ digit numbers, deep nesting
        return None
    return doc if isinstance(doc, dict) else None
