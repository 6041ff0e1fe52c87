"""The launcher's ``/metrics``: hypoprobe's negotiating exposition on a socket of its own.

:func:`hypoprobe.metrics_wsgi_app` negotiates the format: protobuf with native histograms
when Prometheus asks for it (``--enable-feature=native-histograms``), OpenMetrics (so
exemplars are kept) or the classic text format otherwise, through prometheus_client's own
app for the last two; gzip too. The socket is bound first and served later, so a busy port
is reported before the command starts.
"""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer

from .._exposition import metrics_wsgi_app
from .._serving import BackgroundServer, base_url, bind

__all__ = ["bind_metrics"]


class _ThreadingWSGIServer6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


def bind_metrics(registry: CollectorRegistry, address: str, port: int) -> BackgroundServer:
    """Bind ``address:port`` (0: a free port) for ``registry``'s exposition; raises OSError.

    Example::

        server = bind_metrics(registry, "127.0.0.1", 9464)
        server.start()  # http://127.0.0.1:9464/metrics
    """
    server = bind(
        metrics_wsgi_app(registry),
        address,
        port,
        _ThreadingWSGIServer6 if ":" in address else ThreadingWSGIServer,
    )
    return BackgroundServer(server, base_url(address, server.server_port) + "/metrics")
