"""Scrape cost of the protobuf exposition with native histograms, beside the text formats.

One registry holds hypoprobe's collector over a fixed snapshot: 20 endpoints, each with a
hypothesis and one probe, 400 requests each spread over ~3 octaves of latency (so each
series has a few dozen non-empty internal buckets, as a real endpoint does). Cases, side by
side in one run, all rendering the same registry:

* ``text``: prometheus_client's ``generate_latest`` (what a text scrape costs today);
* ``openmetrics``: prometheus_client's OpenMetrics output;
* ``protobuf``: hypoprobe's protobuf exposition, classic buckets plus native histograms.

Run: ``pytest benchmarks/bench_exposition_native.py --benchmark-only``; pytest-benchmark
prints the table (ms per scrape); figures in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

import hypoprobe
from hypoprobe import _protobuf
from hypoprobe.prometheus import families
from hypoprobe.snapshot import Snapshot

pytestmark = pytest.mark.benchmark(group="exposition")

ENDPOINTS = 20
REQUESTS = 400


class _Fixed(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        return families(self.snap, 1)


def _snapshot() -> Snapshot:
    """Requests of ENDPOINTS endpoints, recorded once with hypoprobe's real storage."""
    rng = random.Random(7)
    clock = [0]
    previous = hypoprobe.configure().clock
    hypoprobe.configure(clock=lambda: clock[0])
    try:
        names = []
        for e in range(ENDPOINTS):
            hid, ep = f"BENCH-PB-{e}", f"GET /bench-pb/{e}"
            names.append((hid, ep))
            hypoprobe.hypothesis(hid, claim="benchmark", endpoint=ep, min_share=0.5)
            query = hypoprobe.probe(hid, name="query")
            for _ in range(REQUESTS):
                with hypoprobe.endpoint(ep):
                    for _ in range(rng.randint(1, 30)):
                        with query:
                            clock[0] += int(rng.lognormvariate(13, 1))  # ~0.4 ms
                    clock[0] += int(rng.lognormvariate(16, 1))  # ~9 ms
    finally:
        hypoprobe.configure(clock=previous)
    snap = hypoprobe.snapshot()
    hids = {h for h, _ in names}
    return Snapshot(
        created_at=snap.created_at,
        source=snap.source,
        hypotheses=tuple(h for h in snap.hypotheses if h.id in hids),
        endpoints=tuple(e for e in snap.endpoints if e.endpoint.startswith("GET /bench-pb/")),
        probes=tuple(p for p in snap.probes if p.hypothesis in hids),
        requests=tuple(r for r in snap.requests if r.hypothesis in hids),
        moments=tuple(mo for mo in snap.moments if mo.hypothesis in hids),
    )


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fixed(_snapshot()))
    return reg


RENDERERS: dict[str, Callable[[CollectorRegistry], bytes]] = {
    "text": generate_latest,
    "openmetrics": generate_openmetrics,
    "protobuf": _protobuf.render,
}


@pytest.mark.parametrize("case", list(RENDERERS))
def test_scrape(benchmark: Any, registry: CollectorRegistry, case: str) -> None:
    render = RENDERERS[case]
    body = benchmark.pedantic(render, args=(registry,), rounds=15, iterations=1)
    assert body
