"""A WSGI app served from a daemon thread, with no access log: ``/metrics`` and the demo's app.

The request handler and the threaded server class are prometheus_client's own, the ones its
``start_http_server`` runs; this module binds a server, serves it and stops it, for
:func:`hypoprobe.start_metrics_server`, ``hypoprobe run``'s ``/metrics`` and the demo.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

# A handler that logs nothing: an access-log line per request would land on the
# application's stderr for every scrape (and bury the demo's own output).
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["BackgroundServer", "base_url", "bind"]


def bind(
    app: Any, host: str, port: int, server_class: type[WSGIServer] = ThreadingWSGIServer
) -> WSGIServer:
    """``host:port`` (port 0: a free one) bound for the WSGI ``app``; raises OSError.

    The default server class runs each request in a thread of its own. Nothing is served
    until :meth:`BackgroundServer.start`.

    Example::

        server = bind(app, "127.0.0.1", 0)
        print(server.server_port)
    """
    return make_server(host, port, app, server_class, handler_class=_SilentHandler)


def base_url(host: str, port: int) -> str:
    """The URL of ``host:port``, an IPv6 address in brackets.

    Example: ``base_url("::1", 9464)`` is ``"http://[::1]:9464"``.
    """
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class BackgroundServer:
    """A bound server and its URL: :meth:`start` serves it from a daemon thread,
    :meth:`stop` closes it; a ``with`` block does both.

    Example::

        server = bind(app, "127.0.0.1", 0)
        with BackgroundServer(server, base_url("127.0.0.1", server.server_port)) as served:
            print("serving on", served.url)
    """

    server: WSGIServer
    url: str
    name: str = "hypoprobe-metrics"
    #: How often the serving loop looks for :meth:`stop` (seconds).
    poll_interval: float = 0.5
    _thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
