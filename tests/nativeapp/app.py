"""A pre-fork WSGI app serving /metrics with hypoprobe's negotiating exposition.

``GET /work?ms=E&probe_ms=P&calls=C`` is one ``GET /work`` request of about ``E`` ms, ``P`` of
them inside the probed query, split over ``C`` calls. ``GET /metrics`` is
:func:`hypoprobe.metrics_wsgi_app` (protobuf with native histograms when the scraper asks);
``GET /snapshot`` is the host's snapshot as JSON (multi-process mode: every worker's data).
Requests run inside an OpenTelemetry span, so histogram buckets carry exemplars.

hypoprobe reads a clock of the app's own that the request advances by exactly the times
it asks for (gunicorn's sync workers serve one request at a time): the recorded
durations are those of the request line, whatever the load on the machine, so where they
fall in the classic and native buckets does not depend on how late a sleep wakes up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import prometheus_client
from opentelemetry.sdk.trace import TracerProvider

import hypoprobe

HYPOTHESIS = "NATIVE-1"
ENDPOINT = "GET /work"

_NOW = [0]


def _clock() -> int:
    return _NOW[0]


def _advance(seconds: float) -> None:
    _NOW[0] += round(seconds * 1e9)


hypoprobe.configure(clock=_clock)
hypoprobe.hypothesis(
    HYPOTHESIS,
    claim="the work query dominates GET /work",
    endpoint=ENDPOINT,
    min_share=0.4,
    observed=hypoprobe.Observation(probe_seconds=0.03, endpoint_seconds=0.036),
    slow_threshold=0.039,
)
# Something of the application's own beside hypoprobe, served by the same /metrics.
JOBS = prometheus_client.Counter("nativeapp_jobs", "Jobs the test app ran.")


# Every request is traced, so its buckets carry exemplars (trace and span ids).
TRACER = TracerProvider().get_tracer("nativeapp")


@hypoprobe.probe(HYPOTHESIS, name="work_query")
def work_query(seconds: float) -> None:
    _advance(seconds)


metrics = hypoprobe.metrics_wsgi_app()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        return metrics(environ, start_response)
    if path == "/snapshot":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [hypoprobe.snapshot().to_json().encode()]
    if path == "/work":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        total = float(query["ms"][0]) / 1000
        probe = float(query["probe_ms"][0]) / 1000
        calls = int(query["calls"][0])
        with TRACER.start_as_current_span("work"), hypoprobe.endpoint(ENDPOINT):
            for _ in range(calls):
                work_query(probe / calls)
            # The rest of the request: what makes it last ``total`` overall.
            _advance(total - probe)
        JOBS.inc()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
