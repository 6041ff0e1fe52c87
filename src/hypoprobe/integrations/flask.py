"""Flask: an endpoint scope per request, named by the matched URL rule.

``instrument_app(app)`` wraps ``app.wsgi_app`` in the WSGI middleware, so the scope covers
everything Flask does for the request — request context, session loading, before/after
request hooks, the view and a streamed body — and names it by the URL rule the request
matches: ``GET /campaigns/<int:id>`` becomes ``"GET /campaigns/{id}"``. The rule is found
with the app's own URL map before Flask dispatches (Flask routes the request once more
itself: the price of naming a scope that must start before routing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._request import Namer, Segmenter, method_of
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
    app.wsgi_app = HypoprobeMiddleware(
        app.wsgi_app, name=name or flask_namer(app), segment=segment, customer=customer
    )
    return app
