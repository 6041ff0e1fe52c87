"""``customer = "module:function"`` in a TOML file: who each request served, with no code.

The function gets what the middleware's ``customer=`` gets — the WSGI environ (Flask and
plain WSGI apps), the ASGI scope (Starlette, FastAPI, plain ASGI apps) or Django's request
— and returns a customer id, ``(id, value)`` or None (see :func:`hypoprobe.customer`).
Under ``hypoprobe run`` the bootstrap loads the file before the application's own
directory is on ``sys.path``, so the function is imported when the first request asks for
it; a function that cannot be imported then is counted as a fault, logged once, and the
requests go on unnamed.

Example (perf.toml)::

    customer = "myapp.billing:customer_of_request"

    [[hypothesis]]
    id = "PERF-412"
    ...
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from typing import Any

from ._core import _faults

__all__ = ["KEY", "LazyCustomer", "active", "install", "parse", "uninstall"]

KEY = "customer"

_log = logging.getLogger("hypoprobe")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

#: The configured function, by the file that named it (the last file loaded wins).
_BY_FILE: dict[str, LazyCustomer] = {}


class LazyCustomer:
    """The named function, imported on its first call; None forever if it cannot be."""

    def __init__(self, target: str, where: str) -> None:
        self.target = target
        self.where = where
        self._fn: Callable[[Any], Any] | None = None
        self._failed = False

    def __call__(self, request: Any) -> Any:
        fn = self._fn
        if fn is None:
            if self._failed:
                return None
            fn = self._resolve()
            if fn is None:
                return None
        return fn(request)

    def _resolve(self) -> Callable[[Any], Any] | None:
        module_name, _, attr = self.target.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except Exception as exc:
            self._failed = True
            _faults.record("customer_function")
            _log.error(
                "hypoprobe: %s: customer function %r cannot be imported (%s); requests are "
                "not named by customer",
                self.where,
                self.target,
                exc,
            )
            return None
        if not callable(found):
            self._failed = True
            _faults.record("customer_function")
            _log.error("hypoprobe: %s: customer %r is not callable", self.where, self.target)
            return None
        fn: Callable[[Any], Any] = found
        self._fn = fn
        return fn


def parse(value: object, where: str) -> LazyCustomer | None:
    """The ``customer`` key's value, checked; raises ValueError with the reason."""
    if value is None:
        return None
    if not isinstance(value, str) or not _TARGET.match(value):
        raise ValueError(
            f"'customer' must be an import path 'package.module:function', got {value!r}"
        )
    return LazyCustomer(value, where)


def install(path: str, found: LazyCustomer | None) -> None:
    """Make ``found`` the customer function of the file at ``path`` (None: it names none)."""
    _BY_FILE.pop(path, None)
    if found is not None:
        _BY_FILE[path] = found


def uninstall(path: str) -> None:
    _BY_FILE.pop(path, None)


def active() -> Callable[[Any], Any] | None:
    """The customer function the loaded files name, for the middlewares ``run`` installs."""
    if not _BY_FILE:
        return None
    return next(reversed(_BY_FILE.values()))
