"""Django: a middleware opening an endpoint scope per request, named by the URL resolver.

Put it first in ``MIDDLEWARE`` so the scope covers the other middlewares too::

    MIDDLEWARE = ["hypoprobe.integrations.django.HypoprobeMiddleware", ...]

The scope starts when the request enters the middleware, unnamed, and is named from the
route Django itself resolved (``request.resolver_match``) the first time a probe runs
after routing, or at its end — no second routing pass; probes that ran before (in a later
middleware's ``process_request``, say) are kept and counted under that name. Requests are
named ``"METHOD /route"`` from the route pattern: ``path("campaigns/<int:id>/", ...)``
gives ``"GET /campaigns/{id}/"``; regex routes keep their text with named groups as
``{name}``. Streamed responses end their scope when the server closes the response.
Optional settings, each a callable or its dotted import path: ``HYPOPROBE_ENDPOINT_NAME``
(request -> name or None, called as the request enters), ``HYPOPROBE_SEGMENT``
(request -> segment or None; used when the core has segments) and ``HYPOPROBE_CUSTOMER``
(request -> customer id, ``(id, value)`` or None).

Under Django's ASGI handler this sync middleware still works; an *async* streamed body
is timed to its end but probes inside it are not attributed to the request.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import _customerconfig
from .._core._scope import _STATUS_CLASS, Scope
from .._observers import _customers
from ..errors import ConfigurationError
from ._request import (
    FALLBACKS,
    HANDED_OFF,
    MIDDLEWARE,
    OTHER_FALLBACK,
    Namer,
    RouteNames,
    Segmenter,
    begin,
    call_namer,
    detach,
    end,
    finish,
    method_of,
    set_segment,
    set_status,
)
from .wsgi import ClosingBody

__all__ = ["HypoprobeMiddleware", "django_route_name", "normalise_route"]

_CONVERTER = re.compile(r"<(?:[^<>:]+:)?(\w+)>")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")
_ANCHORS = re.compile(r"\^|\$|\\Z|\\A")


def _replace_groups(route: str) -> str:
    # Named regex groups become {name}; their (possibly nested) bodies are skipped by
    # counting parentheses, escaped ones excluded.
    out: list[str] = []
    i = 0
    while True:
        m = _NAMED_GROUP.search(route, i)
        if m is None:
            out.append(route[i:])
            return "".join(out)
        out.append(route[i : m.start()])
        out.append("{" + m.group(1) + "}")
        depth, j = 1, m.end()
        while j < len(route) and depth:
            c = route[j]
            if c == "\\":
                j += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            j += 1
        i = j


def normalise_route(route: str) -> str:
    """A Django route pattern as a template: ``"campaigns/<int:id>/"`` -> ``"/campaigns/{id}/"``.

    Example::

        assert normalise_route("^articles/(?P<year>[0-9]{4})/$") == "/articles/{year}/"
    """
    text = _ANCHORS.sub("", _CONVERTER.sub(r"{\1}", _replace_groups(route)))
    return text if text.startswith("/") else "/" + text


def django_route_name(request: Any) -> str | None:
    """``"METHOD /route"`` of a Django request from the URL resolver, None if none matches.

    Example::

        django_route_name(request)  # "GET /campaigns/{id}/"
    """
    from django.urls import Resolver404, resolve  # type: ignore[import-untyped]

    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return None
    route = match.route
    if not route:
        return None
    return f"{method_of(request.method)} {normalise_route(route)}"


#: Endpoint names by (route pattern, method): bounded by the URL conf (and a cap).
_NAMES = RouteNames(normalise_route)


def _resolved_name(request: Any) -> str | None:
    """``"METHOD /route"`` from the route Django resolved; None before routing or unmatched."""
    match = request.resolver_match  # HttpRequest sets it (None) before routing
    if match is None:
        return None
    route = match.route
    return _NAMES[route, request.method] if route else None


def _setting(name: str) -> Callable[[Any], str | None] | None:
    from django.conf import settings  # type: ignore[import-untyped]
    from django.utils.module_loading import import_string  # type: ignore[import-untyped]

    value = getattr(settings, name, None)
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            found = import_string(value)
        except ImportError as exc:
            raise ConfigurationError(f"settings.{name} = {value!r}: {exc}") from exc
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"settings.{name} must be a callable or the dotted path of one, got {value!r}"
    )


class HypoprobeMiddleware:
    """Django middleware: every request is an endpoint scope ``"METHOD /route"``.

    Example::

        # settings.py
        MIDDLEWARE = ["hypoprobe.integrations.django.HypoprobeMiddleware", ...]
        HYPOPROBE_SEGMENT = "myapp.segments.of_request"  # optional
        HYPOPROBE_CUSTOMER = "myapp.customers.of_request"  # optional: id or (id, value)
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        #: A naming function from settings, called as the request enters; without one the
        #: request is named from Django's own resolution (see the module docstring).
        self.name: Namer | None = _setting("HYPOPROBE_ENDPOINT_NAME")
        self.segment: Segmenter | None = _setting("HYPOPROBE_SEGMENT")
        #: request -> customer id, (id, value) or None (see hypoprobe.customer).
        #: Without the setting: the function a loaded TOML file names (``customer = ...``).
        self.customer: Callable[[Any], Any] | None = (
            _setting("HYPOPROBE_CUSTOMER") or _customerconfig.active()
        )

    def __call__(self, request: Any) -> Any:
        try:  # fallback_for(), inlined: this runs on every request
            fallback = FALLBACKS.get(request.method, OTHER_FALLBACK)
        except Exception:  # no method, or an unhashable one
            fallback = OTHER_FALLBACK
        if self.name is None:
            scope = begin(None, fallback, _resolved_name, request, MIDDLEWARE)
        else:
            name = call_namer(self.name, request, fallback)
            scope = begin(name, fallback, None, request, MIDDLEWARE)
        if scope is None:  # nested in another scope, or disabled
            return self.get_response(request)
        if self.segment is not None:
            set_segment(self.segment, request)
        if self.customer is not None:
            _customers.from_request(self.customer, request, scope)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            end(scope, exc)
            raise
        try:
            status = response.status_code
            streaming = response.streaming
        except AttributeError:  # not an HttpResponse: Django itself will say so
            status, streaming = "", False
        try:  # a status seen before: one lookup
            scope.status = _STATUS_CLASS[status]
        except Exception:
            set_status(scope, status)
        if not streaming:
            finish(scope, None, True)  # end(), in one call: named, recorded, detached
            return response
        try:
            content = response.streaming_content
            if getattr(response, "is_async", False):
                detach(scope)  # iterated on another thread's loop: time it, no more
                response.streaming_content = _finish_async(content, scope)
            else:
                # The setter registers our generator's close() with response.close(),
                # which the WSGI server calls: the scope ends there.
                scope.state |= HANDED_OFF
                response.streaming_content = ClosingBody(content, scope)
        except Exception:
            end(scope)
        return response


async def _finish_async(content: AsyncIterator[bytes], scope: Scope) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            yield chunk
    finally:
        finish(scope)
