"""Endpoint scopes without code: post-import hooks on the web frameworks and servers.

The way OpenTelemetry's instrumentors do it, each hook is a ``wrapt`` post-import hook
that wraps one framework entry point, and instruments through hypoprobe's public
integrations (same route-template names as instrumenting by hand):

==================================  ==================================================
hooked                              what happens
==================================  ==================================================
``flask.Flask.__call__``            first request of an app: ``flask.instrument_app``
``BaseHandler.load_middleware``     Django: the middleware put first in ``MIDDLEWARE``
                                    (started: once the first request is served, as
                                    Django imports the URLconf and the driver then)
``Starlette.__call__``              first call (lifespan or request) of a Starlette or
                                    FastAPI app: ``starlette.instrument_app``
``gunicorn BaseApplication.wsgi``   a plain WSGI/ASGI callable: the generic middleware
``uvicorn Config.load``             a plain ASGI app: the generic middleware
``celery``                          every task a job scope (``jobs.instrument_celery``);
                                    started: the worker's ``worker_ready`` signal
==================================  ==================================================

Never twice: an app that already has hypoprobe's middleware (instrumented by hand) is
left alone, and the generic middleware is not used when a framework is imported (its own
hook names the requests by route). Hooks run inside the application: they never raise.
"""

from __future__ import annotations

import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import wrapt

from .. import _customerconfig
from .._core import _faults

__all__ = ["DJANGO_MIDDLEWARE", "install"]

DJANGO_MIDDLEWARE = "hypoprobe.integrations.django.HypoprobeMiddleware"
_FRAMEWORKS = ("flask", "django", "starlette")

_lock = threading.Lock()
_seen: weakref.WeakSet[Any] = weakref.WeakSet()
_started: Callable[[], None] = lambda: None  # noqa: E731
_installed = False


def install(started: Callable[[], None]) -> None:
    """Arm the hooks once; ``started()`` is called when an application has started."""
    global _installed, _started
    with _lock:
        if _installed:
            return
        _installed = True
        _started = started
    wrapt.register_post_import_hook(_on_flask, "flask")
    wrapt.register_post_import_hook(_on_django, "django.core.handlers.base")
    wrapt.register_post_import_hook(_on_starlette, "starlette.applications")
    wrapt.register_post_import_hook(_on_gunicorn, "gunicorn.app.base")
    wrapt.register_post_import_hook(_on_uvicorn, "uvicorn.config")
    wrapt.register_post_import_hook(_on_celery, "celery")


def _hook(kind: str, module: Any, target: str, wrapper: Any) -> None:
    try:
        wrapt.wrap_function_wrapper(module, target, wrapper)
    except Exception:
        _faults.record(f"run_hook_{kind}")


def _first_time(app: Any) -> bool:
    """True once per app object (under the lock), so concurrent first requests agree."""
    try:
        if app in _seen:
            return False
        with _lock:
            if app in _seen:
                return False
            _seen.add(app)
            return True
    except TypeError:  # not weak-referenceable: leave it alone
        return False


def _has_ours(app: Any) -> bool:
    """Is hypoprobe's WSGI or ASGI middleware somewhere in this chain of wrappers?"""
    from ..integrations.asgi import HypoprobeASGIMiddleware
    from ..integrations.wsgi import HypoprobeMiddleware

    seen = 0
    while app is not None and seen < 32:
        if isinstance(app, HypoprobeMiddleware | HypoprobeASGIMiddleware):
            return True
        app = getattr(app, "app", None) or getattr(app, "__wrapped__", None)
        seen += 1
    return False


# ------------------------------------------------------------------------------ Flask


def _on_flask(module: Any) -> None:
    _hook("flask", module, "Flask.__call__", _flask_call)


def _flask_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if instance is not None and _first_time(instance):
        try:
            if not _has_ours(instance.wsgi_app):
                from ..integrations import flask

                flask.instrument_app(instance, customer=_customerconfig.active())
        except Exception:
            _faults.record("run_instrument_flask")
        _started()
    return wrapped(*args, **kwargs)


# ----------------------------------------------------------------------------- Django


def _on_django(module: Any) -> None:
    _hook("django", module, "BaseHandler.load_middleware", _django_load)
    # Django imports the URLconf (and so the views and their modules) and its database
    # driver at the first request: the application has started when that one is served.
    _hook("django", module, "BaseHandler.get_response", _django_served)
    _hook("django", module, "BaseHandler.get_response_async", _django_served_async)


def _django_served(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return wrapped(*args, **kwargs)
    finally:
        _started()


async def _django_served_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return await wrapped(*args, **kwargs)
    finally:
        _started()


def _django_load(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        from django.conf import settings  # type: ignore[import-untyped]

        middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
        if not any(str(m).startswith("hypoprobe.integrations.django.") for m in middleware):
            # First, so the scope covers the other middlewares (as the docs ask by hand).
            settings.MIDDLEWARE = [DJANGO_MIDDLEWARE, *middleware]
    except Exception:
        _faults.record("run_instrument_django")
    return wrapped(*args, **kwargs)


# -------------------------------------------------------------------------- Starlette


def _on_starlette(module: Any) -> None:
    _hook("starlette", module, "Starlette.__call__", _starlette_call)


def _starlette_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    # Before the middleware stack is built (the first call): Starlette refuses new
    # middleware afterwards.
    if (
        instance is not None
        and getattr(instance, "middleware_stack", None) is None
        and _first_time(instance)
    ):
        try:
            from ..integrations import starlette
            from ..integrations.asgi import HypoprobeASGIMiddleware

            classes = [getattr(m, "cls", None) for m in getattr(instance, "user_middleware", [])]
            if not any(
                isinstance(c, type) and issubclass(c, HypoprobeASGIMiddleware) for c in classes
            ):
                starlette.instrument_app(instance, customer=_customerconfig.active())
        except Exception:
            _faults.record("run_instrument_starlette")
        _started()
    return wrapped(*args, **kwargs)


# ---------------------------------------------------------------- gunicorn and uvicorn


def _is_async(app: Any) -> bool:
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
        getattr(app, "__call__", None)  # noqa: B004 - the method, not callability
    )


def _generic(app: Any) -> Any:
    """``app`` with the generic middleware, unless a framework's hook names its requests."""
    if app is None or any(name in sys.modules for name in _FRAMEWORKS) or _has_ours(app):
        return app
    if inspect.isclass(app):  # an ASGI 2 class or a factory: not ours to guess
        return app
    if _is_async(app):
        from ..integrations.asgi import HypoprobeASGIMiddleware

        return HypoprobeASGIMiddleware(app, customer=_customerconfig.active())
    from ..integrations.wsgi import HypoprobeMiddleware

    return HypoprobeMiddleware(app, customer=_customerconfig.active())


def _on_gunicorn(module: Any) -> None:
    _hook("gunicorn", module, "BaseApplication.wsgi", _gunicorn_wsgi)


def _gunicorn_wsgi(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    app = wrapped(*args, **kwargs)
    try:
        served = _generic(app)
        if served is not app:
            instance.callable = app = served  # wsgi() returns the cached callable next time
    except Exception:
        _faults.record("run_instrument_gunicorn")
    if "django" not in sys.modules:  # Django has started only once it served a request
        _started()
    return app


def _on_uvicorn(module: Any) -> None:
    _hook("uvicorn", module, "Config.load", _uvicorn_load)


def _uvicorn_load(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    was_loaded = getattr(instance, "loaded", False)
    result = wrapped(*args, **kwargs)
    if not was_loaded:
        try:
            loaded = getattr(instance, "loaded_app", None)
            if loaded is not None and _is_async(loaded):
                instance.loaded_app = _generic(loaded)
        except Exception:
            _faults.record("run_instrument_uvicorn")
        if "django" not in sys.modules:
            _started()
    return result


# ----------------------------------------------------------------------------- Celery


def _on_celery(module: Any) -> None:
    try:
        from celery import signals  # type: ignore[import-untyped]

        from ..integrations import jobs

        jobs.instrument_celery()  # idempotent: an app that did it by hand is unchanged
        signals.worker_ready.connect(_celery_ready, weak=False, dispatch_uid="hypoprobe.run")
    except Exception:
        _faults.record("run_instrument_celery")


def _celery_ready(**_: Any) -> None:
    _started()
