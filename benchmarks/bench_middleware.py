"""Per-request cost of hypoprobe's middlewares, beside an uninstrumented app and beside a
plain prometheus_client per-request Histogram middleware (the django-prometheus /
prometheus-fastapi-instrumentator style: one ``Histogram.labels(method, route).observe``
per request), measured side by side in one run.

Every case drives the app the way a server does (WSGI: call, iterate, close; ASGI: the
scope/receive/send protocol) in-process, no sockets, in many short rounds: on a shared
machine the minimum over short rounds is the steadier estimate, so both min and median
are reported. The
hypoprobe cases name requests by route and end a scope whose endpoint has one hypothesis.
Run: ``pytest benchmarks/bench_middleware.py --benchmark-only``; the per-request table
(median per request, and added cost over the bare app) is printed at the end.
"""

from __future__ import annotations

import asyncio
import io
import time
import types
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import prometheus_client
import pytest

import hypoprobe
from hypoprobe.integrations.asgi import HypoprobeASGIMiddleware
from hypoprobe.integrations.wsgi import HypoprobeMiddleware

pytestmark = pytest.mark.benchmark(group="middleware")

#: Requests per timed round, and rounds: short rounds, many of them (see the docstring).
REQUESTS = {"raw": 50, "framework": 10}
ROUNDS = 200
#: Per case: (min, median) seconds per request.
_RESULTS: dict[str, tuple[float, float]] = {}

hypoprobe.hypothesis(
    "BENCH-MW",
    claim="benchmark hypothesis so that request ends do their per-hypothesis work",
    endpoint=[
        "GET /bench/{id}",
        "GET /flask/{id}",
        "GET /starlette/{id}",
        "GET /django/{id}/",
    ],
    min_share=0.5,
)
_REGISTRY = prometheus_client.CollectorRegistry()
_LATENCY = prometheus_client.Histogram(
    "http_request_duration_seconds",
    "Request latency by method and route",
    ["method", "route"],
    registry=_REGISTRY,
)


def _run(benchmark: Any, name: str, run: Callable[[], None], requests: int) -> None:
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=5)
    stats = benchmark.stats
    if stats is not None:
        _RESULTS[name] = (stats.stats.min / requests, stats.stats.median / requests)


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _RESULTS:
        return
    # On a shared machine the minimum is the steadier estimate; both are shown.
    lines = ["", "Per-request cost in us (min / median); added = case minus its framework's bare:"]
    for name, (low, mid) in sorted(_RESULTS.items()):
        bare = _RESULTS.get(name.split(":")[0] + ":bare")
        added = (
            ""
            if bare is None
            else f"   added {1e6 * (low - bare[0]):7.2f} / {1e6 * (mid - bare[1]):7.2f}"
        )
        lines.append(f"  {name:22s} {1e6 * low:8.2f} / {1e6 * mid:8.2f}{added}")
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # a teardown's output is captured
            reporter.write_line("\n".join(lines))


# WSGI ------------------------------------------------------------------------------------


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _start_response(status: str, headers: list[Any], exc_info: Any = None) -> Callable[..., Any]:
    return _start_response


def _serve_wsgi(app: Any, path: str, requests: int) -> Callable[[], None]:
    template = _environ(path)

    def run() -> None:
        for _ in range(requests):
            body = app(dict(template), _start_response)
            try:
                for _chunk in body:
                    pass
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    return run


class _PrometheusBody:
    """The body of :func:`_prometheus_wsgi`: observes the request's latency on close()."""

    __slots__ = ("body", "method", "route", "t0")

    def __init__(self, body: Any, method: str, route: str, t0: float) -> None:
        self.body, self.method, self.route, self.t0 = body, method, route, t0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            _LATENCY.labels(self.method, self.route).observe(time.perf_counter() - self.t0)


def _prometheus_wsgi(app: Any, route: Callable[[dict[str, Any]], str]) -> Any:
    """A plain per-request Histogram middleware, ended when the body is closed."""

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        t0 = time.perf_counter()
        body = app(environ, start_response)
        return _PrometheusBody(body, environ["REQUEST_METHOD"], route(environ), t0)

    return middleware


def _bench_route(environ: dict[str, Any]) -> str:
    return "/bench/{id}"


@pytest.mark.parametrize("case", ["bare", "hypoprobe", "prometheus"])
def test_wsgi(benchmark: Any, case: str) -> None:
    app: Any = _wsgi_app
    if case == "hypoprobe":
        app = HypoprobeMiddleware(app, name=lambda e: "GET /bench/{id}")
    elif case == "prometheus":
        app = _prometheus_wsgi(app, _bench_route)
    n = REQUESTS["raw"]
    _run(benchmark, f"wsgi:{case}", _serve_wsgi(app, "/bench/7", n), n)


# Flask -----------------------------------------------------------------------------------


def _flask_app(case: str) -> Any:
    from flask import Flask, request

    from hypoprobe.integrations.flask import instrument_app

    app = Flask(f"bench_{case}")
    # A realistic route table: the named request is not the first rule tried.
    for i in range(20):
        app.add_url_rule(f"/other{i}/<int:id>", f"other{i}", lambda id: "x")

    @app.get("/flask/<int:id>")
    def view(id: int) -> str:
        return "ok"

    if case == "hypoprobe":
        instrument_app(app)
    elif case == "prometheus":  # prometheus-flask-exporter style: hooks, url_rule label

        @app.before_request
        def before() -> None:
            request.environ["bench.t0"] = time.perf_counter()

        @app.after_request
        def after(response: Any) -> Any:
            rule = request.url_rule.rule if request.url_rule else "<unmatched>"
            _LATENCY.labels(request.method, rule).observe(
                time.perf_counter() - request.environ["bench.t0"]
            )
            return response

    return app


@pytest.mark.parametrize("case", ["bare", "hypoprobe", "prometheus"])
def test_flask(benchmark: Any, case: str) -> None:
    n = REQUESTS["framework"]
    _run(benchmark, f"flask:{case}", _serve_wsgi(_flask_app(case), "/flask/7", n), n)


# Django ----------------------------------------------------------------------------------


def _django_handler(case: str) -> Any:
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]
    from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]
    from django.http import HttpResponse  # type: ignore[import-untyped]
    from django.test import override_settings  # type: ignore[import-untyped]
    from django.urls import path  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="bench",
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=[],
            DATABASES={},
            MIDDLEWARE=[],
            ROOT_URLCONF=types.ModuleType("bench_empty_urls"),
        )
        django.setup()
    urls = types.ModuleType("bench_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        *(path(f"other{i}/<int:id>/", lambda r, id: HttpResponse("x")) for i in range(20)),
        path("django/<int:id>/", lambda r, id: HttpResponse("ok")),
    ]
    middleware = {
        "bare": [],
        "hypoprobe": ["hypoprobe.integrations.django.HypoprobeMiddleware"],
        "prometheus": [f"{__name__}.PrometheusDjangoMiddleware"],
        # what Django users install: django-prometheus's pair, first and last
        "django_prometheus": [
            "django_prometheus.middleware.PrometheusBeforeMiddleware",
            "django_prometheus.middleware.PrometheusAfterMiddleware",
        ],
    }[case]
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=middleware):
        handler = WSGIHandler()  # loads the middleware chain now, under these settings
    return handler, urls


class PrometheusDjangoMiddleware:
    """django-prometheus style: time the request, label it by the resolved route."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        t0 = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "<unmatched>"
        _LATENCY.labels(request.method, route).observe(time.perf_counter() - t0)
        return response


@pytest.mark.parametrize("case", ["bare", "hypoprobe", "prometheus"])
def test_django(benchmark: Any, case: str) -> None:
    from django.test import override_settings

    handler, urls = _django_handler(case)
    n = REQUESTS["framework"]
    with override_settings(ROOT_URLCONF=urls):
        _run(benchmark, f"django:{case}", _serve_wsgi(handler, "/django/7/", n), n)


# ASGI ------------------------------------------------------------------------------------


async def _asgi_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _prometheus_asgi(app: Any, route: Callable[[dict[str, Any]], str]) -> Any:
    clock = time.perf_counter

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        t0 = clock()
        try:
            await app(scope, receive, send)
        finally:
            _LATENCY.labels(scope["method"], route(scope)).observe(clock() - t0)

    return middleware


def _serve_asgi(app: Any, path: str, requests: int) -> Callable[[], None]:
    template = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 50000),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        return None

    async def many() -> None:
        for _ in range(requests):
            await app(dict(template), receive, send)

    loop = asyncio.new_event_loop()

    def run() -> None:
        loop.run_until_complete(many())

    # The driver serves many rounds on one loop; it closes with the driver.
    weakref.finalize(run, loop.close)
    return run


@pytest.mark.parametrize("case", ["bare", "hypoprobe", "prometheus"])
def test_asgi(benchmark: Any, case: str) -> None:
    app: Any = _asgi_app
    if case == "hypoprobe":
        app = HypoprobeASGIMiddleware(app, name=lambda s: "GET /bench/{id}")
    elif case == "prometheus":
        app = _prometheus_asgi(app, _bench_route)
    n = REQUESTS["raw"]
    _run(benchmark, f"asgi:{case}", _serve_asgi(app, "/bench/7", n), n)


# Starlette -------------------------------------------------------------------------------


def _starlette_app(case: str) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from hypoprobe.integrations.starlette import instrument_app

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route(f"/other{i}/{{id:int}}", ok) for i in range(20)]
    app = Starlette(routes=[*routes, Route("/starlette/{id:int}", ok)])
    if case == "hypoprobe":
        instrument_app(app)
    elif case == "prometheus":  # instrumentator style: label by the route matched

        def route(scope: dict[str, Any]) -> str:
            found = scope.get("route")
            return getattr(found, "path", "<unmatched>")

        class Prometheus:
            def __init__(self, app: Any) -> None:
                self.app = _prometheus_asgi(app, route)

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                await self.app(scope, receive, send)

        app.add_middleware(Prometheus)
    elif case == "instrumentator":  # what FastAPI users install, its default metrics
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=prometheus_client.CollectorRegistry()).instrument(app)
    return app


@pytest.mark.parametrize("case", ["bare", "hypoprobe", "prometheus"])
def test_starlette(benchmark: Any, case: str) -> None:
    n = REQUESTS["framework"]
    _run(benchmark, f"starlette:{case}", _serve_asgi(_starlette_app(case), "/starlette/7", n), n)
