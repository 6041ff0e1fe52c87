"""``/metrics`` with content negotiation: protobuf (native histograms) for scrapers that ask.

A scrape whose ``Accept`` prefers
``application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited``
(Prometheus started with ``--enable-feature=native-histograms`` sends it first) gets the
whole registry in the protobuf format, hypoprobe's histograms in native form with their
classic buckets alongside. Every other scrape is handed to prometheus_client's own WSGI or
ASGI app, so text and OpenMetrics output is byte for byte what prometheus_client serves.

When the ``protobuf`` package is not installed (it comes with ``hypoprobe[native]``), a
protobuf scrape gets text, and the first one logs why; a registry the protobuf form cannot
render (counted in ``hypoprobe_internal_errors_total{kind="protobuf_exposition"}``) too.
"""

from __future__ import annotations

import gzip
import importlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client.exposition import ThreadingWSGIServer, gzip_accepted
from prometheus_client.registry import REGISTRY, CollectorRegistry, RestrictedRegistry

from ._core import _faults
from ._serving import BackgroundServer, base_url, bind

__all__ = [
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "start_metrics_server",
    "wants_protobuf",
]

_log = logging.getLogger("hypoprobe")
_PROTOBUF_MEDIA = "application/vnd.google.protobuf"
_PROTOBUF_MESSAGE = "io.prometheus.client.MetricFamily"
_warned = threading.Event()

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def wants_protobuf(accept: str | None) -> bool:
    """True when ``accept`` ranks the delimited MetricFamily protobuf format first.

    Ties go to protobuf: a scraper that lists it has the parser for it.

    Example::

        assert wants_protobuf(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited,text/plain;version=0.0.4;q=0.5"
        )
        assert not wants_protobuf("text/plain;version=0.0.4")
    """
    best_protobuf, best_other = 0.0, 0.0
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        options: dict[str, str] = {}
        for param in params:
            key, _, value = param.partition("=")
            options[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(options.get("q", "1"))
        except ValueError:
            q = 0.0
        if media.lower() == _PROTOBUF_MEDIA:
            if options.get("proto") == _PROTOBUF_MESSAGE and options.get("encoding") == "delimited":
                best_protobuf = max(best_protobuf, q)
        else:
            best_other = max(best_other, q)
    return best_protobuf > 0 and best_protobuf >= best_other


def _load_protobuf() -> ModuleType | None:
    """hypoprobe's protobuf renderer, or None (logged once) when the runtime is missing."""
    try:
        return importlib.import_module("hypoprobe._protobuf")
    except ImportError as exc:
        if not _warned.is_set():
            _warned.set()
            _log.warning(
                "hypoprobe: a scraper asked for the protobuf format (native histograms) but "
                "the protobuf runtime cannot be imported (%s): serving text instead; install "
                "hypoprobe[native] (protobuf >= 5.28) for native histograms",
                exc,
            )
        return None


def _protobuf_body(registry: CollectorRegistry | RestrictedRegistry) -> tuple[bytes, str] | None:
    renderer = _load_protobuf()
    if renderer is None:
        return None
    try:
        body: bytes = renderer.render(registry)
    except Exception:
        # A metric the protobuf form cannot carry must not cost the scrape: the text
        # exposition still answers (and raises, as prometheus_client does, if it fails too).
        _faults.record("protobuf_exposition")
        return None
    content_type: str = renderer.CONTENT_TYPE
    return body, content_type


def _negotiated(
    registry: CollectorRegistry | RestrictedRegistry,
    accept: str | None,
    accept_encoding: str | None,
    query: str,
    disable_compression: bool,
) -> tuple[list[tuple[str, str]], bytes] | None:
    """Headers and body of a protobuf answer, or None to let prometheus_client answer."""
    if not wants_protobuf(accept):
        return None
    params = parse_qs(query)
    target: CollectorRegistry | RestrictedRegistry = registry
    if "name[]" in params and isinstance(registry, CollectorRegistry):
        target = registry.restricted_registry(params["name[]"])
    rendered = _protobuf_body(target)
    if rendered is None:
        return None
    body, content_type = rendered
    headers = [("Content-Type", content_type)]
    if not disable_compression and gzip_accepted(accept_encoding or ""):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body


def metrics_wsgi_app(
    registry: CollectorRegistry | None = None, disable_compression: bool = False
) -> WSGIApp:
    """A WSGI ``/metrics`` app: protobuf with native histograms when asked, else text.

    Serves the whole ``registry`` (default: prometheus_client's default registry, where
    hypoprobe registers itself), so it replaces ``prometheus_client.make_wsgi_app``.

    Example::

        from werkzeug.middleware.dispatcher import DispatcherMiddleware
        app.wsgi_app = DispatcherMiddleware(
            app.wsgi_app, {"/metrics": hypoprobe.metrics_wsgi_app()}
        )
    """
    reg = REGISTRY if registry is None else registry
    text_app: WSGIApp = prometheus_client.make_wsgi_app(reg, disable_compression)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") != "/favicon.ico":
            answer = _negotiated(
                reg,
                environ.get("HTTP_ACCEPT"),
                environ.get("HTTP_ACCEPT_ENCODING"),
                environ.get("QUERY_STRING", ""),
                disable_compression,
            )
            if answer is not None:
                headers, body = answer
                start_response("200 OK", headers)
                return [body]
        return text_app(environ, start_response)

    return app


def metrics_asgi_app(
    registry: CollectorRegistry | None = None, disable_compression: bool = False
) -> ASGIApp:
    """An ASGI ``/metrics`` app: protobuf with native histograms when asked, else text.

    The counterpart of ``prometheus_client.make_asgi_app``, serving the whole registry.

    Example::

        from starlette.routing import Mount
        routes = [Mount("/metrics", app=hypoprobe.metrics_asgi_app())]
    """
    reg = REGISTRY if registry is None else registry
    text_app: ASGIApp = prometheus_client.make_asgi_app(reg, disable_compression)

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") == "http" and scope.get("method", "GET") == "GET":
            headers: dict[str, list[str]] = {}
            for name, value in scope.get("headers") or ():
                headers.setdefault(name.decode("latin-1").lower(), []).append(
                    value.decode("latin-1")
                )
            answer = _negotiated(
                reg,
                ",".join(headers.get("accept", ())),
                ",".join(headers.get("accept-encoding", ())),
                scope.get("query_string", b"").decode("utf-8", errors="replace"),
                disable_compression,
            )
            if answer is not None:
                response_headers, body = answer
                message = await receive()
                if message.get("type") == "http.request":
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                # ASGI header names are lower case
                                (k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in response_headers
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                return
        await text_app(scope, receive, send)

    return app


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` with negotiation from a daemon thread, like prometheus_client's.

    The same threaded WSGI server as ``prometheus_client.start_http_server`` (one thread
    per scrape), running :func:`metrics_wsgi_app`. Port 0 picks a free port:
    ``server.server_port`` says which. Stop it with ``server.shutdown()`` then
    ``server.server_close()``. It listens on loopback unless told otherwise: metrics name
    endpoints and code paths, so exposing them to the network is a choice to make
    (``addr="0.0.0.0"`` for a Prometheus on another host).

    Example::

        server, thread = hypoprobe.start_metrics_server(9100)
        print("metrics on port", server.server_port)
    """
    family = socket.AF_INET
    try:
        infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        addr = str(sockaddr[0])
    except OSError:
        pass

    class _Server(ThreadingWSGIServer):
        address_family = family

    httpd = bind(metrics_wsgi_app(registry), addr, port, _Server)
    thread = BackgroundServer(httpd, base_url(addr, httpd.server_port) + "/metrics").start()
    return httpd, thread
