"""The launcher's ``/metrics``: prometheus_client's own exposition, in one swappable function.

prometheus_client's WSGI app negotiates the format (OpenMetrics when the scraper asks
for it, as Prometheus does, so exemplars are kept; the classic text format otherwise)
and gzip. The socket is bound first and served later, so a busy port is reported before
the command starts.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["MetricsServer", "bind_metrics"]


class _QuietHandler(WSGIRequestHandler):
    """No access log on the application's stderr for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class MetricsServer:
    """A bound ``/metrics`` endpoint: :meth:`start` serves it, :meth:`stop` closes it."""

    server: Any
    url: str
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="hypoprobe-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


class _ThreadingWSGIServer6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


def bind_metrics(registry: CollectorRegistry, address: str, port: int) -> MetricsServer:
    """Bind ``address:port`` (0: a free port) for ``registry``'s exposition; raises OSError.

    Example::

        server = bind_metrics(registry, "127.0.0.1", 9464)
        server.start()  # http://127.0.0.1:9464/metrics
    """
    server = make_server(
        address,
        port,
        make_wsgi_app(registry),
        server_class=_ThreadingWSGIServer6 if ":" in address else ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    host = address if ":" not in address else f"[{address}]"
    return MetricsServer(server, f"http://{host}:{server.server_port}/metrics")
