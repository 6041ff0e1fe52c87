"""Requests by status class and by the exception that ended them, per endpoint."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import MutableMapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import hypoprobe
from hypoprobe.integrations.asgi import HypoprobeASGIMiddleware
from hypoprobe.integrations.wsgi import HypoprobeMiddleware
from hypoprobe.model import Snapshot

_n = itertools.count()


def _outcomes(endpoint: str, snap: Snapshot | None = None) -> dict[tuple[str, str], int]:
    snap = snap or hypoprobe.snapshot()
    return {
        (o.status, o.exception): o.count
        for o in snap.outcomes
        if o.endpoint == endpoint and o.count  # the common ("", "") series exists at zero
    }


def test_plain_scopes_count_every_request_with_no_status() -> None:
    endpoint = f"job outcomes-{next(_n)}"
    for _ in range(3):
        with hypoprobe.endpoint(endpoint):
            pass
    assert _outcomes(endpoint) == {("", ""): 3}


def test_an_exception_that_ends_a_request_is_counted_by_class_and_passes_through() -> None:
    endpoint = f"job failing-{next(_n)}"
    boom = KeyError("x")
    with pytest.raises(KeyError) as caught, hypoprobe.endpoint(endpoint):
        raise boom
    assert caught.value is boom
    with hypoprobe.endpoint(endpoint):
        pass
    assert _outcomes(endpoint) == {("", "KeyError"): 1, ("", ""): 1}


def test_wsgi_responses_are_counted_by_status_class() -> None:
    n = next(_n)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        code = environ["PATH_INFO"].strip("/")
        if code == "raise":
            raise RuntimeError("app failed")
        start_response(f"{code} Whatever", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = HypoprobeMiddleware(app, name=lambda environ: f"GET /status-{n}")
    for code in ("200", "204", "404", "503", "raise"):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/{code}"}
        try:
            body = wrapped(environ, lambda status, headers, *exc: None)
        except RuntimeError:
            continue
        list(body)
        body.close()
    assert _outcomes(f"GET /status-{n}") == {
        ("2xx", ""): 2,
        ("4xx", ""): 1,
        ("5xx", ""): 1,
        ("", "RuntimeError"): 1,
    }


def test_asgi_responses_are_counted_by_status_class() -> None:
    n = next(_n)

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 302, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    wrapped = HypoprobeASGIMiddleware(app, name=lambda scope: f"GET /moved-{n}")

    async def one() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        await wrapped({"type": "http", "method": "GET", "path": "/"}, receive, send)

    asyncio.run(one())
    assert _outcomes(f"GET /moved-{n}") == {("3xx", ""): 1}


def test_outcomes_are_exposed_and_survive_json() -> None:
    endpoint = f"job exposed-{next(_n)}"
    with pytest.raises(ValueError, match="bad input"), hypoprobe.endpoint(endpoint):
        raise ValueError("bad input")
    registry = CollectorRegistry()
    hypoprobe.configure(registry=registry)
    try:
        text = generate_latest(registry).decode()
    finally:
        import prometheus_client

        hypoprobe.configure(registry=prometheus_client.REGISTRY)
    samples = [
        s
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "hypoprobe_endpoint_requests_total"
        and s.labels["endpoint"] == endpoint
        and s.value
    ]
    assert [(s.labels["status"], s.labels["exception"], s.value) for s in samples] == [
        ("", "ValueError", 1.0)
    ]
    snap = hypoprobe.snapshot()
    assert _outcomes(endpoint, Snapshot.from_json(snap.to_json())) == {("", "ValueError"): 1}
