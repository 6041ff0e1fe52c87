"""One request's endpoint scope, as middlewares need it: named after routing, ended elsewhere.

``hypoprobe.endpoint`` is a context manager, which a middleware cannot always be: the scope
starts when the request enters, before the framework has routed it, so its name comes later
(the core's ``begin`` / ``bind`` / ``finish``: a *resolver* reads the framework's matched
route the first time a probe needs the name, or at the end); a WSGI request ends when the
*server* closes the body iterable; and an ASGI request ends when the last body message is
sent, possibly from a child task (Starlette streams from a task group), i.e. from a copied
context where the ContextVar token cannot be reset. So a :class:`Request` splits the
scope's end in two: :meth:`Request.finish` records the request now, from any context;
:meth:`Request.detach` unsets the current scope in the context that entered it.

Everything here is on the application's path: it never raises; faults are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypoprobe

from .. import _faults, _plan
from .. import _scope as _core
from .._scope import Resolver

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


_FALLBACKS: dict[object, str] = {m: unmatched(m) for m in METHODS}
_OTHER = unmatched("OTHER")


def fallback_for(raw_method: object) -> str:
    """``unmatched(method_of(raw_method))``, precomputed: it is needed on every request."""
    try:
        return _FALLBACKS.get(raw_method, _OTHER)
    except TypeError:  # unhashable
        return _OTHER


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


class Request:
    """One request's endpoint scope; see the module docstring for why it is split in two.

    States: open (between :meth:`start` and :meth:`finish`), finished, detached. While the
    body is with the server (WSGI, streamed Django), ``handed_off`` is True and
    ``iterating`` says whether the server has started iterating it and more may come (a
    request starting then is nested in producing a chunk, not a sign of a leak).
    """

    __slots__ = ("_scope", "handed_off", "iterating", "scope")

    def __init__(self) -> None:
        self.scope: _core.Scope | None = None  # the core's scope, kept for detach()
        self._scope: _core.Scope | None = None  # the same, until finished
        self.handed_off = False
        self.iterating = False

    @classmethod
    def start(
        cls,
        name: str | None,
        fallback: str,
        segment: Segmenter | None = None,
        arg: Any = None,
        resolve: Resolver | None = None,
    ) -> Request:
        """Open the scope of one request now.

        ``name``: the endpoint name (``fallback`` if it is invalid), or None to have it named
        later by ``resolve(arg)`` from the framework's matched route (``fallback`` if none).
        """
        req = cls()
        try:
            prev = _core.CURRENT.get()
            if prev is not None and isinstance(prev.opener, Request):
                prev.opener._clean_up()  # this context's previous request, never detached
            scope = _core.begin(name, fallback, resolve, arg)
            if scope is not None:
                scope.opener = req
                req.scope = req._scope = scope
        except Exception:
            _faults.record("integration_start")
        if segment is not None and req.scope is not None:
            set_segment(segment, arg)
        return req

    def finish(self) -> None:
        """Record the request as ended now. Idempotent; works from any context."""
        scope = self._scope
        if scope is None:
            return
        self._scope = None
        _core.finish(scope)

    def detach(self) -> None:
        """Unset the current scope in the context start() ran in. Idempotent.

        Called from another context (a server closing a WSGI body on another thread), it
        cannot: the entering context is then cleaned when its next request starts.
        """
        scope = self.scope
        if scope is not None and scope.token is not None:
            _core.detach(scope)

    def end(self, exc: BaseException | None = None) -> None:
        """:meth:`finish`, then :meth:`detach`: the request ended in the context it began.

        ``exc``: the exception that ended the request, counted by class.
        """
        scope = self._scope
        if scope is not None:
            self._scope = None
            _core.finish(scope, exc)
        scope = self.scope
        if scope is not None and scope.token is not None:
            _core.detach(scope)

    def set_status(self, status: object) -> None:
        """The response's status (``"200 OK"`` or ``200``), counted by class. Never raises."""
        scope = self._scope
        if scope is not None:
            try:
                _core.set_status(scope, status)
            except Exception:
                _faults.record("integration_status")

    def failed(self, exc: BaseException) -> None:
        """The exception that ended the request, counted by class. Never raises."""
        scope = self._scope
        if scope is not None:
            try:
                scope.exception = _plan.exception_name(type(exc))
            except Exception:
                _faults.record("integration_exception")

    def _clean_up(self) -> None:
        # Called when a request starts while this one is still this context's latest.
        # Left alone, a request that will never be ended here makes every later request
        # of the thread a nested scope that records nothing.
        if self._scope is None:  # finished, detached elsewhere or not yet: detach here
            self.detach()
        elif self.handed_off and not self.iterating:
            # A body the server never closed (PEP 3333 says it must): its end is unknown,
            # so drop it rather than record a made-up duration.
            _faults.record("integration_body_not_closed")
            self._scope = None
            self.detach()


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
