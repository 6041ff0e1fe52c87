"""ASGI middleware: HTTP scopes ending with the last body message; other types untouched.

Requests go through httpx's ASGI transport (a real ASGI client); lifespan and the
disconnect case speak the ASGI protocol directly, as a server does. Durations come from
the deterministic ``fake_clock`` (per task), so endpoint times are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

import hypoprobe
from conftest import FakeClock
from hypoprobe.integrations.asgi import HypoprobeASGIMiddleware

MS = 1_000_000
Scope = MutableMapping[str, Any]


def _count(name: str) -> int:
    data = hypoprobe.snapshot().endpoint(name)
    return 0 if data is None else data.duration.count


def _get(app: Any, *paths: str) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(p) for p in paths]

    return asyncio.run(run())


def test_streamed_chunks_are_inside_the_scope_and_later_work_is_not(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("r")
    endpoint = f"GET /{tok}/export/{{id}}"
    hypoprobe.hypothesis(hid, claim="rendering dominates", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="render_chunk")
    async def render_chunk(i: int) -> bytes:
        fake_clock.advance(20 * MS)
        return b"chunk%d\n" % i

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        fake_clock.advance(10 * MS)
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": await render_chunk(i), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        fake_clock.advance(500 * MS)  # after the response: a background task, not the request

    def name(scope: Scope) -> str | None:
        parts = scope["path"].split("/")
        return f"{scope['method']} /{tok}/export/{{id}}" if parts[1:3] == [tok, "export"] else None

    responses = _get(
        HypoprobeASGIMiddleware(app, name=name), f"/{tok}/export/1", f"/{tok}/export/2"
    )
    assert [r.text for r in responses] == ["chunk0\nchunk1\nchunk2\n"] * 2
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert moments.requests == 2
    assert moments.probe_seconds == pytest.approx(0.120)
    assert moments.endpoint_seconds == pytest.approx(0.140)


def test_unmatched_and_method_fallbacks(unique_id: Callable[..., str]) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    before = _count("GET <unmatched>")
    _get(HypoprobeASGIMiddleware(app), f"/{unique_id()}/1")
    _get(HypoprobeASGIMiddleware(app, name=lambda scope: None), "/2")
    assert _count("GET <unmatched>") == before + 2


class Boom(Exception):
    pass


def test_exceptions_propagate_unchanged_and_the_scope_ends(unique_id: Callable[..., str]) -> None:
    name = f"GET /{unique_id()}"
    raised = Boom("app failed")

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise raised

    with pytest.raises(Boom) as info:
        _get(HypoprobeASGIMiddleware(app, name=lambda scope: name), "/")
    assert info.value is raised
    assert _count(name) == 1


def test_a_client_disconnect_ends_the_scope(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    name = f"GET /{unique_id()}"

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()  # the request
        fake_clock.advance(30 * MS)
        assert (await receive())["type"] == "http.disconnect"
        fake_clock.advance(1000 * MS)  # the app notices late; the client is long gone

    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    asyncio.run(HypoprobeASGIMiddleware(app, name=lambda s: name)(scope, receive, send))
    data = hypoprobe.snapshot().endpoint(name)
    assert data is not None
    assert data.duration.count == 1
    assert data.duration.sum == pytest.approx(0.030)


def test_lifespan_and_websocket_pass_through_untouched(unique_id: Callable[..., str]) -> None:
    name = f"GET /{unique_id()}"
    seen: list[tuple[str, Any, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append((scope["type"], receive, send))
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": message["type"] + ".complete"})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            text = (await receive())["text"]
            await send({"type": "websocket.send", "text": text.upper()})
            await send({"type": "websocket.close"})

    async def lifespan() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await mw({"type": "lifespan"}, receive, send)
        assert seen[-1][1:] == (receive, send)  # the very same callables, not wrappers
        return sent

    mw = HypoprobeASGIMiddleware(app, name=lambda scope: name)
    assert asyncio.run(lifespan()) == [{"type": "lifespan.startup.complete"}]
    with TestClient(mw).websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "HI"
    assert [t for t, _, _ in seen] == ["lifespan", "websocket"]
    assert _count(name) == 0
