"""One configuration object: constructor argument > environment variable > default."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client.registry import REGISTRY as _DEFAULT_REGISTRY
from prometheus_client.registry import CollectorRegistry

from .errors import ConfigurationError

__all__ = ["Config", "configure"]

_log = logging.getLogger("hypoprobe")

_BUCKETS_PER_OCTAVE = (1, 2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class Config:
    """hypoprobe's settings. Read it with ``hypoprobe.configure()``; change it the same way.

    ============================  ==============================  =========================
    field                         environment variable            default
    ============================  ==============================  =========================
    ``enabled``                   ``HYPOPROBE_DISABLED=1``        ``True``
    ``max_series``                ``HYPOPROBE_MAX_SERIES``        ``2000``
    ``buckets_per_octave``        ``HYPOPROBE_BUCKETS_PER_OCTAVE`` ``1``
    ``registry``                  (none)                          ``prometheus_client.REGISTRY``
    ``clock``                     (none)                          ``time.perf_counter_ns``
    ``multiproc_dir``             ``HYPOPROBE_MULTIPROC_DIR``     ``None`` (one process)
    ``exemplars``                 ``HYPOPROBE_EXEMPLARS=0/1``     ``True``
    ``slowest_requests``          ``HYPOPROBE_SLOWEST_REQUESTS``  ``5``
    ``slowest_window_seconds``    ``HYPOPROBE_SLOWEST_WINDOW``    ``600.0``
    ``annotate_spans``            ``HYPOPROBE_ANNOTATE_SPANS=0/1`` ``False``
    ``customer_key``              ``HYPOPROBE_CUSTOMER_KEY``      ``None`` (no customers)
    ============================  ==============================  =========================

    Example::

        config = hypoprobe.configure(enabled=False)  # probes pass straight through
        assert config.enabled is False
    """

    #: When False, probes and endpoint scopes call straight through and record nothing.
    enabled: bool = True
    #: Cap on distinct labelled series; more are collapsed into an overflow series.
    max_series: int = 2000
    #: Resolution of the classic Prometheus histogram buckets for durations (1 = one bucket
    #: per doubling, 1.02 us .. 73 min, 33 buckets). Internally the resolution is always 16.
    buckets_per_octave: int = 1
    #: The prometheus_client registry the collector is registered on (None: none).
    registry: CollectorRegistry | None = _DEFAULT_REGISTRY
    #: Monotonic nanosecond clock; swap only in tests.
    clock: Callable[[], int] = time.perf_counter_ns
    #: Multi-process mode: an existing, writable directory (one per host) where every
    #: process records into memory-mapped files, so any process reports them all.
    multiproc_dir: str | None = None
    #: Attach the active OpenTelemetry span's trace and span id to the buckets a request
    #: landed in (one per bucket, the newest). Costs nothing per probe call; per request,
    #: one span lookup, and a little more only when a span is active.
    exemplars: bool = True
    #: Per hypothesis and endpoint, keep this many requests with the highest probe share and
    #: this many slowest requests (0: keep none).
    slowest_requests: int = 5
    #: How long a kept slow request stays listed (seconds): every reader (a scrape, a
    #: report) sees the same list, none takes it away from another.
    slowest_window_seconds: float = 600.0
    #: Write each hypothesis' probe time, share and calls onto the request's active
    #: OpenTelemetry span at the end of the request, so a trace view shows them (off by
    #: default: it costs a few microseconds per traced request).
    annotate_spans: bool = False
    #: The secret customer ids are hashed with (``hypoprobe.customer``); the same on every
    #: host of a deployment, so one customer is one hash fleet-wide. None: customers are not
    #: recorded. Never shown in the Config's repr.
    customer_key: str | None = dataclasses.field(default=None, repr=False)


_ENV_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {}


def _env_bool_disabled(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return False
    if value in ("0", "false", "no", "off", ""):
        return True
    raise ValueError("use 1 or 0")


def _env_int(raw: str) -> int:
    return int(raw.strip())


def _env_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("use 1 or 0")


_ENV_PARSERS = {
    "HYPOPROBE_DISABLED": ("enabled", _env_bool_disabled),
    "HYPOPROBE_MAX_SERIES": ("max_series", _env_int),
    "HYPOPROBE_BUCKETS_PER_OCTAVE": ("buckets_per_octave", _env_int),
    "HYPOPROBE_MULTIPROC_DIR": ("multiproc_dir", lambda raw: raw.strip() or None),
    "HYPOPROBE_EXEMPLARS": ("exemplars", _env_bool),
    "HYPOPROBE_ANNOTATE_SPANS": ("annotate_spans", _env_bool),
    "HYPOPROBE_SLOWEST_REQUESTS": ("slowest_requests", _env_int),
    "HYPOPROBE_CUSTOMER_KEY": ("customer_key", lambda raw: raw or None),
    "HYPOPROBE_SLOWEST_WINDOW": ("slowest_window_seconds", lambda raw: float(raw.strip())),
}


def validate(fields: Mapping[str, object]) -> dict[str, object]:
    """Check field values; raise ConfigurationError naming the field and the fix."""
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ConfigurationError(
            f"configure() got unknown setting(s) {', '.join(unknown)}; "
            f"known settings: {', '.join(sorted(names))}"
        )
    out = dict(fields)
    if "enabled" in out and not isinstance(out["enabled"], bool):
        raise ConfigurationError(f"enabled must be True or False, got {out['enabled']!r}")
    for switch in ("exemplars", "annotate_spans"):
        if switch in out and not isinstance(out[switch], bool):
            raise ConfigurationError(f"{switch} must be True or False, got {out[switch]!r}")
    if "slowest_requests" in out:
        value = out["slowest_requests"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ConfigurationError(
                f"slowest_requests must be an integer from 0 (off) to 100, got {value!r}"
            )
    if "slowest_window_seconds" in out:
        value = out["slowest_window_seconds"]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigurationError(
                f"slowest_window_seconds must be a positive number of seconds, got {value!r}"
            )
        out["slowest_window_seconds"] = float(value)
    if "max_series" in out:
        value = out["max_series"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 10:
            raise ConfigurationError(f"max_series must be an integer >= 10, got {value!r}")
    if "buckets_per_octave" in out and (
        type(out["buckets_per_octave"]) is not int  # 1.0 == 1 and True == 1: not settings
        or out["buckets_per_octave"] not in _BUCKETS_PER_OCTAVE
    ):
        raise ConfigurationError(
            f"buckets_per_octave must be one of {_BUCKETS_PER_OCTAVE}, "
            f"got {out['buckets_per_octave']!r}"
        )
    registry = out.get("registry")
    if registry is not None and not isinstance(registry, CollectorRegistry):
        raise ConfigurationError("registry must be a prometheus_client CollectorRegistry")
    if out.get("multiproc_dir") is not None:
        from ._core._multiproc import validate_directory

        value = out["multiproc_dir"]
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigurationError(f"multiproc_dir must be a path or None, got {value!r}")
        try:
            out["multiproc_dir"] = validate_directory(os.fspath(value))
        except ValueError as exc:
            raise ConfigurationError(f"multiproc_dir: {exc}") from None
    key = out.get("customer_key")
    if key is not None and (not isinstance(key, str) or len(key) < 16):
        raise ConfigurationError(
            "customer_key must be a secret string of at least 16 characters (or None)"
        )
    if "clock" in out:
        _check_clock(out["clock"])
    return out


def _check_clock(clock: object) -> None:
    """Read the clock once now: a float clock (``time.perf_counter``) would break exact sums."""
    message = "clock must be a callable returning integer nanoseconds, such as time.perf_counter_ns"
    if not callable(clock):
        raise ConfigurationError(message)
    try:
        value = clock()
    except Exception as exc:
        raise ConfigurationError(f"{message}; calling it raised {exc!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{message}; it returned {value!r}")


def from_environment(environ: Mapping[str, str] | None = None) -> Config:
    """Defaults overridden by environment variables; a bad value warns and falls back."""
    env = os.environ if environ is None else environ
    fields: dict[str, object] = {}
    for var, (name, parse) in _ENV_PARSERS.items():
        if var not in env:
            continue
        try:
            fields.update(validate({name: parse(env[var])}))
        except (ValueError, ConfigurationError) as exc:
            default = getattr(Config(), name)
            _log.warning(
                "hypoprobe: ignoring %s=%r (%s); using the default %r", var, env[var], exc, default
            )
    return Config(**fields)  # type: ignore[arg-type]


class _Holder:
    """The current Config and who to tell when it changes (kept off the hot path)."""

    def __init__(self) -> None:
        self.config = from_environment()
        self.listeners: list[Callable[[Config, Config], None]] = []

    def replace(self, **fields: object) -> Config:
        changes = validate(fields)
        old = self.config
        new = dataclasses.replace(old, **changes)  # type: ignore[arg-type]
        self.config = new
        for listener in self.listeners:
            listener(old, new)
        return new


HOLDER = _Holder()


def configure(**settings: object) -> Config:
    """Change settings at run time and return the resulting :class:`Config`.

    Arguments given here win over environment variables, which win over defaults.
    Unknown names and bad values raise :class:`hypoprobe.ConfigurationError`.

    Example::

        hypoprobe.configure(enabled=False)          # a kill switch, at run time
        hypoprobe.configure(enabled=True, max_series=5000)
        current = hypoprobe.configure()             # no arguments: read the settings
    """
    if not settings:
        return HOLDER.config
    return HOLDER.replace(**settings)
