"""The launcher's ``/metrics``: hypoprobe's negotiating exposition on a socket of its own.

:func:`hypoprobe.metrics_wsgi_app` negotiates the format: protobuf with native histograms
when Prometheus asks for it (``--enable-feature=native-histograms``), OpenMetrics (so
exemplars are kept) or the classic text format otherwise, through prometheus_client's own
app for the last two; gzip too. The socket is bound first and served later, so a busy port
is reported before the command starts.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer

from .._exposition import metrics_wsgi_app

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
        metrics_wsgi_app(registry),
        server_class=_ThreadingWSGIServer6 if ":" in address else ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    host = address if ":" not in address else f"[{address}]"
    return MetricsServer(server, f"http://{host}:{server.server_port}/metrics")
