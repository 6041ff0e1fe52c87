"""Flask: an endpoint scope per request, named by the matched URL rule.

``instrument_app(app)`` wraps ``app.wsgi_app`` in the WSGI middleware, so the scope covers
everything Flask does for the request — request context, session loading, before/after
request hooks, the view and a streamed body — and names it by the URL rule the request
matches: ``GET /campaigns/<int:id>`` becomes ``"GET /campaigns/{id}"``. The rule is the one
Flask matched itself (``request.url_rule``): the scope starts unnamed and is named the first
time a probe runs after routing, or at the latest in a ``teardown_request`` hook; probes
that ran before (in a middleware, say) are kept and counted under that name. No second
routing pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .._core import _scope as _core
from ._request import Namer, RouteNames, Segmenter, method_of
from .wsgi import HypoprobeMiddleware

__all__ = ["flask_namer", "instrument_app", "normalise_rule"]

_VARIABLE = re.compile(r"<(?:[^<>]*:)?(\w+)>")
#: Bound on cached URL-map adapters (one per host, script name and scheme seen).
_MAX_ADAPTERS = 64


def normalise_rule(rule: str) -> str:
    """A Flask/Werkzeug rule as a route template: converters dropped, ``{name}`` kept.

    Example::

        assert normalise_rule("/campaigns/<int:id>") == "/campaigns/{id}"
    """
    return _VARIABLE.sub(r"{\1}", rule)


def flask_namer(app: Any) -> Namer:
    """A naming function ``environ -> "METHOD template"`` from ``app``'s URL map.

    Returns None (``"<METHOD> <unmatched>"``) when no rule matches (404, 405, redirects).

    Example::

        HypoprobeMiddleware(app.wsgi_app, name=flask_namer(app))
    """
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    url_map = app.url_map
    templates: dict[str, str] = {}
    # Binding the URL map to a request is half the cost of matching it; an adapter only
    # depends on host, script name and scheme, so keep a few (hosts come from clients:
    # bounded) and pass each request's path and method to match().
    adapters: dict[tuple[object, ...], Any] = {}

    def bind(environ: dict[str, Any]) -> Any:
        # Bind as Flask.create_url_adapter does, so host and subdomain rules match alike.
        if url_map.host_matching:
            return url_map.bind_to_environ(environ)
        subdomain = None if app.subdomain_matching else (url_map.default_subdomain or "")
        return url_map.bind_to_environ(
            environ, server_name=app.config.get("SERVER_NAME"), subdomain=subdomain
        )

    def name(environ: dict[str, Any]) -> str | None:
        method = environ.get("REQUEST_METHOD")
        if "HTTP_UPGRADE" in environ:  # websocket rules: bind per request, as Flask does
            adapter = bind(environ)
        else:
            key = (
                environ.get("HTTP_HOST"),
                environ.get("SERVER_NAME"),
                environ.get("SERVER_PORT"),
                environ.get("SCRIPT_NAME"),
                environ.get("wsgi.url_scheme"),
            )
            adapter = adapters.get(key)
            if adapter is None:
                adapter = bind(environ)
                if len(adapters) < _MAX_ADAPTERS:
                    adapters[key] = adapter
        # PEP 3333 strings are latin-1 decoded bytes; URLs are UTF-8 (as Werkzeug decodes).
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        try:
            rule, _ = adapter.match(path_info=path, method=method, return_rule=True)
        except (HTTPException, RequestRedirect):
            return None
        template = templates.get(rule.rule)
        if template is None:  # one entry per rule: bounded by the app's URL map
            template = templates[rule.rule] = normalise_rule(rule.rule)
        return f"{method_of(method)} {template}"

    return name


def _matched_rule_namer() -> Namer:
    """``environ -> "METHOD template"`` from the rule Flask matched, None before or without."""
    names = RouteNames(normalise_rule)

    def resolve(environ: dict[str, Any]) -> str | None:
        # Werkzeug keeps the request object in its environ; Flask's has the matched rule.
        rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
        if rule is None:
            return None
        return names[rule.rule, environ.get("REQUEST_METHOD")]

    return resolve


def instrument_app(
    app: Any,
    *,
    name: Namer | None = None,
    segment: Segmenter | None = None,
    customer: Callable[[Any], Any] | None = None,
) -> Any:
    """Open an endpoint scope for every request of Flask ``app``; returns ``app``.

    ``name(environ)`` overrides the URL-rule naming; ``segment(environ)``, if given, is
    passed to ``hypoprobe.segment`` per request when the core has segments;
    ``customer(environ)`` (id, ``(id, value)`` or None) to ``hypoprobe.customer``.

    Example::

        app = Flask(__name__)
        instrument_app(app)

        @app.get("/campaigns/<int:id>")  # requests are "GET /campaigns/{id}"
        def campaign(id): ...
    """
    middleware = HypoprobeMiddleware(app.wsgi_app, name=name, segment=segment, customer=customer)
    if name is None:
        middleware._resolve = _matched_rule_namer()
        # Flask forgets its request (and rule) when the request context pops, before a
        # streamed body ends: name the scope by then, if no probe has yet.
        app.teardown_request(_settle_current)
    app.wsgi_app = middleware
    return app


def _settle_current(exc: BaseException | None) -> None:
    scope = _core.CURRENT.get()
    if scope is not None and scope.pending is not None:
        _core.settle(scope)
