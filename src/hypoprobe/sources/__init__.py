"""Report sources: every way a report reads data ends in the same frozen ``Snapshot``.

* :func:`load_snapshot_files` — JSON files written by ``hypoprobe.snapshot().to_json()``
  (or ``hypoprobe snapshot``); several files (processes, hosts) are merged.
* :func:`scrape_metrics` — live ``/metrics`` endpoints, one or many, parsed with
  prometheus_client; totals since start, or with ``window_seconds`` the difference of two
  scrapes.
* :func:`query_prometheus` — a Prometheus server's HTTP API, which has already aggregated
  the fleet; ``increase()`` over a window ending at ``at``.

Every failure is a :class:`SourceError` with a one-line message and an ``exit_code``
(3 unreachable or error answer, 4 no hypoprobe data). See ``docs/sources.md``.

Example::

    from hypoprobe.sources import SourceError, query_prometheus

    try:
        snap = query_prometheus("http://prometheus:9090", window_seconds=3600)
    except SourceError as exc:
        raise SystemExit(exc.exit_code) from exc
"""

from __future__ import annotations

from ._errors import EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_USAGE, SourceError
from .files import load_snapshot_file, load_snapshot_files
from .prom_api import query_prometheus
from .scrape import scrape_metrics

__all__ = [
    "EXIT_NO_DATA",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "SourceError",
    "load_snapshot_file",
    "load_snapshot_files",
    "query_prometheus",
    "scrape_metrics",
]
