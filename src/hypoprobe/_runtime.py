"""Wiring: apply configuration changes to the hot-path modules and the Prometheus registry."""

from __future__ import annotations

import contextlib

from ._config import HOLDER, Config
from ._core import _plan, _probe, _scope
from ._core._storage import STORAGE
from ._observers import _customers, _exemplars
from .prometheus import COLLECTOR

__all__: list[str] = []


def _apply(old: Config | None, new: Config) -> None:
    _scope.ENABLED = new.enabled
    if old is None or old.enabled != new.enabled:
        _plan.set_enabled(new.enabled)
    _probe.CLOCK = _scope.CLOCK = new.clock
    _exemplars.configure(
        new.exemplars, new.slowest_requests, new.slowest_window_seconds, new.annotate_spans
    )
    _scope.configure_request_end(new.exemplars, new.annotate_spans, new.slowest_requests)
    STORAGE.max_series = new.max_series
    _customers.set_key(new.customer_key)
    if old is None or old.multiproc_dir != new.multiproc_dir:
        STORAGE.use_directory(new.multiproc_dir)
    if old is None or old.registry is not new.registry:
        if old is not None and old.registry is not None:
            with contextlib.suppress(KeyError):
                old.registry.unregister(COLLECTOR)
        if new.registry is not None:
            new.registry.register(COLLECTOR)


def install() -> None:
    _apply(None, HOLDER.config)
    HOLDER.listeners.append(_apply)
