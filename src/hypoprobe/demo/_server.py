"""Serve the demo's WSGI app on 127.0.0.1 from a background thread."""

from __future__ import annotations

from typing import Any
from wsgiref.simple_server import WSGIServer

from .._serving import BackgroundServer, base_url, bind

__all__ = ["serve_app"]


def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """``with serve_app(app) as server: get(server.url + "/")`` — a free port each time."""
    # A plain server (one request at a time), and a short poll so the demo ends promptly.
    server = bind(app, host, port, WSGIServer)
    return BackgroundServer(
        server, base_url(host, server.server_port), name="hypoprobe-demo", poll_interval=0.1
    )
