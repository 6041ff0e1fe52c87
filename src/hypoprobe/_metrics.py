"""The metric families hypoprobe records: names, labels, layouts. Part of the contract."""

from __future__ import annotations

from dataclasses import dataclass

from ._buckets import CALLS, DURATION, SHARE, BucketLayout

__all__: list[str] = []

#: Endpoint label of probe calls made outside any endpoint scope.
NO_ENDPOINT = "<none>"


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "histogram", "counter", "gauge"
    labels: tuple[str, ...]
    help: str
    layout: BucketLayout | None = None


ENDPOINT_DURATION = Family(
    "hypoprobe_endpoint_duration_seconds",
    "histogram",
    ("endpoint",),
    "Duration of each endpoint scope (request or job), outermost scopes only.",
    DURATION,
)
PROBE_DURATION = Family(
    "hypoprobe_probe_duration_seconds",
    "histogram",
    ("hypothesis", "probe", "endpoint"),
    "Duration of each probed call; endpoint is <none> outside any endpoint scope.",
    DURATION,
)
REQUEST_PROBE = Family(
    "hypoprobe_request_probe_seconds",
    "histogram",
    ("hypothesis", "probe", "endpoint", "segment", "slow"),
    "Total probe time per request, one observation per request (0 when not called).",
    DURATION,
)
REQUEST_SHARE = Family(
    "hypoprobe_request_share_ratio",
    "histogram",
    ("hypothesis", "probe", "endpoint", "segment"),
    "Probe time / endpoint time per request, one observation per request.",
    SHARE,
)
REQUEST_CALLS = Family(
    "hypoprobe_request_calls",
    "histogram",
    ("hypothesis", "probe", "endpoint", "segment"),
    "Probe calls per request, one observation per request (N+1 patterns show here).",
    CALLS,
)
HYPOTHESIS_INFO = Family(
    "hypoprobe_hypothesis_info",
    "gauge",
    (
        "hypothesis",
        "endpoint",
        "claim",
        "min_share",
        "observed_share",
        "observed_probe_seconds",
        "observed_endpoint_seconds",
        "slow_threshold",
        "owner",
        "ticket",
        "expires",
        "segments",
        "segment",
    ),
    "A registered hypothesis (value 1), one series per endpoint it names.",
)
UNKNOWN_HYPOTHESIS = Family(
    "hypoprobe_unregistered_hypothesis",
    "gauge",
    ("hypothesis",),
    "Probes name this hypothesis id, but no hypothesis with it is registered (value 1).",
)
PROBE_TARGET = Family(
    "hypoprobe_probe_target_state",
    "gauge",
    ("hypothesis", "target", "kind", "state", "reason"),
    "Processes in which a probe target is in this state: pending, attached, failed (reason "
    "says why) or detached; a late attach says so in reason.",
)
HYPOTHESIS_EXPIRED = Family(
    "hypoprobe_hypothesis_expired",
    "gauge",
    ("hypothesis",),
    "1 when the hypothesis is past its expiry and its probes pass straight through.",
)

# Per-request moments for the ratio estimator, summed over the hypothesis' probes.
MOMENT_LABELS = ("hypothesis", "endpoint", "segment", "slow")
MOMENT_REQUESTS = Family(
    "hypoprobe_hypothesis_requests",
    "counter",
    MOMENT_LABELS,
    "Endpoint requests seen for the hypothesis.",
)
MOMENT_REQUESTS_WITH_PROBE = Family(
    "hypoprobe_hypothesis_requests_with_probe",
    "counter",
    MOMENT_LABELS,
    "Endpoint requests in which at least one of the hypothesis' probes was called.",
)
MOMENT_PROBE = Family(
    "hypoprobe_hypothesis_probe_seconds",
    "counter",
    MOMENT_LABELS,
    "Sum over requests of the hypothesis' probe time p.",
)
MOMENT_ENDPOINT = Family(
    "hypoprobe_hypothesis_endpoint_seconds",
    "counter",
    MOMENT_LABELS,
    "Sum over requests of the endpoint time e.",
)
MOMENT_PP = Family(
    "hypoprobe_hypothesis_probe_seconds_squared",
    "counter",
    MOMENT_LABELS,
    "Sum over requests of p squared (seconds squared).",
)
MOMENT_EE = Family(
    "hypoprobe_hypothesis_endpoint_seconds_squared",
    "counter",
    MOMENT_LABELS,
    "Sum over requests of e squared (seconds squared).",
)
MOMENT_PE = Family(
    "hypoprobe_hypothesis_probe_endpoint_seconds_squared",
    "counter",
    MOMENT_LABELS,
    "Sum over requests of p times e (seconds squared).",
)
#: Integer moments (exact) in slot order, then float moments in slot order.
INT_MOMENTS = (MOMENT_REQUESTS, MOMENT_REQUESTS_WITH_PROBE, MOMENT_PROBE, MOMENT_ENDPOINT)
FLOAT_MOMENTS = (MOMENT_PP, MOMENT_EE, MOMENT_PE)
#: Internal series name of the moment group (one series: 4 int slots, 3 float slots).
MOMENTS_SERIES = "hypoprobe_moments"

ENDPOINT_REQUESTS = Family(
    "hypoprobe_endpoint_requests",
    "counter",
    ("endpoint", "status", "exception"),
    "Requests by response status class (2xx..5xx; '' when not a web response) and by the "
    "exception that ended them ('' for none; 20 classes per endpoint, then 'other').",
)
PROBE_EXCEPTIONS = Family(
    "hypoprobe_probe_exceptions",
    "counter",
    ("hypothesis", "probe", "exception"),
    "Exceptions that passed through probed code, by class (bounded; the rest is 'other').",
)
INTERNAL_ERRORS = Family(
    "hypoprobe_internal_errors",
    "counter",
    ("kind",),
    "Faults inside hypoprobe, caught and never raised into the application.",
)
SERIES_DROPPED = Family(
    "hypoprobe_series_overflow",
    "counter",
    ("metric",),
    "Series requested beyond max_series and collapsed into the metric's overflow series.",
)
CLAMPED = Family(
    "hypoprobe_clamped_values",
    "counter",
    ("metric", "side"),
    "Recorded values outside a histogram's range, counted in its first or last bucket.",
)
SELF_SECONDS = Family(
    "hypoprobe_self_seconds",
    "counter",
    ("endpoint",),
    "Estimated time hypoprobe itself spent in this process, per endpoint (<none>: probe "
    "calls outside any scope): per-operation costs calibrated once per process x counts.",
)

HISTOGRAMS = (ENDPOINT_DURATION, PROBE_DURATION, REQUEST_PROBE, REQUEST_SHARE, REQUEST_CALLS)
