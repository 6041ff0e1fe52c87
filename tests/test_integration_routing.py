"""Framework requests are named after the framework routed them, once, with nothing lost.

The scope starts as the request enters (so middlewares and hooks before routing count)
and takes its name from the route the framework matched itself: a probe called before
routing (in a middleware inside hypoprobe's) is attributed to that route's endpoint; a
request no route matches is ``"METHOD <unmatched>"``; and the framework's router runs
once per request, as it does without hypoprobe.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hypoprobe
from conftest import FakeClock

MS = 1_000_000


def _probe_data(hid: str) -> dict[str, int]:
    probes = hypoprobe.snapshot().probes
    return {
        p.endpoint: p.duration.count for p in probes if p.hypothesis == hid and p.duration.count
    }


@pytest.fixture
def early(unique_id: Callable[..., str], fake_clock: FakeClock) -> tuple[str, Callable[[], None]]:
    """A hypothesis id and a probed call to make before the framework routes."""
    hid = unique_id()

    @hypoprobe.probe(hid, name="before routing")
    def before_routing() -> None:
        fake_clock.advance(3 * MS)

    return hid, before_routing


def _register(hid: str, endpoint: str) -> None:
    hypoprobe.hypothesis(hid, claim="middleware work", endpoint=endpoint, min_share=0.5)


# -- Flask ---------------------------------------------------------------------------------


def _flask(tok: str, before: Callable[[], None]) -> Any:
    from flask import Flask

    from hypoprobe.integrations.flask import instrument_app

    app = Flask(tok)
    inner = app.wsgi_app

    def inside(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        before()  # a WSGI middleware inside hypoprobe's: Flask has not routed yet
        return inner(environ, start_response)

    app.wsgi_app = inside  # type: ignore[method-assign]  # as Flask documents for middleware
    instrument_app(app)

    @app.get(f"/{tok}/items/<int:item>")
    def item(item: int) -> str:
        return "ok"

    return app


def test_flask_probes_before_routing_count_for_the_matched_rule(
    unique_id: Callable[..., str], early: tuple[str, Callable[[], None]]
) -> None:
    hid, before = early
    tok = unique_id("app")
    endpoint = f"GET /{tok}/items/{{item}}"
    _register(hid, endpoint)
    client = _flask(tok, before).test_client()
    assert client.get(f"/{tok}/items/1", buffered=True).text == "ok"
    assert client.get(f"/{tok}/nothing", buffered=True).status_code == 404
    assert _probe_data(hid) == {endpoint: 1, "GET <unmatched>": 1}
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (1, 1)
    assert moments.probe_seconds == pytest.approx(0.003)


def test_flask_routes_each_request_once(
    unique_id: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from werkzeug.routing import MapAdapter

    matches: list[str] = []
    original = MapAdapter.match

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        matches.append(str(kwargs.get("path_info") or (args[0] if args else "")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MapAdapter, "match", counting)
    tok = unique_id("app")
    client = _flask(tok, lambda: None).test_client()
    for i in range(3):
        client.get(f"/{tok}/items/{i}", buffered=True)
    assert len(matches) == 3  # Flask's own match, and no other


# -- Django --------------------------------------------------------------------------------


_BEFORE: list[Callable[[], None]] = []


class ProbingMiddleware:
    """A Django middleware after hypoprobe's: runs before Django resolves the URL."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        for before in _BEFORE:
            before()
        return self.get_response(request)


@pytest.fixture
def django_settings() -> Iterator[None]:
    django = pytest.importorskip("django")
    from django.conf import settings  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="hypoprobe-tests",
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=[],
            DATABASES={},
            MIDDLEWARE=[],
            ROOT_URLCONF=types.ModuleType("hypoprobe_tests_empty_urls"),
        )
        django.setup()
    yield
    _BEFORE.clear()


def _django_urls(tok: str) -> types.ModuleType:
    from django.http import HttpResponse  # type: ignore[import-untyped]
    from django.urls import path  # type: ignore[import-untyped]

    module = types.ModuleType("hypoprobe_routing_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path(f"{tok}/other/<int:n>/", lambda r, n: HttpResponse("other")),
        path(f"{tok}/items/<int:item>/", lambda r, item: HttpResponse("ok")),
    ]
    return module


_DJANGO_MIDDLEWARE = [
    "hypoprobe.integrations.django.HypoprobeMiddleware",
    f"{__name__}.ProbingMiddleware",
]


def test_django_probes_before_resolution_count_for_the_resolved_route(
    django_settings: None, unique_id: Callable[..., str], early: tuple[str, Callable[[], None]]
) -> None:
    from django.test import Client, override_settings  # type: ignore[import-untyped]

    hid, before = early
    tok = unique_id("app")
    endpoint = f"GET /{tok}/items/{{item}}/"
    _register(hid, endpoint)
    _BEFORE.append(before)
    with override_settings(ROOT_URLCONF=_django_urls(tok), MIDDLEWARE=_DJANGO_MIDDLEWARE):
        client = Client()
        assert client.get(f"/{tok}/items/1/").content == b"ok"
        assert client.get(f"/{tok}/nothing/").status_code == 404
    assert _probe_data(hid) == {endpoint: 1, "GET <unmatched>": 1}
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (1, 1)


def test_django_resolves_each_request_once(
    django_settings: None, unique_id: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test import Client, override_settings
    from django.urls import get_resolver
    from django.urls.resolvers import URLResolver  # type: ignore[import-untyped]

    tok = unique_id("app")
    urls = _django_urls(tok)
    resolved: list[object] = []
    original = URLResolver.resolve

    def counting(self: Any, path: Any) -> Any:
        if self is get_resolver(urls):  # the root resolver: one call per routing pass
            resolved.append(path)
        return original(self, path)

    monkeypatch.setattr(URLResolver, "resolve", counting)
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=_DJANGO_MIDDLEWARE):
        client = Client()
        for i in range(3):
            assert client.get(f"/{tok}/items/{i}/").status_code == 200
    assert len(resolved) == 3  # Django's own resolution, and no other


# -- Starlette -----------------------------------------------------------------------------


def _starlette(tok: str, before: Callable[[], None], instrumented: bool = True) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from hypoprobe.integrations.starlette import instrument_app

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route(f"/{tok}/other/{{n:int}}", ok),
            Route(f"/{tok}/items/{{item:int}}", ok),
        ]
    )

    class Inside:  # added first: it runs inside hypoprobe's middleware, before routing
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                before()
            await self.inner(scope, receive, send)

    app.add_middleware(Inside)
    if instrumented:
        instrument_app(app)
    return app


def test_starlette_probes_before_routing_count_for_the_matched_route(
    unique_id: Callable[..., str], early: tuple[str, Callable[[], None]]
) -> None:
    from starlette.testclient import TestClient

    hid, before = early
    tok = unique_id("app")
    endpoint = f"GET /{tok}/items/{{item}}"
    _register(hid, endpoint)
    with TestClient(_starlette(tok, before)) as client:
        assert client.get(f"/{tok}/items/1").text == "ok"
        assert client.get(f"/{tok}/nothing").status_code == 404
        assert client.post(f"/{tok}/items/1").status_code == 405
    assert _probe_data(hid) == {endpoint: 1, "GET <unmatched>": 1, "POST <unmatched>": 1}


def test_starlette_routes_each_request_once(
    unique_id: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.routing import Route
    from starlette.testclient import TestClient

    calls: list[str] = []
    original = Route.matches

    def counting(self: Any, scope: Any) -> Any:
        calls.append(self.path)
        return original(self, scope)

    monkeypatch.setattr(Route, "matches", counting)
    tok = unique_id("app")
    counts = []
    for instrumented in (False, True):
        calls.clear()
        with TestClient(_starlette(tok, lambda: None, instrumented)) as client:
            for i in range(3):
                assert client.get(f"/{tok}/items/{i}").text == "ok"
        counts.append(len(calls))
    assert counts[0] == counts[1] == 6  # Starlette's own pass: two routes tried per request
