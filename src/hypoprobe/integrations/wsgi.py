"""WSGI middleware: one endpoint scope per request, covering the whole response.

The scope opens when the server calls the app and ends when the server closes the body
iterable (PEP 3333 servers always call ``close()``), so time spent producing a streamed
body — and any probe called while producing it — belongs to the request. The endpoint
name comes from ``name(environ)``; without one, or when it returns None, the request is
``"GET <unmatched>"`` (with its method). Exceptions from the app or the body propagate
unchanged; the scope still ends.

Status classes and exceptions are not recorded per endpoint: the core has no
endpoint-level counter yet. A request's duration is recorded whatever its outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._core import _faults
from .._core._scope import _STATUS_CLASS, Scope
from .._observers import _customers
from ._request import (
    HANDED_OFF,
    ITERATING,
    Middleware,
    call_namer,
    end,
    fallback_for,
    finish,
    set_status,
    start,
)

__all__ = ["HypoprobeMiddleware", "WSGIApp"]

#: A WSGI application (PEP 3333), loosely typed: environ, start_response -> body.
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HypoprobeMiddleware(Middleware[WSGIApp]):
    """Wrap a WSGI app so every request is an endpoint scope named ``"METHOD template"``.

    ``name(environ)`` returns the endpoint name (``"GET /campaigns/{id}"``) or None for
    ``"<METHOD> <unmatched>"``; a raw path would make one endpoint per id, so return the
    route's template. ``segment(environ)``, if given, is passed to ``hypoprobe.segment``
    per request when the core has segments (otherwise it is not called).

    Example::

        def name(environ):
            if environ["PATH_INFO"].startswith("/campaigns/"):
                return f"{environ['REQUEST_METHOD']} /campaigns/{{id}}"
            return None

        app = HypoprobeMiddleware(app, name=name)
    """

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        resolve = self._resolve
        endpoint_name: str | None = None
        try:
            fallback = fallback_for(environ.get("REQUEST_METHOD"))
            if resolve is None:
                endpoint_name = call_namer(self.name, environ, fallback)
        except Exception:  # environ is not a dict: the app will say so itself
            _faults.record("wsgi_name")
            endpoint_name = fallback = "OTHER <unmatched>"
        scope = start(endpoint_name, fallback, self.segment, environ, resolve)
        if scope is None:  # nested in another scope, or disabled: leave the request alone
            return self.app(environ, start_response)
        if self.customer is not None:
            _customers.from_request(self.customer, environ, scope)

        def start_response_watching(status: str, headers: Any, *exc_info: Any) -> Any:
            try:  # a status seen before: one lookup
                scope.status = _STATUS_CLASS[status]
            except Exception:
                set_status(scope, status)
            return start_response(status, headers, *exc_info)

        try:
            body = self.app(environ, start_response_watching)
        except BaseException as exc:
            end(scope, exc)
            raise
        scope.state |= HANDED_OFF
        return ClosingBody(body, scope)


class ClosingBody:
    """The app's body iterable, ending the request's scope when the server closes it."""

    __slots__ = ("_body", "_scope")

    def __init__(self, body: Iterable[bytes], scope: Scope) -> None:
        self._body = body
        self._scope = scope

    def __iter__(self) -> Iterator[bytes]:
        # A generator: its body runs at the first next(), i.e. when the server starts
        # sending (Django calls iter() long before), and `yield from` passes chunks in C.
        scope = self._scope
        scope.state |= ITERATING
        try:
            yield from self._body
        finally:
            scope.state &= ~ITERATING

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            finish(self._scope, None, True)  # end(), in one call: once per request
