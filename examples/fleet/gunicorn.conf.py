"""gunicorn settings for hypoprobe's multi-process mode (see docs/operations.md).

The one thing hypoprobe needs is ``HYPOPROBE_MULTIPROC_DIR`` in the environment *before
the app is imported*: in the master with ``preload_app`` (set here, at config load), or in
each worker without it. One directory per host (per container), on a local filesystem
(tmpfs is ideal); every worker records into its own files there and any worker's
``/metrics`` reports them all, including workers that died or were recycled.

No ``child_exit`` hook is needed: a file's owner is identified by pid and process start
time, so dead workers are recognised (and compacted into one archive) by whichever worker
serves the next scrape.
"""

from __future__ import annotations

import os

bind = os.environ.get("FLEET_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("FLEET_WORKERS", "2"))
worker_class = "sync"
preload_app = True  # hypoprobe's fork handlers make this safe: children start from zero
max_requests = int(os.environ.get("FLEET_MAX_REQUESTS", "0"))  # recycling loses nothing
timeout = 30
accesslog = None

_multiproc_dir = os.environ.setdefault(
    "HYPOPROBE_MULTIPROC_DIR", os.path.join("/tmp", f"hypoprobe-{bind.replace(':', '-')}")
)
os.makedirs(_multiproc_dir, exist_ok=True)
