"""The soak's WSGI app: one hypothesis, one probe, ``/metrics`` from any worker.

``GET /soak`` is one request with one probe call; ``GET /metrics`` is the Prometheus
exposition of the whole host (multi-process mode); ``GET /pid`` the serving worker's pid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import prometheus_client

import hypoprobe

hypoprobe.hypothesis(
    "SOAK-1", claim="work dominates GET /soak", endpoint="GET /soak", min_share=0.5
)


@hypoprobe.probe("SOAK-1", name="work")
def work() -> int:
    return sum(range(50))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        start_response("200 OK", [("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)])
        return [body]
    if path == "/soak":
        with hypoprobe.endpoint("GET /soak"):
            work()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
