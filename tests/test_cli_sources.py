"""The three sources agree: a snapshot file, a live /metrics scrape and a real Prometheus
server (Debian's, started on 127.0.0.1) give the same verdict on the same traffic.

The traffic runs in a separate application process (tests/scenarios.py ``app_process``),
as in production, so the scrape sees only that process's series. The Prometheus window is
taken from the scrapes' own timestamps — it starts at a scrape after every series existed
and before the traffic, and ends at the first scrape after it — so ``increase()`` needs no
extrapolation and counts exactly the replayed requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import scenarios
from hypoprobe.cli import EXIT_OK, main
from scenarios import App
from servers import PrometheusServer, require_prometheus, start_prometheus

pytestmark = pytest.mark.real_server

JOB = "app"
N = 1500
SEED = 8


@pytest.fixture
def app(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[tuple[App, str, str]]:
    hid, endpoint = unique_id("h"), unique_id("GET /dashboard")
    with scenarios.start_app(
        "slow_segment", seed=SEED, n=N, hid=hid, endpoint=endpoint, out=tmp_path / "window.json"
    ) as proc:
        yield proc, hid, endpoint


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
    app: tuple[App, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_prometheus()
    proc, hid, _ = app
    with start_prometheus(
        tmp_path / "prometheus", {JOB: [f"127.0.0.1:{proc.port}"]}, scrape_interval="1s"
    ) as prometheus:
        prometheus.wait_for_up(JOB)  # the first scrape comes ~5 s after start
        start = _scrape_after_now(prometheus)
        proc.run_traffic()
        end = _scrape_after_now(prometheus)

        from_file = _verdict(capsys, "report", "--snapshot", str(proc.snapshot))
        scraped = _verdict(capsys, "report", "--metrics-url", proc.metrics_url)
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
        # compare reads two windows of the server; the same window twice is no change.
        code = main(
            [
                "compare",
                "--prometheus",
                prometheus.url,
                "--window",
                f"{end - start:.3f}",
                "--before",
                f"{end:.3f}",
                "--after",
                f"{end:.3f}",
                "--format",
                "json",
            ]
        )
        out, err = capsys.readouterr()
        assert code == EXIT_OK, err
        (same,) = json.loads(out)["comparisons"]

    story = scenarios.slow_segment(SEED, N)
    traffic = story.requests[1:]
    truth = sum(r.probe_ns for r in traffic) / sum(r.endpoint_ns for r in traffic)
    slow_truth = scenarios.Scenario(
        "", "", "", story.min_share, traffic, "", slow_threshold=story.slow_threshold
    ).true_slow_share()
    assert from_file["hypothesis"] == scraped["hypothesis"] == queried["hypothesis"] == hid
    assert from_file["requests"] == queried["requests"] == len(traffic)
    assert scraped["requests"] == N  # totals since the process started: with the warm-up
    for v in (from_file, scraped, queried):
        assert v["verdict"] == story.expected_verdict == "DISPROVED"
        assert v["aggregate_share"] == pytest.approx(truth, abs=0.005)
        assert v["slow_share"] == pytest.approx(slow_truth, abs=0.005)
        assert v["min_share"] == story.min_share
        assert v["anecdote_share"] == pytest.approx(0.64)
    for key in ("aggregate_share", "ci_low", "ci_high", "slow_share"):
        assert queried[key] == pytest.approx(from_file[key], rel=1e-9)
    assert same["hypothesis"] == hid
    assert same["requests_before"] == same["requests_after"] == len(traffic)
    assert same["endpoint_mean_change"] == 0
    assert same["mean_change_significant"] is False
    assert same["share_before"] == same["share_after"] == pytest.approx(truth, abs=0.005)
