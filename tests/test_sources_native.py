"""``query_prometheus`` on native histograms: buckets rebuilt at both edges, never counted twice.

And the whole round trip — hypoprobe's histogram, its native form, Prometheus' answer for it,
the rebuilt histogram — keeps quantiles within one native bucket.

A stand-in for the Prometheus HTTP API answers the source's queries with what Prometheus
returns for native histograms (``"histogram": [t, {"count", "sum", "buckets"}]``, buckets as
``[boundary rule, lower, upper, count]``, empty buckets left out) and, for the same family,
classic ``_bucket`` series too, as a server that keeps both forms would.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hypoprobe import _buckets
from hypoprobe import _metrics as m
from hypoprobe._native import boundary, to_native
from hypoprobe.snapshot import Histogram
from hypoprobe.sources import query_prometheus
from hypoprobe.sources._rebuild import rebuild
from hypoprobe.sources.prom_api import _native_samples

ENDPOINT = "GET /native"
#: Native buckets 10..11 and 20 (a gap of eight empty buckets), plus the zero bucket.
NATIVE_BUCKETS = [
    [3, str(-boundary(-40)), str(boundary(-40)), "2"],
    [0, str(boundary(9)), str(boundary(10)), "5"],
    [0, str(boundary(10)), str(boundary(11)), "3"],
    [0, str(boundary(19)), str(boundary(20)), "10"],
]


def _answer(expr: str) -> list[dict[str, Any]]:
    if "increase(hypoprobe_endpoint_duration_seconds[" in expr:
        hist = {"count": "20", "sum": "30.5", "buckets": NATIVE_BUCKETS}
        return [{"metric": {"endpoint": ENDPOINT}, "histogram": [1.0, hist]}]
    if "hypoprobe_endpoint_duration_seconds_bucket" in expr:
        # The classic form of the same observations: must not be added to the native one.
        return [
            {"metric": {"endpoint": ENDPOINT, "le": le}, "value": [1.0, v]}
            for le, v in (("1.0", "2"), ("2.0", "10"), ("+Inf", "20"))
        ]
    if "hypoprobe_endpoint_duration_seconds_sum" in expr:
        return [{"metric": {"endpoint": ENDPOINT}, "value": [1.0, "30.5"]}]
    return []


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        body = json.dumps(
            {
                "status": "success",
                "data": {"resultType": "vector", "result": _answer(query["query"][0])},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_native_series_are_rebuilt_at_both_edges_of_every_bucket(api: str) -> None:
    snap = query_prometheus(api, window_seconds=60, at=1000.0)
    endpoint = snap.endpoint(ENDPOINT)
    assert endpoint is not None
    hist = endpoint.duration
    assert hist.count == 20  # the native count alone, the classic series ignored
    assert hist.sum == 30.5
    # The empty run between buckets 11 and 20 stays empty: bucket 20 spans one native width.
    bounds = [boundary(-40), boundary(9), boundary(10), boundary(11), boundary(19), boundary(20)]
    assert hist.bounds == pytest.approx(bounds)
    assert hist.counts == (2, 0, 5, 3, 0, 10, 0)
    q75 = hist.quantile(0.75)  # rank 15, inside bucket 20
    assert q75 is not None
    assert boundary(19) < q75 <= boundary(20)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(100, 400),
    counts=st.lists(st.integers(0, 500), min_size=1, max_size=30),
    q=st.sampled_from([0.5, 0.9, 0.99]),
)
def test_exposed_then_read_back_quantiles_stay_within_a_native_bucket(
    start: int, counts: list[int], q: float
) -> None:
    """hypoprobe's histogram -> native form -> Prometheus' JSON answer -> rebuilt histogram."""
    layout = _buckets.DURATION
    full = [0] * layout.buckets
    full[start : start + len(counts)] = counts
    assume(sum(full) >= 100)
    hist = Histogram(layout.natural_bounds, tuple(full), 1.0)
    native = to_native(hist)
    # What Prometheus answers for it: the zero bucket and every non-empty bucket.
    buckets = [[3, str(-native.zero_threshold), str(native.zero_threshold), str(native.zero_count)]]
    buckets += [
        [0, repr(boundary(i - 1)), repr(boundary(i)), str(c)]
        for i, c in sorted(native.buckets().items())
        if c
    ]
    answer = [
        {
            "metric": {"endpoint": "e"},
            "histogram": [1.0, {"count": str(native.count), "sum": "1.0", "buckets": buckets}],
        }
    ]
    samples = list(_native_samples(m.ENDPOINT_DURATION.name, answer))
    (endpoint,) = rebuild(samples, source="test", created_at=0.0).endpoints
    back = endpoint.duration
    assert back.count == hist.count
    want, got = hist.quantile(q), back.quantile(q)
    assert want is not None
    assert got is not None
    assert abs(got / want - 1) <= 2 ** (1 / 16) - 1, (got, want)
