"""A real Prometheus server as a report source: its fleet aggregate is what was recorded.

One Prometheus (Debian's 2.42, started on 127.0.0.1, scraping this process every second)
serves the whole module. ``increase()`` extrapolates to the window's edges; the main test
makes that extrapolation exactly 1 by choosing the window from the scrapes' own
timestamps: it starts at a scrape taken after every series existed and before the traffic,
and ends at the first scrape after the traffic (Prometheus 2.x ranges include both ends),
so the increase is the plain difference of the two samples and must equal the difference
of the two in-process snapshots.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Metric, start_http_server
from prometheus_client.registry import Collector

import hypoprobe
from conftest import FakeClock
from hypoprobe.model import Snapshot
from hypoprobe.prometheus import families
from hypoprobe.sources import SourceError, query_prometheus
from servers import PrometheusServer, free_port, require_prometheus, start_prometheus
from source_checks import assert_same_histogram, assert_same_moments, requester

pytestmark = pytest.mark.real_server

JOB = "app"
PROBE = "query"


#: Hypotheses and endpoints this module records; its /metrics shows only these.
_MINE: set[str] = set()


class _ThisModulesMetrics(Collector):
    """hypoprobe's exposition (the collector's own ``families``) of this module's data.

    The test session records thousands of series in other modules; exposing all of them
    makes a scrape slower than the 1 s scrape interval allows, so Prometheus would drop it.
    """

    def collect(self) -> Iterator[Metric]:
        snap = hypoprobe.snapshot()
        yield from families(
            replace(
                snap,
                hypotheses=tuple(h for h in snap.hypotheses if h.id in _MINE),
                endpoints=tuple(e for e in snap.endpoints if e.endpoint in _MINE),
                probes=tuple(p for p in snap.probes if p.hypothesis in _MINE),
                requests=tuple(r for r in snap.requests if r.hypothesis in _MINE),
                moments=tuple(mo for mo in snap.moments if mo.hypothesis in _MINE),
                exceptions=tuple(x for x in snap.exceptions if x.hypothesis in _MINE),
                unregistered=(),
            )
        )


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    """This process's /metrics, where Prometheus scrapes hypoprobe."""
    port = free_port()
    registry = CollectorRegistry()
    registry.register(_ThisModulesMetrics())
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, metrics_url: str
) -> Iterator[PrometheusServer]:
    require_prometheus()
    target = metrics_url.removeprefix("http://").removesuffix("/metrics")
    tmp = tmp_path_factory.mktemp("prometheus")
    with start_prometheus(tmp, {JOB: [target]}, scrape_interval="1s") as prom:
        # The first scrape comes ~5 s after start; traffic before it would be invisible.
        prom.wait_for_up(JOB)
        yield prom


def _last_scrape(prom: PrometheusServer) -> float:
    """Timestamp (s, ms precision) of the newest committed scrape of the job."""
    (series,) = prom.query(f'timestamp(up{{job="{JOB}"}})')
    return float(series["value"][1])


def _scrape_after_now(prom: PrometheusServer) -> float:
    """Wait for a scrape that started after this call; return its timestamp."""
    # Prometheus may stamp a scrape with its scheduled time when it ran up to 2 ms off
    # schedule (timestamp alignment), so ask for a stamp clearly after "now".
    prom.wait_for_scrape_after(time.time() + 0.01, JOB, timeout=15)
    return _last_scrape(prom)


def _traffic(clock: FakeClock, hid: str, endpoint: str) -> Callable[..., None]:
    _MINE.update((hid, endpoint))
    hypoprobe.hypothesis(
        hid,
        claim="the subscriber query dominates\nGET /campaigns",
        endpoint=endpoint,
        min_share=0.3,
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        slow_threshold=0.5,
        owner="perf-team",
    )

    return requester(clock, hid, endpoint, PROBE)


def test_prometheus_window_equals_the_recorded_traffic(
    prometheus: PrometheusServer, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /campaigns")
    request = _traffic(fake_clock, hid, endpoint)
    # One slow request creates every series (slow and fast moments, per-request and
    # per-call histograms) so that all of them have a sample before the window.
    request(0.7, 0.2)
    start = _scrape_after_now(prometheus)
    before = hypoprobe.snapshot()
    for i in range(60):
        rest = 0.6 if i % 10 == 0 else 0.002 * (1 + i % 5)
        request(rest, *[0.0005 * (1 + i % 3)] * (i % 4))
    after = hypoprobe.snapshot()
    end = _scrape_after_now(prometheus)
    progress: list[str] = []

    got = query_prometheus(
        prometheus.url, window_seconds=end - start, at=end, progress=progress.append
    )

    truth = after.minus(before)
    for slow, n in ((False, 54), (True, 6)):
        have, want = got.moments_for(hid, endpoint, slow), truth.moments_for(hid, endpoint, slow)
        assert have.requests == n
        assert_same_moments(have, want)
    got_e, want_e = got.endpoint(endpoint), truth.endpoint(endpoint)
    assert got_e is not None
    assert want_e is not None
    assert_same_histogram(got_e.duration, want_e.duration)
    key = (hid, PROBE, endpoint)
    (got_r,) = [r for r in got.requests if (r.hypothesis, r.probe, r.endpoint) == key]
    (want_r,) = [r for r in truth.requests if (r.hypothesis, r.probe, r.endpoint) == key]
    for part in ("probe_seconds_fast", "probe_seconds_slow", "share", "calls"):
        assert_same_histogram(getattr(got_r, part), getattr(want_r, part))
    (got_p,) = [p for p in got.probes if (p.hypothesis, p.probe, p.endpoint) == key]
    (want_p,) = [p for p in truth.probes if (p.hypothesis, p.probe, p.endpoint) == key]
    assert_same_histogram(got_p.duration, want_p.duration)

    info = got.hypothesis(hid)
    assert info is not None
    assert (info.claim, info.endpoints, info.min_share, info.owner) == (
        "the subscriber query dominates\nGET /campaigns",
        (endpoint,),
        0.3,
        "perf-team",
    )
    assert info.observed_share == pytest.approx(0.8)
    assert got.source.startswith(f"prometheus {prometheus.url}")
    assert Snapshot.from_json(got.to_json()) == got  # a plain snapshot, ready to save

    # A window that starts 0.5 s before the first sample: increase() extrapolates the
    # series that were not at zero there by up to 0.5 s / (end - start). Counts stay whole,
    # non-negative numbers within that bound.
    stretched = query_prometheus(prometheus.url, window_seconds=end - start + 0.5, at=end)
    factor = 1 + 0.5 / (end - start)
    n = stretched.moments_for(hid, endpoint).requests
    assert isinstance(n, int)
    assert 60 <= n <= 60 * factor + 1
    e = stretched.endpoint(endpoint)
    assert e is not None
    assert all(isinstance(c, int) and c >= 0 for c in e.duration.counts)
    assert 60 <= e.duration.count <= 60 * factor + 1
    assert progress
    assert progress[-1].startswith(f"queried {len(progress)}/{len(progress)}")


# --------------------------------------------------------------------------- bad input


def _one_line(exc: SourceError) -> str:
    message = str(exc)
    assert message
    assert "\n" not in message
    return message


def test_window_with_no_data_is_exit_4(prometheus: PrometheusServer) -> None:
    long_before_start = time.time() - 7200  # Prometheus has no samples that old

    with pytest.raises(SourceError) as info:
        query_prometheus(prometheus.url, window_seconds=60, at=long_before_start)

    assert info.value.exit_code == 4
    message = _one_line(info.value)
    assert "no hypoprobe series" in message
    assert "check that it scrapes" in message


def test_prometheus_error_is_exit_3(prometheus: PrometheusServer) -> None:
    # A window of three million years: Prometheus answers 400 "duration out of range".
    with pytest.raises(SourceError) as info:
        query_prometheus(prometheus.url, window_seconds=1e14)

    assert info.value.exit_code == 3
    message = _one_line(info.value)
    assert "HTTP 400" in message
    assert "duration out of range" in message


def test_wrong_path_is_exit_3(prometheus: PrometheusServer) -> None:
    with pytest.raises(SourceError) as info:
        query_prometheus(f"{prometheus.url}/not-prometheus", window_seconds=60)

    assert info.value.exit_code == 3
    message = _one_line(info.value)
    assert "HTTP 404" in message
    assert "base URL" in message


def test_api_paths_in_the_url_are_accepted(prometheus: PrometheusServer) -> None:
    with pytest.raises(SourceError) as info:  # reaches Prometheus: only the data is missing
        query_prometheus(f"{prometheus.url}/api/v1/query", window_seconds=60, at=1e9)

    assert info.value.exit_code == 4


def test_a_metrics_endpoint_is_not_a_prometheus_api(metrics_url: str) -> None:
    with pytest.raises(SourceError) as info:
        query_prometheus(metrics_url.removesuffix("/metrics"), window_seconds=60)

    assert info.value.exit_code == 3
    assert "not answering as a Prometheus API" in _one_line(info.value)


def test_unreachable_prometheus_is_exit_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(SourceError) as info:
        query_prometheus(url, window_seconds=60, timeout=2)

    assert info.value.exit_code == 3
    assert _one_line(info.value).startswith(f"cannot reach {url}")


def test_report_over_time_reads_the_window_interval_by_interval(
    prometheus: PrometheusServer,
    fake_clock: FakeClock,
    unique_id: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hypoprobe.cli import main

    hid, endpoint = unique_id("h"), unique_id("GET /campaigns")
    request = _traffic(fake_clock, hid, endpoint)
    request(0.7, 0.2)  # every series exists before the first interval
    s0 = _scrape_after_now(prometheus)
    for _ in range(40):
        request(0.009, 0.001)  # 10% in the probe
    s1 = _scrape_after_now(prometheus)
    _scrape_after_now(prometheus)  # a longer second interval, so the first one holds s0
    for _ in range(40):
        request(0.004, 0.006)  # 60% in the probe
    s2 = _scrape_after_now(prometheus)
    step = s2 - s1
    assert s1 - s0 < step

    out = tmp_path / "over-time.json"
    argv = ["report", "--prometheus", prometheus.url, "--window", f"{2 * step:.3f}s"]
    argv += ["--at", f"{s2:.3f}", "--over-time", "--step", f"{step:.3f}s"]
    assert main([*argv, "--hypothesis", hid, "-o", str(out)]) == 0, capsys.readouterr().err
    html = tmp_path / "over-time.html"
    assert main([*argv, "--hypothesis", hid, "-o", str(html)]) == 0
    page = html.read_text(encoding="utf-8")
    assert 'class="plot timeline"' in page
    assert page.count('class="share-dot"') == 2
    shares = [float(x) for x in re.findall(r'class="share-dot"[^>]*><title>([\d.]+)%', page)]
    assert shares[0] == pytest.approx(10, abs=2)
    assert shares[1] == pytest.approx(60, abs=2)
