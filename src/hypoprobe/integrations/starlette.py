"""Starlette and FastAPI: an endpoint scope per HTTP request, named by the matched route.

``instrument_app(app)`` adds :class:`HypoprobeMiddleware` (the ASGI middleware with a
route-matching naming function) to the app. Requests are named ``"METHOD path-format"``
from the route they match — ``/campaigns/{id:int}`` gives ``"GET /campaigns/{id}"``,
mounts prefix their sub-routes — and ``"GET <unmatched>"`` when none matches fully (404,
405). The routes are matched once before Starlette does, the way its router does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from ._request import Namer, Segmenter, method_of
from .asgi import ASGIApp, HypoprobeASGIMiddleware

__all__ = ["HypoprobeMiddleware", "instrument_app", "starlette_namer"]


def _template(routes: Iterable[Any], scope: MutableMapping[str, Any], kinds: Any) -> str | None:
    route_class, mount_class, host_class, full, route_path = kinds
    path = route_path(scope) if route_path is not None else None
    for route in routes:
        # Most routes are plain Routes that do not match: reject them by their path
        # regex alone, as Route.matches would, without building its result.
        if (
            path is not None
            and isinstance(route, route_class)
            and route.path_regex.match(path) is None
        ):
            continue
        match, child = route.matches(scope)
        if match is not full:
            continue  # PARTIAL (wrong method) is Starlette's 405: unmatched for us
        if isinstance(route, mount_class | host_class):
            prefix = route.path if isinstance(route, mount_class) else ""
            inner = getattr(route, "routes", None)
            if not inner:  # a mounted app without routes (static files, WSGI, ...)
                whole = getattr(route, "path_format", None)
                return str(whole) if whole else None
            found = _template(inner, {**scope, **child}, kinds)
            return None if found is None else prefix + found
        path_format = getattr(route, "path_format", None)
        return str(path_format) if path_format else None
    return None


def _kinds() -> tuple[Any, ...]:
    from starlette.routing import Host, Match, Mount, Route

    # How Starlette (>= 0.33) finds the path routes match against; older: no pre-filter,
    # Route.matches decides alone.
    route_path: Any = None
    with contextlib.suppress(ImportError):
        from starlette._utils import get_route_path as route_path
    return Route, Mount, Host, Match.FULL, route_path


def starlette_namer(app: Any = None) -> Namer:
    """A naming function ``scope -> "METHOD path-format"`` from ``app``'s routes.

    Without ``app``, the routes are read from ``scope["app"]``, which Starlette sets for
    middlewares added with ``app.add_middleware``.

    Example::

        HypoprobeASGIMiddleware(app, name=starlette_namer(app))
    """

    kinds = _kinds()

    def name(scope: MutableMapping[str, Any]) -> str | None:
        source = app if app is not None else scope.get("app")
        routes = getattr(source, "routes", None)
        if routes is None:
            return None
        found = _template(routes, scope, kinds)
        return None if found is None else f"{method_of(scope.get('method'))} {found}"

    return name


class HypoprobeMiddleware(HypoprobeASGIMiddleware):
    """Starlette middleware: every HTTP request is an endpoint scope named by its route.

    Example::

        app.add_middleware(HypoprobeMiddleware)  # or instrument_app(app)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: Namer | None = None,
        segment: Segmenter | None = None,
        customer: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(app, name=name or starlette_namer(), segment=segment, customer=customer)


def instrument_app(
    app: Any,
    *,
    name: Namer | None = None,
    segment: Segmenter | None = None,
    customer: Callable[[Any], Any] | None = None,
) -> Any:
    """Add :class:`HypoprobeMiddleware` to a Starlette or FastAPI ``app``; returns ``app``.

    Call it before the app starts serving (Starlette refuses new middleware afterwards).
    ``name(scope)`` overrides route naming; ``segment(scope)``, if given, is passed to
    ``hypoprobe.segment`` per request when the core has segments; ``customer(scope)`` (id,
    ``(id, value)`` or None) to ``hypoprobe.customer``.

    Example::

        app = FastAPI()
        instrument_app(app)

        @app.get("/campaigns/{id}")  # requests are "GET /campaigns/{id}"
        async def campaign(id: int): ...
    """
    app.add_middleware(HypoprobeMiddleware, name=name, segment=segment, customer=customer)
    return app
