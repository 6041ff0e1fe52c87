"""Starlette and FastAPI: requests named by the matched route, streamed bodies in the scope.

Real apps driven by Starlette's TestClient. Its ASGI scope announces spec 2.0, so
Starlette streams responses from a child task: the request ends in another task than it
began, which the middleware must handle without faults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import hypoprobe
from conftest import FakeClock
from hypoprobe.integrations.starlette import HypoprobeMiddleware, instrument_app

MS = 1_000_000


def _count(name: str) -> int:
    data = hypoprobe.snapshot().endpoint(name)
    return 0 if data is None else data.duration.count


def _faults() -> dict[str, int]:
    return dict(hypoprobe.snapshot().internal_errors)


def test_fastapi_two_ids_are_one_endpoint_and_view_probes_count(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("app")
    endpoint = f"GET /{tok}/campaigns/{{campaign_id}}"
    hypoprobe.hypothesis(hid, claim="the count query dominates", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="count_subscribers")
    async def count_subscribers(campaign_id: int) -> int:
        fake_clock.advance(45 * MS)
        return campaign_id

    app: FastAPI = instrument_app(FastAPI())

    @app.get(f"/{tok}/campaigns/{{campaign_id}}")
    async def campaign(campaign_id: int) -> dict[str, int]:
        fake_clock.advance(5 * MS)
        return {"subscribers": await count_subscribers(campaign_id)}

    with TestClient(app) as client:  # runs lifespan too: passed through untouched
        assert client.get(f"/{tok}/campaigns/1").json() == {"subscribers": 1}
        assert client.get(f"/{tok}/campaigns/2").json() == {"subscribers": 2}
        assert client.get(f"/{tok}/campaigns/x").status_code == 422  # still the route

    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (3, 2)
    assert moments.probe_seconds == pytest.approx(0.090)


def test_streamed_body_and_background_task(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("app")
    endpoint = f"GET /{tok}/export/{{fmt}}"
    hypoprobe.hypothesis(hid, claim="rows dominate", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="row")
    async def row(i: int) -> str:
        fake_clock.advance(15 * MS)
        return f"{i}\n"

    async def rows() -> AsyncIterator[str]:
        for i in range(4):
            yield await row(i)

    async def later() -> None:
        fake_clock.advance(900 * MS)  # after the response: not part of the request

    async def export(request: Request) -> StreamingResponse:
        return StreamingResponse(rows(), background=BackgroundTask(later))

    app = Starlette(routes=[Route(f"/{tok}/export/{{fmt:str}}", export)])
    app.add_middleware(HypoprobeMiddleware)
    faults = _faults()
    with TestClient(app) as client:
        assert client.get(f"/{tok}/export/csv").text == "0\n1\n2\n3\n"
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert moments.requests == 1
    assert moments.probe_seconds == pytest.approx(0.060)
    assert moments.endpoint_seconds == pytest.approx(0.060)
    assert _faults() == faults  # ending in the streaming task is not a fault


def test_mounts_unmatched_and_wrong_method(unique_id: Callable[..., str]) -> None:
    tok = unique_id("app")

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = [Route("/items/{item_id:int}", ok)]
    app = instrument_app(Starlette(routes=[Mount(f"/{tok}/api", routes=inner)]))
    before = (_count("GET <unmatched>"), _count("POST <unmatched>"))
    with TestClient(app) as client:
        assert client.get(f"/{tok}/api/items/3").text == "ok"
        assert client.get(f"/{tok}/api/items/4").text == "ok"
        assert client.get(f"/{tok}/api/nothing").status_code == 404
        assert client.post(f"/{tok}/api/items/3").status_code == 405
    assert _count(f"GET /{tok}/api/items/{{item_id}}") == 2
    assert (_count("GET <unmatched>"), _count("POST <unmatched>")) == (before[0] + 1, before[1] + 1)


class Boom(Exception):
    pass


def test_exceptions_propagate_unchanged_and_websockets_pass_through(
    unique_id: Callable[..., str],
) -> None:
    tok = unique_id("app")
    raised = Boom("view failed")
    app: FastAPI = instrument_app(FastAPI())

    @app.get(f"/{tok}/fail")
    async def fail() -> Any:
        raise raised

    @app.websocket(f"/{tok}/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    with TestClient(app) as client:
        with pytest.raises(Boom) as info:
            client.get(f"/{tok}/fail")
        assert info.value is raised
        with client.websocket_connect(f"/{tok}/ws") as socket:
            assert socket.receive_text() == "hello"
    assert _count(f"GET /{tok}/fail") == 1
    assert not [e for e in hypoprobe.snapshot().endpoints if f"/{tok}/ws" in e.endpoint]
