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

from ._request import METHODS, Namer, RouteNames, Segmenter, method_of
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


class _RouteTable:
    """Each route of one router's tree (mounts walked) with its full template, by identity."""

    __slots__ = ("by_endpoint", "by_route", "router")

    def __init__(self, router: Any) -> None:
        from starlette.routing import Host, Mount

        self.router = router
        self.by_route: dict[int, tuple[Any, str | None]] = {}
        self.by_endpoint: dict[int, list[tuple[Any, str | None]]] = {}

        def walk(routes: Iterable[Any], prefix: str) -> None:
            for route in routes:
                inner = getattr(route, "routes", None) if isinstance(route, Mount | Host) else None
                if inner:  # the route itself only stays matched when nothing inside did
                    self.by_route[id(route)] = (route, None)
                    walk(inner, prefix + route.path if isinstance(route, Mount) else prefix)
                    continue
                path_format = getattr(route, "path_format", None)
                entry = (route, prefix + str(path_format) if path_format else None)
                self.by_route[id(route)] = entry
                target = getattr(route, "endpoint", None) or getattr(route, "app", None)
                if target is not None:
                    self.by_endpoint.setdefault(id(target), []).append(entry)

        walk(getattr(router, "routes", ()), "")

    def template(self, scope: MutableMapping[str, Any]) -> tuple[bool, str | None]:
        """(known, template) of the route the router matched; known False: not in the table."""
        route = scope.get("route")
        if route is not None:
            found = self.by_route.get(id(route))
            if found is None or found[0] is not route:
                return False, None
            return True, _full_match(found, scope)
        candidates = self.by_endpoint.get(id(scope.get("endpoint")), ())
        if len(candidates) == 1:  # else ambiguous: unmatched rather than a guess
            return True, _full_match(candidates[0], scope)
        return True, None


def _full_match(entry: tuple[Any, str | None], scope: MutableMapping[str, Any]) -> str | None:
    route, template = entry
    methods = getattr(route, "methods", None)
    if methods and scope.get("method") not in methods:
        return None  # a PARTIAL match: Starlette's 405, unmatched for us
    return template


_MAX_NAMES = 4096


def _matched_route_namer() -> Namer:
    """``scope -> "METHOD template"`` from the route Starlette matched; None before routing."""
    tables: dict[int, _RouteTable] = {}
    names = RouteNames(str)  # the template is the name's already
    #: id of the matched route -> (the route, {method: its endpoint name or None}): a
    #: request of a route seen before is named with two lookups and no key to build.
    #: Bounded like ``names``.
    by_route: dict[int, tuple[Any, dict[object, str | None]]] = {}

    def resolve(scope: MutableMapping[str, Any]) -> str | None:
        route = scope.get("route")
        if route is None:
            return named(scope)
        method = scope["method"]  # an http scope has one (a KeyError: a counted fault)
        hit = by_route.get(id(route))
        if hit is not None and hit[0] is route:
            try:
                return hit[1][method]
            except (KeyError, TypeError):
                pass
        found = named(scope)
        if hit is None or hit[0] is not route:
            if len(by_route) >= _MAX_NAMES:
                return found
            hit = by_route[id(route)] = (route, {})
        if len(hit[1]) < len(METHODS) + 1:
            with contextlib.suppress(TypeError):
                hit[1][method] = found
        return found

    def named(scope: MutableMapping[str, Any]) -> str | None:
        router = scope.get("router")  # set by the outermost router when it starts routing
        if router is None or ("route" not in scope and "endpoint" not in scope):
            return None
        table = tables.get(id(router))
        if table is None or table.router is not router:
            table = tables[id(router)] = _RouteTable(router)
            if len(tables) > 64:  # routers are few; stay bounded anyway
                tables.clear()
                tables[id(router)] = table
        known, template = table.template(scope)
        if not known:  # a route added since the table was built
            table = tables[id(router)] = _RouteTable(router)
            template = table.template(scope)[1]
        if template is None:
            return None
        return names[template, scope.get("method")]

    return resolve


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
        super().__init__(app, name=name, segment=segment, customer=customer)
        if name is None:
            self._resolve = _matched_route_namer()


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
