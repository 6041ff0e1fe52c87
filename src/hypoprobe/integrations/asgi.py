"""ASGI middleware: one endpoint scope per HTTP request, ending with the last body message.

Only ``http`` connections are scoped; ``websocket`` and ``lifespan`` (and anything else)
go to the app untouched. The scope opens when the request arrives and ends when the app
hands the server ``http.response.body`` with ``more_body`` false — so streamed bodies are
covered and work done after the response (background tasks) is not, nor the server's
write of that last message — or when the client disconnects, or when the app returns or
raises. Exceptions propagate unchanged.

The scope ends from whichever task sends the last body (Starlette streams from a child
task); the context is detached in the request's own task when the app returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .._core import _faults
from .._core._scope import _STATUS_CLASS
from .._observers import _customers
from ._request import (
    FALLBACKS,
    MIDDLEWARE,
    OTHER_FALLBACK,
    Middleware,
    begin,
    call_namer,
    end,
    finish,
    set_segment,
    set_status,
)

__all__ = ["ASGIApp", "HypoprobeASGIMiddleware"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application: scope, receive, send.
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
# A server's receive and send, typed as it likes (dicts, TypedDicts): their messages are
# only passed on between server and app.
_ServerReceive = Callable[[], Awaitable[Any]]
_ServerSend = Callable[[Any], Awaitable[None]]


class HypoprobeASGIMiddleware(Middleware[ASGIApp]):
    """Wrap an ASGI app so every HTTP request is an endpoint scope ``"METHOD template"``.

    ``name(scope)`` returns the endpoint name (``"GET /campaigns/{id}"``) or None for
    ``"<METHOD> <unmatched>"``. ``segment(scope)``, if given, is passed to
    ``hypoprobe.segment`` per request when the core has segments (otherwise not called).
    For Starlette and FastAPI, :mod:`hypoprobe.integrations.starlette` names requests by
    the matched route.

    Example::

        app = HypoprobeASGIMiddleware(app, name=lambda scope: f"{scope['method']} /health")
    """

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: _ServerReceive, send: _ServerSend
    ) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:  # fallback_for(), inlined
            fallback = FALLBACKS.get(scope.get("method"), OTHER_FALLBACK)
        except TypeError:  # an unhashable method
            fallback = OTHER_FALLBACK
        resolve = self._resolve
        name = None if resolve is not None else call_namer(self.name, scope, fallback)
        req = begin(name, fallback, resolve, scope, MIDDLEWARE)
        if req is None:  # nested in another scope, or disabled
            await self.app(scope, receive, send)
            return
        if self.segment is not None:
            set_segment(self.segment, scope)
        if self.customer is not None:
            _customers.from_request(self.customer, scope, req)

        async def receive_watching() -> Message:
            message: Message = await receive()
            try:
                if message.get("type") == "http.disconnect":
                    finish(req)
            except Exception:
                _faults.record("asgi_receive")
            return message

        def send_watching(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no coroutine of
            # ours per message. The request ends as the app hands over its last body
            # message: its response is complete; the server's write of it (which waits on
            # a slow client) is not the app's time.
            try:  # subscripts, not get(): "type" and "status" are required by ASGI
                kind = message["type"]
                if kind == "http.response.body":
                    if not message.get("more_body", False):
                        finish(req)
                elif kind == "http.response.start":
                    status = message["status"]
                    try:  # a status seen before: one lookup
                        req.status = _STATUS_CLASS[status]
                    except Exception:
                        set_status(req, status)
            except Exception:
                _faults.record("asgi_send")
            return send(message)

        try:
            await self.app(scope, receive_watching, send_watching)
        except BaseException as exc:
            end(req, exc)
            raise
        finish(req, None, True)  # end(req), in one call: usually only the detach
