"""UNMEASURED through a real Prometheus server: the target states and the silent probes
survive ``increase()`` and ``last_over_time()``, and every format says the same as from a
snapshot file (``test_unmeasured.py``)."""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, Metric, start_http_server
from prometheus_client.registry import Collector

import hypoprobe
import unmeasured_story as story_mod
from apps import app_factory
from conftest import FakeClock
from hypoprobe import analysis
from hypoprobe.prometheus import families
from hypoprobe.sources import query_prometheus
from servers import PrometheusServer, free_port, require_prometheus, start_prometheus
from test_unmeasured import _check_every_format
from unmeasured_story import Story

pytestmark = pytest.mark.real_server

JOB = "app"


class _Holder:
    story: Story | None = None
    #: The quantile traffic's hypothesis and endpoint.
    quantiles: tuple[str, str] | None = None
    truth: hypoprobe.Snapshot | None = None


class _StoryMetrics(Collector):
    def collect(self) -> Iterator[Metric]:
        if _Holder.story is None or _Holder.quantiles is None:
            return
        hid, ep = _Holder.quantiles
        snap = hypoprobe.snapshot()
        mine = story_mod.only(snap, _Holder.story)
        extra = _only_quantiles(snap, hid, ep)
        yield from families(
            replace(
                mine,
                hypotheses=mine.hypotheses + extra.hypotheses,
                endpoints=mine.endpoints + extra.endpoints,
                probes=mine.probes + extra.probes,
                requests=mine.requests + extra.requests,
                moments=mine.moments + extra.moments,
            )
        )


def _only_quantiles(snap: hypoprobe.Snapshot, hid: str, ep: str) -> hypoprobe.Snapshot:
    return replace(
        snap,
        hypotheses=tuple(h for h in snap.hypotheses if h.id == hid),
        endpoints=tuple(e for e in snap.endpoints if e.endpoint == ep),
        probes=tuple(p for p in snap.probes if p.hypothesis == hid),
        requests=tuple(r for r in snap.requests if r.hypothesis == hid),
        moments=tuple(mo for mo in snap.moments if mo.hypothesis == hid),
        exceptions=(),
        outcomes=(),
        unregistered=(),
        slowest=(),
        targets=(),
    )


def _quantile_traffic(clock: FakeClock, hid: str, ep: str) -> Callable[[int], None]:
    """Requests of 100-160 ms with 25 probe calls of 0.5-0.9 ms each (seeded)."""
    hypoprobe.hypothesis(hid, claim="q", endpoint=ep, min_share=0.5)
    rng = random.Random(11)

    @hypoprobe.probe(hid, name="q")
    def q(seconds: float) -> None:
        clock.advance_seconds(seconds)

    def serve(n: int) -> None:
        for _ in range(n):
            with hypoprobe.endpoint(ep):
                clock.advance_seconds(rng.uniform(0.100, 0.160))
                for _ in range(25):
                    q(rng.uniform(0.0005, 0.0009))

    return serve


def _scrape_after_now(prom: PrometheusServer) -> float:
    prom.wait_for_scrape_after(time.time() + 0.01, JOB, timeout=15)
    (series,) = prom.query(f'timestamp(up{{job="{JOB}"}})')
    return float(series["value"][1])


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Story, str, float, float]]:
    require_prometheus()
    registry = CollectorRegistry()
    registry.register(_StoryMetrics())
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    tmp = tmp_path_factory.mktemp("unmeasured-prom")
    counter = itertools.count(1)

    def unique(suffix: str = "") -> str:
        return f"P{next(counter)}-{os.getpid()}-unmeasured-prom-{suffix}"

    previous = hypoprobe.configure().clock
    clock = FakeClock()
    hypoprobe.configure(clock=clock)
    factory = app_factory(tmp, unique)
    try:
        with start_prometheus(tmp, {JOB: [f"127.0.0.1:{port}"]}, scrape_interval="1s") as prom:
            prom.wait_for_up(JOB)
            story, serve = story_mod.setup(next(factory), clock, unique, tmp)
            qid, qep = unique("quantiles"), unique("GET /index")
            serve_q = _quantile_traffic(clock, qid, qep)
            serve(1)  # every series exists before the window starts
            serve_q(1)
            _Holder.story, _Holder.quantiles = story, (qid, qep)
            start = _scrape_after_now(prom)
            before = hypoprobe.snapshot()
            serve(story_mod.REQUESTS)
            serve_q(400)
            _Holder.truth = _only_quantiles(hypoprobe.snapshot().minus(before), qid, qep)
            end = _scrape_after_now(prom)
            yield story, prom.url, start, end
    finally:
        _Holder.story = _Holder.quantiles = None
        hypoprobe.configure(clock=previous)
        for path in (tmp / "perf.toml", tmp / "late.toml"):
            hypoprobe.unload(path)
        next(factory, None)
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_every_format_from_a_real_prometheus(
    window: tuple[Story, str, float, float], capsys: pytest.CaptureFixture[str]
) -> None:
    story, url, start, end = window
    source = ["--prometheus", url, "--window", f"{end - start:.3f}s", "--at", f"{end:.3f}"]
    _check_every_format(capsys, story, source)


def test_the_target_states_are_read_back_from_prometheus(
    window: tuple[Story, str, float, float],
) -> None:
    story, url, start, end = window
    snap = query_prometheus(url, window_seconds=end - start, at=end)
    pkg = story.pkg
    states = {(t.target, t.state, t.processes) for t in snap.targets}
    assert (f"{pkg}.modles:User.followers_count", "failed", 1) in states
    assert (f"{pkg}.models:User.folowers_count", "failed", 1) in states
    assert (f"{pkg}.models:helper", "attached", 1) in states
    assert (f"{pkg}.models:User.feed", "attached", 1) in states


def test_every_quantile_from_prometheus_brackets_the_snapshots_figure(
    window: tuple[Story, str, float, float],
) -> None:
    _, url, start, end = window
    assert _Holder.truth is not None
    (exact,) = analysis.report(_Holder.truth).verdicts
    got = query_prometheus(url, window_seconds=end - start, at=end)
    (prom,) = analysis.report(got, hypotheses=[exact.hypothesis]).verdicts
    assert prom.requests == exact.requests == 400
    for name in ("endpoint_p50", "endpoint_p95", "endpoint_p99", "probe_p95"):
        want = getattr(exact, name)  # within 4.5% of the truth (snapshot buckets)
        bucket = prom.quantile_buckets.get(name)
        assert bucket is not None, name  # one bucket per power of two: wide
        lower, upper = bucket
        assert lower <= want <= upper, (name, bucket, want)
        assert lower <= getattr(prom, name) <= upper  # histogram_quantile's interpolation
    assert exact.calls_per_request_p95 == 25
    assert prom.quantile_buckets["calls_per_request_p95"] == (21.0, 50.0)
