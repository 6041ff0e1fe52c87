"""Customer figures on ``/metrics``: per-host gauges of distinct customers, and exact sums.

Distinct counts do not add across hosts (one customer served by two hosts would count
twice), so they are gauges of this host's (or multi-process directory's) estimate:
``sum()`` over instances is an upper bound of the fleet's distinct customers and ``max()`` a
lower bound. The request and probe-time sums are counters and add exactly, so a
Prometheus-only deployment has the fleet's saving per day, seconds and value-weighted, from
``rate()``. The fleet's exact distinct counts come from the snapshot files of every host
(``hypoprobe snapshot`` per host, then ``hypoprobe report --snapshot a.json b.json``): the
samples inside them union exactly, which 16,384-register series per hypothesis on
Prometheus would not do at a bearable series count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ._metrics import Family
from ._sketch import CustomerSketch
from .model import Snapshot

__all__: list[str] = []

LABELS = ["hypothesis", "endpoint", "segment", "kind"]
DISTINCT = "hypoprobe_customers"
VALUE = "hypoprobe_customers_value"
REQUESTS = "hypoprobe_customer_requests"
PROBE = "hypoprobe_customer_probe_seconds"
PROBE_VALUE = "hypoprobe_customer_probe_value_seconds"


def families(snap: Snapshot) -> Iterator[Metric]:
    """The customer families of a snapshot (none when no request named a customer)."""
    if not snap.customers:
        return
    distinct = GaugeMetricFamily(
        DISTINCT,
        "Distinct customers (keyed hashes) seen or affected on this host: kind=seen|affected",
        labels=LABELS,
    )
    value = GaugeMetricFamily(
        VALUE, "Summed value of those distinct customers on this host", labels=LABELS
    )
    requests = CounterMetricFamily(
        REQUESTS,
        "Requests that named a customer (kind=affected: of those, affected)",
        labels=LABELS,
    )
    probe = CounterMetricFamily(PROBE, "Probe seconds in those requests", labels=LABELS)
    probe_value = CounterMetricFamily(
        PROBE_VALUE, "Probe seconds in those requests times the customer's value", labels=LABELS
    )
    for c in snap.customers:
        labels = [c.hypothesis, c.endpoint, c.segment, c.kind]
        distinct.add_metric(labels, c.distinct())
        found = c.value()
        if found is not None:
            value.add_metric(labels, found)
        requests.add_metric(labels, float(c.requests))
        probe.add_metric(labels, c.probe_seconds)
        probe_value.add_metric(labels, c.probe_value_seconds)
    yield from (distinct, value, requests, probe, probe_value)


_LABELS = tuple(LABELS)
#: The same figures for OpenTelemetry: (family, value of a sketch; None: no point).
OTEL: tuple[tuple[Family, Callable[[CustomerSketch], float | None]], ...] = (
    (
        Family(DISTINCT, "gauge", _LABELS, "Distinct customers on this host"),
        CustomerSketch.distinct,
    ),
    (Family(VALUE, "gauge", _LABELS, "Summed value of those customers"), CustomerSketch.value),
    (
        Family(REQUESTS, "counter", _LABELS, "Requests that named a customer"),
        lambda c: float(c.requests),
    ),
    (
        Family(PROBE, "counter", _LABELS, "Probe seconds in those requests"),
        lambda c: c.probe_seconds,
    ),
    (
        Family(PROBE_VALUE, "counter", _LABELS, "Probe seconds times the customer's value"),
        lambda c: c.probe_value_seconds,
    ),
)
