"""A small WSGI app for a pre-fork fleet: one hypothesis, one probe, known times.

``GET /report?probe_ms=P&rest_ms=R&calls=C`` is one ``GET /report`` request that spends
``P`` ms inside the probed "query" (split over ``C`` calls) and ``R`` ms elsewhere; it
answers the serving worker's pid and the probe and endpoint seconds it timed itself, apart
from hypoprobe, so a load generator knows each request's true times. ``GET /metrics`` is the
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
def report_query(seconds: float) -> float:
    """Sleep ``seconds``; return how long that took (the probe passes it through)."""
    started = time.perf_counter()
    time.sleep(seconds)
    return time.perf_counter() - started


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
        # The app times itself, apart from hypoprobe and inside its bounds, so a load
        # generator knows each request's true times: a sleep overshoots, by more on a
        # loaded machine.
        probe_s = 0.0
        with hypoprobe.endpoint(ENDPOINT):
            started = time.perf_counter()
            for _ in range(calls):
                probe_s += report_query(probe_ms / 1000 / calls)
                render_rest(rest_ms / 1000 / calls)
            endpoint_s = time.perf_counter() - started
        start_response("200 OK", [("Content-Type", "text/plain")])
        # The serving pid lets a load generator count what each worker completed.
        return [f"{os.getpid()} {probe_s:.9f} {endpoint_s:.9f}".encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
