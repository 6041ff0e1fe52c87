"""Exemplars: requests traced by OpenTelemetry link histogram buckets to their traces.

Spans come from a real OpenTelemetry SDK ``TracerProvider`` (not installed globally: a span
made current by ``start_as_current_span`` is what hypoprobe looks up). Exemplars are checked
where users see them: OpenMetrics output parsed back by prometheus_client's parser, the
OpenTelemetry data points, and the snapshot's JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Span, format_span_id, format_trace_id
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

import hypoprobe
from conftest import FakeClock
from hypoprobe import SnapshotError
from hypoprobe.model import Exemplar, Histogram, Snapshot
from hypoprobe.otel import metrics_data
from hypoprobe.prometheus import families
from servers import require_prometheus, require_promtool, start_prometheus

MS = 1_000_000  # nanoseconds
TRACER = TracerProvider().get_tracer("hypoprobe-tests")


@pytest.fixture
def setup(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> tuple[str, str, Callable[..., Span | None]]:
    """A hypothesis with one probe, and ``request(endpoint_ms, probe_ms, traced=True)``."""
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="the query dominates", endpoint=ep, min_share=0.5)

    def request(endpoint_ms: int, probe_ms: int = 0, traced: bool = True) -> Span | None:
        def body() -> None:
            with hypoprobe.endpoint(ep):
                if probe_ms:
                    with hypoprobe.probe(hid, name="query"):
                        fake_clock.advance(probe_ms * MS)
                fake_clock.advance((endpoint_ms - probe_ms) * MS)

        if not traced:
            body()
            return None
        with TRACER.start_as_current_span("GET /x") as span:
            body()
        return span

    return hid, ep, request


def _own(hid: str, ep: str) -> Snapshot:
    """This test's slice of the process snapshot."""
    snap = hypoprobe.snapshot()
    return dataclasses.replace(
        snap,
        hypotheses=tuple(h for h in snap.hypotheses if h.id == hid),
        endpoints=tuple(e for e in snap.endpoints if e.endpoint == ep),
        probes=tuple(p for p in snap.probes if p.hypothesis == hid),
        requests=tuple(r for r in snap.requests if r.hypothesis == hid),
        moments=tuple(mo for mo in snap.moments if mo.hypothesis == hid),
        exceptions=(),
        unregistered=(),
        slowest=(),
    )


class _SnapshotCollector(Collector):
    """Exposes a given snapshot, or (``live``) a fresh slice of this test's data per scrape."""

    def __init__(self, snap: Snapshot | None, live: Callable[[], Snapshot] | None = None) -> None:
        self.snap = snap
        self.live = live

    def collect(self) -> Iterator[Any]:
        snap = self.live() if self.live is not None else self.snap
        assert snap is not None
        return families(snap)


def _registry(snap: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return registry


def _bucket_samples(text: str, family: str, **labels: str) -> list[Sample]:
    for fam in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        if fam.name == family:
            return [
                s
                for s in fam.samples
                if s.name == f"{family}_bucket"
                and all(s.labels.get(k) == v for k, v in labels.items())
            ]
    return []


def _exemplars_by_trace(samples: list[Sample]) -> dict[str, tuple[float, float, float]]:
    """trace id -> (bucket's lower le, bucket's le, exemplar value), checking span ids too."""
    out = {}
    lower = 0.0
    for s in samples:
        le = float(s.labels["le"])
        if s.exemplar is not None:
            out[s.exemplar.labels["trace_id"]] = (lower, le, s.exemplar.value)
            assert len(s.exemplar.labels["span_id"]) == 16
        lower = le
    return out


def _ids(span: Span | None) -> tuple[str, str]:
    assert span is not None
    ctx = span.get_span_context()
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)


def test_openmetrics_exposition_carries_the_trace_ids_of_traced_requests(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    quick = request(10, 2)
    slow = request(300, 240)
    request(2000, 100, traced=False)  # counted, but no trace to show

    text = generate_openmetrics(_registry(_own(hid, ep))).decode()  # type: ignore[no-untyped-call]

    endpoint = _exemplars_by_trace(
        _bucket_samples(text, "hypoprobe_endpoint_duration_seconds", endpoint=ep)
    )
    assert set(endpoint) == {_ids(quick)[0], _ids(slow)[0]}
    for span, seconds in ((quick, 0.010), (slow, 0.300)):
        lower, le, value = endpoint[_ids(span)[0]]
        assert value == pytest.approx(seconds)
        assert lower < value <= le  # shown on the bucket the request was counted in
    probe = _exemplars_by_trace(
        _bucket_samples(text, "hypoprobe_request_probe_seconds", hypothesis=hid, probe="query")
    )
    assert {t: v for t, (_, _, v) in probe.items()} == pytest.approx(
        {_ids(quick)[0]: 0.002, _ids(slow)[0]: 0.240}
    )
    share = _exemplars_by_trace(
        _bucket_samples(text, "hypoprobe_request_share_ratio", hypothesis=hid, probe="query")
    )
    assert {t: v for t, (_, _, v) in share.items()} == pytest.approx(
        {_ids(quick)[0]: 0.2, _ids(slow)[0]: 0.8}
    )
    for lower, le, value in (*share.values(), *probe.values()):
        assert lower < value <= le
    # The span ids are the spans', not only the traces'.
    samples = _bucket_samples(text, "hypoprobe_endpoint_duration_seconds", endpoint=ep)
    span_ids = {s.exemplar.labels["span_id"] for s in samples if s.exemplar is not None}
    assert span_ids == {_ids(quick)[1], _ids(slow)[1]}


def test_classic_text_leaves_exemplars_out_and_passes_promtool(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    request(10, 2)
    snap = _own(hid, ep)
    assert snap.endpoints[0].duration.exemplars  # there is something to leave out
    text = generate_latest(_registry(snap))
    assert b"trace_id" not in text
    result = subprocess.run(
        [require_promtool(), "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_newest_traced_request_of_a_bucket_is_its_exemplar(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    request(100, 10)
    newest = request(101, 10)
    request(102, 10, traced=False)  # an untraced request replaces nothing
    (ex,) = _own(hid, ep).endpoints[0].duration.exemplars
    assert (ex.trace_id, ex.span_id) == _ids(newest)
    assert ex.value == pytest.approx(0.101)


def test_no_span_or_switched_off_means_no_exemplars(
    setup: tuple[str, str, Callable[..., Span | None]], restore_config: None
) -> None:
    hid, ep, request = setup
    request(10, 2, traced=False)
    with TRACER.start_as_current_span("outside any endpoint"):
        pass
    hypoprobe.configure(exemplars=False)
    request(20, 5)
    snap = _own(hid, ep)
    assert snap.endpoints[0].duration.count == 2
    assert snap.endpoints[0].duration.exemplars == ()
    assert all(not r.share.exemplars and not r.probe_seconds.exemplars for r in snap.requests)
    hypoprobe.configure(exemplars=True)
    request(30, 5)
    assert len(_own(hid, ep).endpoints[0].duration.exemplars) == 1


class _BrokenSpan(trace.NonRecordingSpan):
    """A span from a faulty tracing library: asking for its context raises."""

    def get_span_context(self) -> trace.SpanContext:
        raise RuntimeError("broken tracer (test)")


def test_segment_exemplars_land_on_their_segment_series(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5, segments=["pro"])
    traces = {}
    for plan in ("pro", "user@example.com"):
        with TRACER.start_as_current_span("GET /x") as span, hypoprobe.endpoint(ep):
            hypoprobe.segment(plan)
            with hypoprobe.probe(hid, name="q"):
                fake_clock.advance(30 * MS)
            fake_clock.advance(70 * MS)
        traces[plan] = _ids(span)[0]
    by_segment = {
        r.segment: [ex.trace_id for ex in r.share.exemplars]
        for r in _own(hid, ep).requests
        if r.share.exemplars
    }
    assert by_segment == {"pro": [traces["pro"]], "other": [traces["user@example.com"]]}


def test_a_span_that_is_not_sampled_leaves_no_exemplar(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("not-sampled")
    with unsampled.start_as_current_span("GET /x") as span:
        assert span.get_span_context().is_valid  # a real trace id, just not recorded
        request(10, 2, traced=False)
    snap = _own(hid, ep)
    assert snap.endpoints[0].duration.count == 1
    assert snap.endpoints[0].duration.exemplars == ()


def test_a_broken_span_in_the_context_never_reaches_the_application(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    before = hypoprobe.snapshot().internal_errors.get("exemplars", 0)
    token = otel_context.attach(trace.set_span_in_context(_BrokenSpan(trace.INVALID_SPAN_CONTEXT)))
    try:
        request(10, 2, traced=False)
    finally:
        otel_context.detach(token)
    snap = hypoprobe.snapshot()
    assert snap.internal_errors.get("exemplars", 0) == before + 1
    own = _own(hid, ep)
    assert own.endpoints[0].duration.count == 1  # the request itself was recorded
    assert own.moments_for(hid, ep).requests == 1


def test_requests_on_many_threads_leave_one_of_their_own_per_bucket(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    traces: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            span = request(100, 40)
            with lock:
                traces.append(_ids(span)[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = _own(hid, ep)
    (ex,) = snap.endpoints[0].duration.exemplars  # 200 requests, all in one bucket
    assert snap.endpoints[0].duration.count == 200
    assert ex.trace_id in traces


def test_opentelemetry_data_points_carry_the_exemplars(
    setup: tuple[str, str, Callable[..., Span | None]],
) -> None:
    hid, ep, request = setup
    span = request(10, 2)
    trace_id = span.get_span_context().trace_id if span else 0
    snap = _own(hid, ep)

    def points(data: Any, name: str) -> list[Any]:
        (rm,) = data.resource_metrics
        (sm,) = rm.scope_metrics
        return list(next(m for m in sm.metrics if m.name == name).data.data_points)

    exponential = metrics_data(snap)
    (point,) = points(exponential, "hypoprobe_endpoint_duration_nanoseconds")
    (ex,) = point.exemplars
    assert (ex.trace_id, ex.value) == (trace_id, 10 * MS)  # nanoseconds, as the point
    explicit = metrics_data(snap, histograms="explicit")
    (point,) = points(explicit, "hypoprobe_endpoint_duration_seconds")
    (ex,) = point.exemplars
    assert ex.trace_id == trace_id
    assert ex.value == pytest.approx(0.010)
    assert ex.span_id == span.get_span_context().span_id if span else None
    (share_point,) = points(explicit, "hypoprobe_request_share_ratio")
    assert [e.value for e in share_point.exemplars] == [pytest.approx(0.2)]


@pytest.mark.real_server
@pytest.mark.slow
def test_prometheus_exemplar_storage_returns_the_trace_ids(
    setup: tuple[str, str, Callable[..., Span | None]], tmp_path: Path
) -> None:
    """A real Prometheus (exemplar storage on) scrapes OpenMetrics and answers with our traces."""
    require_prometheus()
    hid, ep, request = setup
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(None, live=lambda: _own(hid, ep)))
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        target = f"127.0.0.1:{httpd.server_address[1]}"
        with start_prometheus(
            tmp_path,
            {"app": [target]},
            scrape_interval="1s",
            extra_flags=["--enable-feature=exemplar-storage"],
        ) as prom:
            prom.wait_for_up("app")
            start = time.time()
            spans = [request(10, 2), request(300, 240)]
            prom.wait_for_scrape_after(time.time(), "app")
            data = prom.api(
                "query_exemplars",
                {
                    "query": f'hypoprobe_endpoint_duration_seconds_bucket{{endpoint="{ep}"}}',
                    "start": start - 60,
                    "end": time.time() + 60,
                },
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    seen = {
        (ex["labels"]["trace_id"], ex["labels"]["span_id"], float(ex["value"]))
        for series in data
        for ex in series["exemplars"]
    }
    want = {(*_ids(span), seconds) for span, seconds in zip(spans, (0.010, 0.300), strict=True)}
    assert seen == want


_MULTIPROC_BODY = """
import itertools, json, sys
import hypoprobe
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

_ticks = itertools.count(0, 1_000_000)  # every clock reading advances 1 ms
hypoprobe.configure(clock=lambda: next(_ticks))
hypoprobe.hypothesis("MPX-1", claim="c", endpoint="GET /mp", min_share=0.5)
role = sys.argv[1]
if role == "b":
    # Series of this process' own first, so its offsets differ from the host-wide layout.
    for i in range(5):
        with hypoprobe.endpoint(f"GET /other-{i}"):
            pass
    with TracerProvider().get_tracer("t").start_as_current_span("req") as span:
        with hypoprobe.endpoint("GET /mp"):
            pass
    hist = hypoprobe.snapshot().endpoint("GET /mp").duration
    print(json.dumps({
        "trace_id": format(span.get_span_context().trace_id, "032x"),
        "counts": list(hist.counts),
        "bounds": list(hist.bounds),
        "exemplars": [[e.bucket, e.value, e.trace_id] for e in hist.exemplars],
    }))
else:
    for _ in range(3):
        with hypoprobe.endpoint("GET /mp"):
            pass
"""


def test_multi_process_mode_puts_a_process_exemplars_on_the_host_wide_buckets(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "HYPOPROBE_MULTIPROC_DIR": str(tmp_path)}

    def run(role: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _MULTIPROC_BODY, role],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("a")
    out = json.loads(run("b").strip().splitlines()[-1])
    assert sum(out["counts"]) == 4  # both processes' requests
    ((bucket, value, trace_id),) = out["exemplars"]
    assert trace_id == out["trace_id"]
    assert value == pytest.approx(0.001)  # one clock reading inside the scope
    assert out["counts"][bucket] >= 1
    assert out["bounds"][bucket - 1] < value <= out["bounds"][bucket]


# --------------------------------------------------------------------------- the model


def _ex(bucket: int, at: float, trace: str = "a") -> Exemplar:
    return Exemplar(bucket, float(bucket), trace * 32, "b" * 16, at)


def test_histogram_exemplars_survive_json_restrict_merge_and_minus() -> None:
    h = Histogram((1.0, 2.0, 3.0, 4.0), (1, 1, 1, 1, 0), 10.0, (_ex(0, 5.0), _ex(1, 7.0)))
    assert Histogram.from_dict(h.to_dict()) == h
    # Restricted to (2.0, 4.0): buckets 0 and 1 fold into one; the newest stays.
    coarse = h.restrict((2.0, 4.0))
    assert coarse.exemplars == (dataclasses.replace(_ex(1, 7.0), bucket=0),)
    other = Histogram(h.bounds, (0, 2, 0, 0, 0), 3.0, (_ex(1, 9.0, "c"), _ex(3, 1.0, "d")))
    merged = h.merge(other)
    assert merged.exemplars == (_ex(0, 5.0), _ex(1, 9.0, "c"), _ex(3, 1.0, "d"))
    # A window keeps only exemplars the earlier histogram did not have.
    assert merged.minus(h).exemplars == (_ex(1, 9.0, "c"), _ex(3, 1.0, "d"))
    # Histograms without exemplars keep their JSON form.
    assert "exemplars" not in Histogram((1.0,), (1, 0), 1.0).to_dict()


def test_an_exemplar_outside_the_histogram_is_rejected() -> None:
    data = Histogram((1.0,), (1, 0), 1.0).to_dict()
    data["exemplars"] = [[5, 1.0, "a" * 32, "b" * 16, 1.0]]
    with pytest.raises(SnapshotError):
        Histogram.from_dict(data)
