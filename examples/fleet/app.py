"""A small WSGI app for a pre-fork fleet: one hypothesis, one probe, known times.

``GET /report?probe_ms=P&rest_ms=R&calls=C`` is one ``GET /report`` request that spends
``P`` ms inside the probed "query" (split over ``C`` calls) and ``R`` ms elsewhere, so a
load generator knows each request's true probe and endpoint time. ``GET /metrics`` is the
Prometheus endpoint (:func:`hypoprobe.metrics_wsgi_app`: text, or protobuf with native
histograms for a Prometheus that asks): in multi-process mode any worker reports the whole
host.
``GET /pid`` answers the serving worker's pid (the end-to-end test kills one).

Run it (see ``gunicorn.conf.py`` and docs/operations.md)::

    gunicorn -c examples/fleet/gunicorn.conf.py --chdir examples/fleet app:app
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import hypoprobe

HYPOTHESIS = "FLEET-1"
ENDPOINT = "GET /report"

hypoprobe.hypothesis(
    HYPOTHESIS,
    claim="the report query dominates GET /report",
    endpoint=ENDPOINT,
    min_share=0.4,
    observed=hypoprobe.Observation(probe_seconds=0.024, endpoint_seconds=0.03),
    slow_threshold=0.04,
    owner="perf-team",
    ticket="https://tickets.example.com/FLEET-1",
)


@hypoprobe.probe(HYPOTHESIS, name="report_query")
def report_query(seconds: float) -> None:
    time.sleep(seconds)


def render_rest(seconds: float) -> None:
    time.sleep(seconds)


def _arg(query: dict[str, list[str]], name: str, default: str) -> float:
    return float(query.get(name, [default])[0])


metrics = hypoprobe.metrics_wsgi_app()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        return metrics(environ, start_response)
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/report":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        probe_ms = _arg(query, "probe_ms", "10")
        rest_ms = _arg(query, "rest_ms", "10")
        calls = max(1, int(_arg(query, "calls", "1")))
        with hypoprobe.endpoint(ENDPOINT):
            # As many sleeps outside the probe as inside: a sleep overshoots by a little,
            # and at a share near one half the overshoots then cancel in the ratio.
            for _ in range(calls):
                report_query(probe_ms / 1000 / calls)
                render_rest(rest_ms / 1000 / calls)
        start_response("200 OK", [("Content-Type", "text/plain")])
        # The serving pid lets a load generator count what each worker completed.
        return [str(os.getpid()).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
