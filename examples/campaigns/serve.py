"""Serve the campaigns example app on its own, with its hypotheses loaded and ``/metrics`` up.

The app itself lives in the package (``hypoprobe.demo.app``) so that ``hypoprobe demo``
works from an installed wheel; this launcher is the "production" side of the story: run it,
drive it with the load generator, and judge from the outside through ``/metrics``::

    python examples/campaigns/serve.py --port 8000
    python -m hypoprobe.demo.loadgen http://127.0.0.1:8000 --requests 1000 --seed 1
    hypoprobe report --metrics-url http://127.0.0.1:8000/metrics

``--fix batch`` (or ``--fix index``) starts it with a fix applied; ``DATABASE_URL`` or
``--database-url`` runs it on PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import hypoprobe
from hypoprobe.demo.app import FIXES, HYPOTHESES, create_app


class _NoAccessLog(WSGIRequestHandler):
    # The load generator sends thousands of requests: one log line each would drown the
    # terminal. hypoprobe's metrics are the record here.
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--fix", action="append", choices=FIXES, default=[])
    args = parser.parse_args(argv)
    hypoprobe.load(HYPOTHESES)
    app = create_app(args.database_url, fixes=args.fix)
    with make_server("127.0.0.1", args.port, app, handler_class=_NoAccessLog) as server:
        print(f"campaigns app on http://127.0.0.1:{args.port}/ (metrics at /metrics)")
        print(f"hypotheses: {HYPOTHESES}; fixes: {', '.join(args.fix) or 'none'}")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
