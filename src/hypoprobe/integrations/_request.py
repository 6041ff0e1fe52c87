"""One request's endpoint scope, as middlewares need it: named after routing, ended elsewhere.

``hypoprobe.endpoint`` is a context manager, which a middleware cannot always be: the scope
starts when the request enters, before the framework has routed it, so its name comes later
(the core's ``begin`` / ``bind`` / ``finish``: a *resolver* reads the framework's matched
route the first time a probe needs the name, or at the end); a WSGI request ends when the
*server* closes the body iterable; and an ASGI request ends when the app hands over its
last body message, possibly from a child task (Starlette streams from a task group), i.e.
from a copied context where the ContextVar token cannot be reset. So the request's end is split in
two: :func:`finish` records the request now, from any context; :func:`detach` unsets the
current scope in the context that entered it. The core's scope is the request's handle
(no object of its own per request: a middleware runs on every request); its ``state``
bits say where the request is.

Everything here is on the application's path: it never raises; faults are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import hypoprobe

from .._core import _faults
from .._core import _scope as _core
from .._core._scope import Resolver

__all__: list[str] = []

#: Methods kept in endpoint names; anything else a client sends becomes ``OTHER``, so a
#: client cannot create endpoint series at will.
METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
)

#: A naming function: framework request object -> endpoint name, or None for "unmatched".
Namer = Callable[[Any], "str | None"]
#: A segment function: framework request object -> segment value, or None for "none".
Segmenter = Callable[[Any], "str | None"]


def method_of(raw: object) -> str:
    """The request method as it appears in endpoint names (bounded to :data:`METHODS`)."""
    return raw if isinstance(raw, str) and raw in METHODS else "OTHER"


def unmatched(method: str) -> str:
    """The documented fallback endpoint name when no route matched: ``"GET <unmatched>"``."""
    return f"{method} <unmatched>"


#: The fallback name by raw method (see fallback_for), for middlewares that inline it.
FALLBACKS: dict[object, str] = {m: unmatched(m) for m in METHODS}
OTHER_FALLBACK = unmatched("OTHER")


def fallback_for(raw_method: object) -> str:
    """``unmatched(method_of(raw_method))``, precomputed: it is needed on every request."""
    try:
        return FALLBACKS.get(raw_method, OTHER_FALLBACK)
    except TypeError:  # unhashable
        return OTHER_FALLBACK


class RouteNames(dict[tuple[str, object], str]):
    """Endpoint names by (route, method), made on first sight: ``names[route, method]``.

    A hit is one dict lookup (``__missing__`` runs only on a miss); ``template(route)``
    turns the framework's route into the name's template. Bounded: past ``limit`` entries
    names are made, not kept (routes times methods, which the app bounds anyway).

    Example::

        names = RouteNames(normalise_rule)
        names["/campaigns/<int:id>", "GET"]  # "GET /campaigns/{id}"
    """

    def __init__(self, template: Callable[[str], str], limit: int = 4096) -> None:
        super().__init__()
        self.template = template
        self.limit = limit

    def __missing__(self, key: tuple[str, object]) -> str:
        route, method = key
        found = f"{method_of(method)} {self.template(route)}"
        if len(self) < self.limit:
            self[key] = found
        return found


def call_namer(name: Namer | None, arg: Any, fallback: str) -> str:
    """The endpoint name for one request: ``name(arg)``, else the fallback; never raises."""
    if name is None:
        return fallback
    try:
        found = name(arg)
    except Exception:
        _faults.record("integration_name")
        return fallback
    return found if found else fallback


App = TypeVar("App")


class Middleware(Generic[App]):
    """What every web middleware is configured with: the app it wraps, and per request its
    endpoint name (``name``, or a framework's matched route), segment and customer.

    Example::

        class HypoprobeMiddleware(Middleware[WSGIApp]):
            def __call__(self, environ, start_response): ...
    """

    def __init__(
        self,
        app: App,
        *,
        name: Namer | None = None,
        segment: Segmenter | None = None,
        customer: Callable[[Any], Any] | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.segment = segment
        #: Set by a framework integration instead of ``name``: names the request from the
        #: route the framework matched, once it has (see ``hypoprobe._core._scope.begin``).
        self._resolve: Resolver | None = None
        #: request -> customer id, (id, value) or None (see hypoprobe.customer).
        self.customer = customer


#: Scope.state bits a middleware uses besides the core's FINISHED (see _core._scope).
MIDDLEWARE = _core.MIDDLEWARE
HANDED_OFF = _core.HANDED_OFF
ITERATING = _core.ITERATING
_FINISHED = _core.FINISHED
#: The core's begin(): integrations on the hot path call it directly (one call less).
begin = _core.begin


def start(
    name: str | None,
    fallback: str,
    segment: Segmenter | None = None,
    arg: Any = None,
    resolve: Resolver | None = None,
) -> _core.Scope | None:
    """Open the scope of one request now; None when nested, disabled or faulty.

    ``name``: the endpoint name (``fallback`` if it is invalid), or None to have it named
    later by ``resolve(arg)`` from the framework's matched route (``fallback`` if none).
    The scope is the request's handle: :func:`finish`, :func:`detach`, :func:`end`.
    ``segment(arg)``, if given, tags the request (see :func:`set_segment`).

    Example::

        scope = start(None, "GET <unmatched>", None, environ, route_of)
        ...
        end(scope)
    """
    scope = begin(name, fallback, resolve, arg, MIDDLEWARE)
    if scope is not None and segment is not None:
        set_segment(segment, arg)
    return scope


#: Record the request as ended now, from any context; only the first call records.
finish = _core.finish


#: Unset the current scope in the context :func:`start` ran in; idempotent. From another
#: context (a server closing a WSGI body on another thread) it cannot: the entering context
#: is then reclaimed when its next request starts (see ``_core._scope.begin``).
detach = _core.detach

#: :func:`finish` unless done, then :func:`detach`: the request ended in the context it
#: began. ``end(scope, exc)``: the exception that ended it, counted by class.
end = _core.end


def set_status(scope: _core.Scope, status: object) -> None:
    """The response's status (``"200 OK"`` or ``200``), counted by class. Never raises."""
    if not scope.state & _FINISHED:
        try:
            _core.set_status(scope, status)
        except Exception:
            _faults.record("integration_status")


def set_segment(segment: Segmenter, arg: Any) -> None:
    """Tag the current request with ``segment(arg)`` when the core supports segments.

    ``hypoprobe.segment`` is looked up per call, so a core without segments is fine: the
    hook is then simply not called. Never raises.
    """
    tag = getattr(hypoprobe, "segment", None)
    if tag is None:
        return
    try:
        value = segment(arg)
        if value is not None:
            tag(value)
    except Exception:
        _faults.record("integration_segment")
