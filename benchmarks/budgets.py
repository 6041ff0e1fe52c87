"""Overhead budgets: ratios of added cost between cases measured in one run."""

from __future__ import annotations

#: Calls per timed round: long enough to drown pytest-benchmark's own per-round cost.
LOOP = 1000

#: (case, reference case, ratio): added cost of case <= ratio x added cost of reference.
BUDGETS: list[tuple[str, str, float]] = [
    ("probe_in_scope", "prometheus_client_time", 1 / 3),
    ("probe_in_scope", "otel_record", 1 / 12),
    ("probe_in_scope", "floor_two_clock_reads", 2.5),
    ("probe_disabled", "passthrough_wrapper", 1.5),
    ("endpoint_scope_3_hypotheses", "prometheus_client_time", 2.0),
]
