"""The three sources agree: a snapshot file, a live /metrics scrape and a real Prometheus
server (Debian's, started on 127.0.0.1) give the same verdict on the same traffic.

The Prometheus window is taken from the scrapes' own timestamps — it starts at a scrape
after every series existed and before the traffic, and ends at the first scrape after it —
so ``increase()`` needs no extrapolation and counts exactly the replayed requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import start_http_server

import hypoprobe
import scenarios
from hypoprobe.cli import EXIT_OK, main
from servers import PrometheusServer, free_port, require_prometheus, start_prometheus

pytestmark = pytest.mark.real_server

JOB = "app"


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
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
    with start_prometheus(
        tmp_path_factory.mktemp("prometheus"), {JOB: [target]}, scrape_interval="1s"
    ) as prom:
        prom.wait_for_up(JOB)  # the first scrape comes ~5 s after start
        yield prom


def _scrape_after_now(prom: PrometheusServer) -> float:
    prom.wait_for_scrape_after(time.time(), JOB, timeout=15)
    (series,) = prom.query(f'timestamp(up{{job="{JOB}"}})')
    return float(series["value"][1])


def _verdict(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code = main([*argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    (v,) = json.loads(out)["verdicts"]
    verdict: dict[str, object] = v
    return verdict


def test_snapshot_scrape_and_prometheus_give_the_same_verdict(
    prometheus: PrometheusServer,
    metrics_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    unique_id: Callable[[str], str],
) -> None:
    story = scenarios.slow_segment(8, 1500)
    hid, ep = unique_id("h"), unique_id("GET /dashboard")
    scenarios.register(story, hid, ep)
    warm_up, traffic = story.requests[:1], story.requests[1:]
    with scenarios.scripted_clock() as clock:
        # One request creates every series, so each has a sample before the window.
        scenarios.replay(warm_up, hid, ep, clock, story.probe_name)
        start = _scrape_after_now(prometheus)
        before = hypoprobe.snapshot()
        scenarios.replay(traffic, hid, ep, clock, story.probe_name)
        after = hypoprobe.snapshot()
    end = _scrape_after_now(prometheus)
    window = tmp_path / "window.json"
    window.write_text(after.minus(before).to_json())

    from_file = _verdict(capsys, "report", "--snapshot", str(window), "--hypothesis", hid)
    scraped = _verdict(capsys, "report", "--metrics-url", metrics_url, "--hypothesis", hid)
    queried = _verdict(
        capsys,
        "report",
        "--prometheus",
        prometheus.url,
        "--window",
        f"{end - start:.3f}s",
        "--at",
        f"{end:.3f}",
        "--hypothesis",
        hid,
    )

    truth = sum(r.probe_ns for r in traffic) / sum(r.endpoint_ns for r in traffic)
    slow_truth = scenarios.Scenario(
        "", ep, "", story.min_share, tuple(traffic), "", slow_threshold=story.slow_threshold
    ).true_slow_share()
    assert from_file["requests"] == queried["requests"] == len(traffic)
    assert scraped["requests"] == len(story.requests)  # totals since start
    for v in (from_file, scraped, queried):
        assert v["verdict"] == story.expected_verdict == "DISPROVED"
        assert v["aggregate_share"] == pytest.approx(truth, abs=0.005)
        assert v["slow_share"] == pytest.approx(slow_truth, abs=0.005)
        assert v["min_share"] == story.min_share
        assert v["anecdote_share"] == pytest.approx(0.64)
    for key in ("aggregate_share", "ci_low", "ci_high", "slow_share"):
        assert queried[key] == pytest.approx(from_file[key], rel=1e-9)
