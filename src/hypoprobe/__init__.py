"""hypoprobe: turn a hunch about slowness into a measured verdict.

State a hypothesis, probe the suspect code path, let every request of every worker stream
low-overhead histograms into Prometheus and OpenTelemetry, and judge: does the code path's
share of the endpoint's latency, in aggregate, match the one slow request that started
the investigation?

Example::

    import hypoprobe

    hypoprobe.hypothesis(
        "PERF-123",
        claim="the subscriber count query dominates GET /campaigns",
        endpoint="GET /campaigns",
        min_share=0.5,
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
    )

    @hypoprobe.probe("PERF-123")
    def count_subscribers(account_id): ...

    def campaigns_view(request):
        with hypoprobe.endpoint("GET /campaigns"):
            ...
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from . import _load, _runtime
from ._collect import snapshot
from ._config import Config, configure
from ._core._hypothesis import Hypothesis, Observation, hypothesis
from ._core._probe import probe
from ._core._scope import endpoint, segment
from ._exposition import metrics_asgi_app, metrics_wsgi_app, start_metrics_server
from ._load import load, unload
from ._observers._customers import customer
from ._survey import survey
from .errors import ConfigurationError, HypoprobeError, SnapshotError
from .model import Snapshot

try:
    __version__ = _version("hypoprobe")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Config",
    "ConfigurationError",
    "HypoprobeError",
    "Hypothesis",
    "Observation",
    "Snapshot",
    "SnapshotError",
    "__version__",
    "configure",
    "customer",
    "endpoint",
    "hypothesis",
    "load",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "probe",
    "segment",
    "snapshot",
    "start_metrics_server",
    "survey",
    "unload",
]

_runtime.install()
# Last, once the whole API exists: probes declared in $HYPOPROBE_CONFIG (logs, never raises).
_load.load_from_environment()
