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
from typing import Any

from ._request import Namer, Segmenter, method_of
from .wsgi import HypoprobeMiddleware

__all__ = ["flask_namer", "instrument_app", "normalise_rule"]

_VARIABLE = re.compile(r"<(?:[^<>]*:)?(\w+)>")


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

    def name(environ: dict[str, Any]) -> str | None:
        # Bind as Flask.create_url_adapter does, so host and subdomain rules match alike.
        if url_map.host_matching:
            adapter = url_map.bind_to_environ(environ)
        else:
            subdomain = None if app.subdomain_matching else (url_map.default_subdomain or "")
            adapter = url_map.bind_to_environ(
                environ, server_name=app.config.get("SERVER_NAME"), subdomain=subdomain
            )
        try:
            rule, _ = adapter.match(return_rule=True)
        except (HTTPException, RequestRedirect):
            return None
        template = templates.get(rule.rule)
        if template is None:  # one entry per rule: bounded by the app's URL map
            template = templates[rule.rule] = normalise_rule(rule.rule)
        return f"{method_of(environ.get('REQUEST_METHOD'))} {template}"

    return name


def instrument_app(app: Any, *, name: Namer | None = None, segment: Segmenter | None = None) -> Any:
    """Open an endpoint scope for every request of Flask ``app``; returns ``app``.

    ``name(environ)`` overrides the URL-rule naming; ``segment(environ)``, if given, is
    passed to ``hypoprobe.segment`` per request when the core has segments.

    Example::

        app = Flask(__name__)
        instrument_app(app)

        @app.get("/campaigns/<int:id>")  # requests are "GET /campaigns/{id}"
        def campaign(id): ...
    """
    app.wsgi_app = HypoprobeMiddleware(app.wsgi_app, name=name or flask_namer(app), segment=segment)
    return app
