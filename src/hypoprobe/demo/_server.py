"""Serve a WSGI app on 127.0.0.1 from a background thread (the standard library's wsgiref)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["BackgroundServer"]


class _QuietHandler(WSGIRequestHandler):
    # One access-log line per request would bury the demo's own output.
    def log_message(self, format: str, *args: Any) -> None:
        pass


class BackgroundServer:
    """``with BackgroundServer(app) as server: get(server.url + "/")`` — a free port each time."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
