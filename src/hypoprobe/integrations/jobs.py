"""Background jobs as endpoints: ``job(name)`` for plain functions, and Celery tasks.

A job is an endpoint named ``"job <name>"``, so a hypothesis about a slow job names it
like any endpoint: ``hypothesis("PERF-9", endpoint="job send_newsletter", ...)``. As with
every scope, only the outermost counts: a job run inline inside a web request (or a Celery
task run eagerly inside one) is part of that request, not a job of its own.

Celery: :func:`instrument_celery` connects to the ``task_prerun`` / ``task_postrun``
signals, so every task a worker runs (and every eager ``apply``) is a scope named
``"job <task name>"``, whatever its outcome.
"""

from __future__ import annotations

import threading
from typing import Any

import hypoprobe

from .._core import _faults
from .._core._scope import Scope
from ._request import end, start

__all__ = ["instrument_celery", "job", "job_endpoint", "uninstrument_celery"]

_PREFIX = "job "


def job_endpoint(name: str) -> str:
    """The endpoint name of job ``name``: ``"job <name>"``.

    Example::

        assert job_endpoint("send_newsletter") == "job send_newsletter"
    """
    return _PREFIX + name


def job(name: str) -> hypoprobe.endpoint:
    """An endpoint scope for one background job: a decorator or a (async) context manager.

    Example::

        @job("send_newsletter")  # each call is a request of endpoint "job send_newsletter"
        def send_newsletter(batch): ...

        with job("nightly_rollup"):
            rollup()
    """
    return hypoprobe.endpoint(job_endpoint(name))


# Celery ------------------------------------------------------------------------------------

_DISPATCH_UID = "hypoprobe.integrations.jobs"
#: Open scopes by task id: prerun and postrun are separate signal calls.
_running: dict[str, Scope] = {}
_lock = threading.Lock()


def _prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    try:
        task_name = getattr(task or sender, "name", None) or "<unnamed>"
        name = job_endpoint(str(task_name))
        req = start(name, job_endpoint("<unnamed>"))
        if req is not None and task_id is not None:
            with _lock:
                _running[task_id] = req
    except Exception:
        _faults.record("celery_prerun")


def _postrun(task_id: str | None = None, **_: Any) -> None:
    try:
        with _lock:
            req = _running.pop(task_id, None) if task_id is not None else None
        if req is not None:
            end(req)
    except Exception:
        _faults.record("celery_postrun")


def _celery_signals() -> Any:
    from celery import signals  # type: ignore[import-untyped]

    return signals


def instrument_celery() -> None:
    """Make every Celery task a job scope ``"job <task name>"``. Idempotent.

    Connects to Celery's ``task_prerun`` and ``task_postrun`` signals (every app in the
    process); raises ImportError if Celery is not installed.

    Example::

        from hypoprobe.integrations.jobs import instrument_celery

        instrument_celery()  # in the worker's startup, e.g. next to the Celery app
    """
    signals = _celery_signals()
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid=_DISPATCH_UID)
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid=_DISPATCH_UID)


def uninstrument_celery() -> None:
    """Undo :func:`instrument_celery`.

    Example::

        uninstrument_celery()
    """
    signals = _celery_signals()
    signals.task_prerun.disconnect(_prerun, dispatch_uid=_DISPATCH_UID)
    signals.task_postrun.disconnect(_postrun, dispatch_uid=_DISPATCH_UID)
