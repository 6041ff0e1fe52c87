"""Content negotiation on /metrics: protobuf with native histograms when asked, text otherwise.

The protobuf answer is decoded with the protobuf runtime and compared, sample by sample,
with prometheus_client's own text exposition of the same registry: nothing of the registry
is lost or changed, and hypoprobe's histograms carry the native form besides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import io
import logging
import sys
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
import pytest
from google.protobuf import proto
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

import hypoprobe
from conftest import FakeClock
from hypoprobe import _exposition
from hypoprobe._native import to_native
from hypoprobe._proto import metrics_pb2 as pb
from hypoprobe.model import Exemplar, Snapshot
from hypoprobe.prometheus import families

MS = 1_000_000
PROMETHEUS_2_42_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TEXT_ACCEPT = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
TRACE, SPAN = "ab" * 16, "cd" * 8


class _SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        return families(self.snap, 1)


@pytest.fixture
def registry(setup: tuple[CollectorRegistry, Snapshot]) -> CollectorRegistry:
    return setup[0]


@pytest.fixture
def setup(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> tuple[CollectorRegistry, Snapshot]:
    """hypoprobe's families of a few requests (one traced), beside the app's own metrics."""
    hid, ep = unique_id(), unique_id("GET /things")
    hypoprobe.hypothesis(hid, claim="the query dominates", endpoint=ep, min_share=0.5)
    query = hypoprobe.probe(hid, name="query")
    for i in range(40):
        with hypoprobe.endpoint(ep):
            for _ in range(1 + i % 3):
                with query:
                    fake_clock.advance((5 + i) * MS)
            fake_clock.advance(20 * MS)
    snap = hypoprobe.snapshot()
    (endpoint,) = [e for e in snap.endpoints if e.endpoint == ep]
    hist = endpoint.duration
    busiest = max(range(len(hist.counts)), key=lambda i: hist.counts[i])
    value = hist.bounds[busiest]
    traced = dataclasses.replace(hist, exemplars=(Exemplar(busiest, value, TRACE, SPAN, 1.5e9),))
    own = dataclasses.replace(
        snap,
        hypotheses=tuple(h for h in snap.hypotheses if h.id == hid),
        endpoints=(dataclasses.replace(endpoint, duration=traced),),
        probes=tuple(p for p in snap.probes if p.hypothesis == hid),
        requests=tuple(r for r in snap.requests if r.hypothesis == hid),
        moments=tuple(mo for mo in snap.moments if mo.hypothesis == hid),
        exceptions=(),
        unregistered=(),
    )
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_SnapshotCollector(own))
    prometheus_client.Counter("app_jobs", "Jobs.", ["kind"], registry=reg).labels("a").inc(3)
    prometheus_client.Gauge("app_queue", "Queue.", registry=reg).set(7)
    prometheus_client.Summary("app_latency_seconds", "Latency.", registry=reg).observe(0.2)
    classic = prometheus_client.Histogram("app_size_bytes", "Size.", registry=reg, buckets=(1, 10))
    classic.observe(5)
    prometheus_client.Info("app_build", "Build.", registry=reg).info({"version": "1.2"})
    prometheus_client.Enum("app_state", "State.", states=["up", "down"], registry=reg).state("up")
    return reg, own


def decode(body: bytes) -> list[pb.MetricFamily]:
    out, buf = [], io.BytesIO(body)
    while buf.tell() < len(body):
        out.append(proto.parse_length_prefixed(pb.MetricFamily, buf))
    return out


def flat(families_: list[pb.MetricFamily]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Protobuf families as the samples the text format would have."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def put(name: str, labels: dict[str, str], value: float) -> None:
        out[(name, tuple(sorted(labels.items())))] = value

    for fam in families_:
        for m in fam.metric:
            labels = {lp.name: lp.value for lp in m.label}
            if fam.type == pb.COUNTER:
                put(fam.name, labels, m.counter.value)
            elif fam.type == pb.GAUGE:
                put(fam.name, labels, m.gauge.value)
            elif fam.type == pb.UNTYPED:
                put(fam.name, labels, m.untyped.value)
            elif fam.type == pb.SUMMARY:
                put(fam.name + "_count", labels, m.summary.sample_count)
                put(fam.name + "_sum", labels, m.summary.sample_sum)
            elif fam.type == pb.HISTOGRAM:
                h = m.histogram
                for b in h.bucket:
                    le = prometheus_client.utils.floatToGoString(b.upper_bound)  # type: ignore[no-untyped-call]
                    put(fam.name + "_bucket", {**labels, "le": le}, b.cumulative_count)
                put(fam.name + "_bucket", {**labels, "le": "+Inf"}, h.sample_count)
                put(fam.name + "_count", labels, h.sample_count)
                put(fam.name + "_sum", labels, h.sample_sum)
    return out


def text_samples(
    registry: CollectorRegistry,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wsgi_get(app: Any, accept: str | None, query: str = "", encoding: str | None = None) -> Any:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": query}
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    if encoding is not None:
        environ["HTTP_ACCEPT_ENCODING"] = encoding
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    got["body"] = b"".join(app(environ, start_response))
    return got


@pytest.mark.parametrize(
    ("accept", "protobuf"),
    [
        (PROMETHEUS_2_42_ACCEPT, True),
        (TEXT_ACCEPT, False),
        (None, False),
        ("application/openmetrics-text;version=1.0.0", False),
        # Ranked below text: text wins.
        (
            "text/plain;q=0.9,application/vnd.google.protobuf;"
            "proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5",
            False,
        ),
        # Not the delimited MetricFamily stream: another protobuf format.
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", False),
        ("application/vnd.google.protobuf;proto=other.Message;encoding=delimited", False),
        (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited;q=0",
            False,
        ),
        (
            "Application/Vnd.Google.Protobuf; proto=io.prometheus.client.MetricFamily; "
            'encoding="delimited"; q=bad, text/plain; q=0.1',
            False,  # an unreadable q is q=0
        ),
    ],
)
def test_negotiation(accept: str | None, protobuf: bool) -> None:
    assert _exposition.wants_protobuf(accept) is protobuf


def test_protobuf_carries_every_text_sample_and_native_histograms(
    setup: tuple[CollectorRegistry, Snapshot],
) -> None:
    registry, own = setup
    app = hypoprobe.metrics_wsgi_app(registry)
    got = wsgi_get(app, PROMETHEUS_2_42_ACCEPT)
    assert got["status"] == "200 OK"
    assert got["headers"]["Content-Type"].startswith("application/vnd.google.protobuf;")
    fams = decode(got["body"])
    assert flat(fams) == pytest.approx(text_samples(registry))

    by_name = {f.name: f for f in fams}
    assert by_name["app_jobs_total"].type == pb.COUNTER
    assert by_name["app_build_info"].type == pb.GAUGE
    assert by_name["app_size_bytes"].metric[0].histogram.schema == 0  # classic only
    assert not by_name["app_size_bytes"].metric[0].histogram.positive_span
    native_checked = 0
    for name in (
        "hypoprobe_endpoint_duration_seconds",
        "hypoprobe_request_share_ratio",
        "hypoprobe_request_calls",
    ):
        for m in by_name[name].metric:
            h = m.histogram
            labels = {lp.name: lp.value for lp in m.label}
            hist = _histogram_of(own, name, labels)
            native = to_native(hist)
            assert h.schema == 4
            assert h.zero_threshold == native.zero_threshold > 0
            assert h.zero_count == native.zero_count
            assert [(s.offset, s.length) for s in h.positive_span] == list(native.spans)
            assert tuple(h.positive_delta) == native.deltas
            assert h.sample_count == hist.count
            assert h.bucket  # the classic buckets ride along
            native_checked += 1
    assert native_checked >= 3


def _histogram_of(snap: Snapshot, name: str, labels: dict[str, str]) -> Any:
    if name == "hypoprobe_endpoint_duration_seconds":
        return next(e.duration for e in snap.endpoints if e.endpoint == labels["endpoint"])
    req = next(r for r in snap.requests if r.probe == labels["probe"])
    return req.share if name == "hypoprobe_request_share_ratio" else req.calls


def test_exemplars_ride_on_the_classic_bucket_and_the_native_list(
    registry: CollectorRegistry,
) -> None:
    fams = decode(wsgi_get(hypoprobe.metrics_wsgi_app(registry), PROMETHEUS_2_42_ACCEPT)["body"])
    (fam,) = [f for f in fams if f.name == "hypoprobe_endpoint_duration_seconds"]
    h = fam.metric[0].histogram
    on_buckets = [b.exemplar for b in h.bucket if b.HasField("exemplar")]
    assert len(on_buckets) == 1
    assert len(h.exemplars) == 1
    for ex in (on_buckets[0], h.exemplars[0]):
        assert {lp.name: lp.value for lp in ex.label} == {"trace_id": TRACE, "span_id": SPAN}
        assert ex.timestamp.seconds == 1_500_000_000
    assert on_buckets[0].value == h.exemplars[0].value


def test_text_scrapes_get_exactly_what_prometheus_client_serves(
    registry: CollectorRegistry,
) -> None:
    ours = hypoprobe.metrics_wsgi_app(registry)
    theirs = prometheus_client.make_wsgi_app(registry)
    for accept in (TEXT_ACCEPT, None, "application/openmetrics-text;version=1.0.0"):
        a, b = wsgi_get(ours, accept), wsgi_get(theirs, accept)
        assert a["headers"] == b["headers"]
        assert a["body"] == b["body"]
    post = {"REQUEST_METHOD": "POST", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    statuses: list[str] = []
    ours({**post, "HTTP_ACCEPT": PROMETHEUS_2_42_ACCEPT}, lambda s, h: statuses.append(s))
    assert statuses == ["405 Method Not Allowed"]


def test_gzip_and_name_filter_apply_to_protobuf(registry: CollectorRegistry) -> None:
    app = hypoprobe.metrics_wsgi_app(registry)
    got = wsgi_get(app, PROMETHEUS_2_42_ACCEPT, query="name[]=app_queue", encoding="gzip")
    assert got["headers"]["Content-Encoding"] == "gzip"
    assert [f.name for f in decode(gzip.decompress(got["body"]))] == ["app_queue"]
    plain = hypoprobe.metrics_wsgi_app(registry, disable_compression=True)
    assert (
        "Content-Encoding"
        not in wsgi_get(plain, PROMETHEUS_2_42_ACCEPT, encoding="gzip")["headers"]
    )


def test_asgi_app_negotiates_too(registry: CollectorRegistry) -> None:
    app = hypoprobe.metrics_asgi_app(registry)

    def call(accept: str) -> tuple[dict[str, Any], bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/metrics",
            "query_string": b"",
            "headers": [(b"accept", accept.encode())],
        }

        async def serve() -> None:  # asyncio.run takes a coroutine; an ASGI app's awaitable
            await app(scope, receive, send)

        asyncio.run(serve())
        start, body = sent
        return {k.decode().lower(): v.decode() for k, v in start["headers"]}, body["body"]

    headers, body = call(PROMETHEUS_2_42_ACCEPT)
    assert headers["content-type"].startswith("application/vnd.google.protobuf")
    assert flat(decode(body)) == pytest.approx(text_samples(registry))
    headers, body = call(TEXT_ACCEPT)
    assert headers["content-type"].startswith("text/plain")
    assert body == generate_latest(registry)


def test_the_server_serves_both_forms_from_a_thread(registry: CollectorRegistry) -> None:
    server, thread = hypoprobe.start_metrics_server(0, "127.0.0.1", registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        request = urllib.request.Request(url, headers={"Accept": PROMETHEUS_2_42_ACCEPT})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("application/vnd.google.protobuf")
            assert flat(decode(resp.read())) == pytest.approx(text_samples(registry))
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == generate_latest(registry)
    finally:
        server.shutdown()
        server.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_without_the_protobuf_runtime_a_protobuf_scrape_gets_text_and_one_warning(
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # None in sys.modules makes an import fail as if the package were not installed.
    for name in ("google.protobuf", "google.protobuf.proto", "hypoprobe._protobuf"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(_exposition, "_warned", type(_exposition._warned)())
    app = hypoprobe.metrics_wsgi_app(registry)
    with caplog.at_level(logging.WARNING, logger="hypoprobe"):
        first = wsgi_get(app, PROMETHEUS_2_42_ACCEPT)
        wsgi_get(app, PROMETHEUS_2_42_ACCEPT)
    # What prometheus_client serves for that Accept: the next format the scraper ranks.
    theirs = wsgi_get(prometheus_client.make_wsgi_app(registry), PROMETHEUS_2_42_ACCEPT)
    assert first["headers"]["Content-Type"].startswith("application/openmetrics-text")
    assert first["body"] == theirs["body"]
    notes = [r for r in caplog.records if "protobuf" in r.getMessage()]
    assert len(notes) == 1
    assert "hypoprobe[native]" in notes[0].getMessage()


def test_a_metric_protobuf_cannot_carry_costs_the_format_not_the_scrape(
    registry: CollectorRegistry,
) -> None:
    class _Odd(Collector):
        def collect(self) -> Iterator[Metric]:
            odd = Metric("app_odd", "A summary with a quantile that is not a number.", "summary")
            odd.add_sample("app_odd", {"quantile": "median"}, 1.0)
            yield odd

    registry.register(_Odd())
    before = hypoprobe.snapshot().internal_errors.get("protobuf_exposition", 0)
    got = wsgi_get(hypoprobe.metrics_wsgi_app(registry), PROMETHEUS_2_42_ACCEPT)
    assert got["status"] == "200 OK"
    assert not got["headers"]["Content-Type"].startswith("application/vnd.google.protobuf")
    assert b"app_odd" in got["body"]
    assert hypoprobe.snapshot().internal_errors["protobuf_exposition"] == before + 1


def test_the_native_list_has_every_internal_buckets_exemplar_oldest_first(
    setup: tuple[CollectorRegistry, Snapshot],
) -> None:
    _, own = setup
    (endpoint,) = own.endpoints
    hist = endpoint.duration
    filled = [i for i, c in enumerate(hist.counts) if c][:2]
    assert len(filled) == 2
    # The higher bucket's exemplar is the older one: the list must be in time order.
    exemplars = (
        Exemplar(filled[0], hist.bounds[filled[0]], "01" * 16, "02" * 8, 2000.0),
        Exemplar(filled[1], hist.bounds[filled[1]], "03" * 16, "04" * 8, 1000.0),
    )
    snap = dataclasses.replace(
        own,
        endpoints=(
            dataclasses.replace(endpoint, duration=dataclasses.replace(hist, exemplars=exemplars)),
        ),
    )
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_SnapshotCollector(snap))
    fams = decode(wsgi_get(hypoprobe.metrics_wsgi_app(reg), PROMETHEUS_2_42_ACCEPT)["body"])
    (fam,) = [f for f in fams if f.name == "hypoprobe_endpoint_duration_seconds"]
    native = fam.metric[0].histogram.exemplars
    assert [ex.timestamp.seconds for ex in native] == [1000, 2000]
    assert [ex.value for ex in native] == [hist.bounds[filled[1]], hist.bounds[filled[0]]]
