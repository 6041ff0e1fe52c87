"""UNMEASURED through a real Prometheus server: the target states and the silent probes
survive ``increase()`` and ``last_over_time()``, and every format says the same as from a
snapshot file (``test_unmeasured.py``)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Metric, start_http_server
from prometheus_client.registry import Collector

import hypoprobe
import unmeasured_story as story_mod
from apps import app_factory
from conftest import FakeClock
from hypoprobe.prometheus import families
from hypoprobe.sources import query_prometheus
from servers import PrometheusServer, free_port, require_prometheus, start_prometheus
from test_unmeasured import _check_every_format
from unmeasured_story import Story

pytestmark = pytest.mark.real_server

JOB = "app"


class _Holder:
    story: Story | None = None


class _StoryMetrics(Collector):
    def collect(self) -> Iterator[Metric]:
        if _Holder.story is not None:
            yield from families(story_mod.only(hypoprobe.snapshot(), _Holder.story))


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
            serve(1)  # every series exists before the window starts
            _Holder.story = story
            start = _scrape_after_now(prom)
            serve(story_mod.REQUESTS)
            end = _scrape_after_now(prom)
            yield story, prom.url, start, end
    finally:
        _Holder.story = None
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
