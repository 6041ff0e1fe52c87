"""Overhead budgets: ratios of added cost between cases measured in one run."""

from __future__ import annotations

#: Calls per timed round: long enough to drown pytest-benchmark's own per-round cost.
LOOP = 1000

#: (case, reference case, ratio): added cost of case <= ratio x added cost of reference,
#: from the medians of cases timed one after the other (conftest.py checks them).
BUDGETS: list[tuple[str, str, float]] = [
    ("probe_in_scope", "otel_record", 1 / 12),
    ("probe_in_scope", "floor_two_clock_reads", 2.5),
    ("probe_disabled", "passthrough_wrapper", 1.5),
]

#: Budgets judged on interleaved rounds (bench_budgets.py): median(case - bare) /
#: median(reference - bare), paired per round, must be at most the ratio. By name: (case, reference,
#: ratio, what the ratio compares).
INTERLEAVED: dict[str, tuple[str, str, float, str]] = {
    "flask": ("hypoprobe", "prometheus", 1.25, "Flask middleware vs a histogram middleware"),
    "django": ("hypoprobe", "prometheus", 1.25, "Django middleware vs a histogram middleware"),
    "starlette": ("hypoprobe", "prometheus", 1.25, "Starlette middleware vs a histogram one"),
    # The same rounds, against the packages users of these frameworks actually install.
    "django_prometheus": (
        "hypoprobe",
        "django_prometheus",
        1.0,
        "Django middleware vs django-prometheus",
    ),
    "instrumentator": (
        "hypoprobe",
        "instrumentator",
        1.0,
        "Starlette middleware vs prometheus-fastapi-instrumentator",
    ),
    "wsgi": ("hypoprobe", "prometheus", 1.5, "raw WSGI middleware vs a histogram middleware"),
    "asgi": ("hypoprobe", "prometheus", 1.5, "raw ASGI middleware vs a histogram middleware"),
    "scope_3_hypotheses": (
        "hypoprobe",
        "prometheus",
        1.5,
        "endpoint scope, 3 hypotheses, vs one Histogram.time()",
    ),
    "probe_in_scope": ("hypoprobe", "prometheus", 0.30, "enabled probe vs Histogram.time()"),
    "multiproc_probe": ("multi", "single", 1.3, "probe: multi-process vs single-process"),
    "multiproc_scope": ("multi", "single", 1.3, "scope: multi-process vs single-process"),
}
