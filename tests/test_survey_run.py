"""``hypoprobe run --survey -- gunicorn ...`` on an application that never imports hypoprobe,
then ``hypoprobe survey --metrics-url``: the real hot statement of each endpoint on top."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers import free_port, require_prometheus, start_prometheus
from test_run import APPS, Launched, _get, _need

pytestmark = pytest.mark.slow


def _survey(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hypoprobe", "survey", "--metrics-url", url, *extra],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_survey_under_gunicorn_names_the_hot_statements(tmp_path: Path) -> None:
    _need("gunicorn")
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "app:app",
    ]
    with Launched(
        tmp_path, APPS / "surveyapp", ["--survey", "--survey-modules", "helpers"], command
    ) as run:
        run.wait_http(f"{base}/items/1")
        for i in range(40):
            _get(f"{base}/report")
            _get(f"{base}/items/{80 + i % 10}")
        done = _survey(run.url, "--format", "json")
        assert done.returncode == 0, done.stderr + run.err()
        doc = json.loads(done.stdout)
        table = _survey(run.url)
        proposed = _survey(run.url, "--propose")
        run.stop()
    assert doc["schema"] == "hypoprobe.survey/1"
    by_endpoint = {e["endpoint"]: e for e in doc["endpoints"]}
    report = by_endpoint["GET /report"]
    assert report["requests"] >= 40
    top = report["candidates"][0]
    assert top["kind"] == "sql"
    assert top["probe"].startswith("WITH RECURSIVE c(x) AS (SELECT ? UNION ALL")
    assert top["share"] > 0.5
    assert top["ci_low"] <= top["share"] <= top["ci_high"]
    items = by_endpoint["GET /items/{n}"]
    top_two = {c["probe"] for c in items["candidates"][:2]}
    assert top_two == {"SELECT name FROM items WHERE id = ?", "helpers:render"}
    first = next(c for c in items["candidates"] if c["probe"].startswith("SELECT name"))
    # The N+1 loop, 80 to 89 per request: enough that one preemption landing in the LIMIT
    # query (on a machine shared with other jobs) cannot outrank it.
    assert 80 <= first["calls_per_request_mean"] <= 90
    assert first["n_plus_one"]
    # The slow formatter, called through its module (`helpers.render`), surveyed too.
    rendered = next(c for c in items["candidates"] if c["probe"] == "helpers:render")
    assert rendered["kind"] == "function"
    assert rendered["calls_per_request_mean"] == 1.0
    assert "WITH RECURSIVE" in table.stdout
    assert "N+1" in table.stdout
    assert proposed.returncode == 0, proposed.stderr
    assert 'endpoint = "GET /report"' in proposed.stdout


def test_hypoprobe_survey_reads_prometheus(tmp_path: Path) -> None:
    _need("gunicorn")
    require_prometheus()
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "app:app",
    ]
    with Launched(tmp_path, APPS / "surveyapp", ["--survey"], command) as run:
        run.wait_http(f"{base}/items/1")
        for i in range(6):  # every candidate's series exists before the window opens
            _get(f"{base}/report")
            _get(f"{base}/items/{80 + i}")
        target = run.url.removeprefix("http://").removesuffix("/metrics")
        with start_prometheus(tmp_path / "prom", {"app": [target]}) as prom:
            prom.wait_for_up("app")
            prom.wait_for_scrape_after(time.time(), "app")
            start = time.time()
            for i in range(30):
                _get(f"{base}/report")
                _get(f"{base}/items/{80 + i % 10}")
            prom.wait_for_scrape_after(time.time() + 0.5, "app")
            # The window ends now, not when the command has started (a second or more
            # later on a busy machine, which would move its start past the first sample).
            at = time.time()
            window = f"{at - start + 1:.0f}s"
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hypoprobe",
                    "survey",
                    "--prometheus",
                    prom.url,
                    "--window",
                    window,
                    "--at",
                    f"{at:.3f}",
                    "--format",
                    "json",
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
        run.stop()
    assert done.returncode == 0, done.stderr
    by_endpoint = {e["endpoint"]: e for e in json.loads(done.stdout)["endpoints"]}
    # increase() over the window extrapolates to its edges: counts are approximate
    # (more so when scrapes are late on a busy machine); the shares are ratios.
    assert by_endpoint["GET /report"]["requests"] >= 25
    assert by_endpoint["GET /report"]["candidates"][0]["probe"].startswith("WITH RECURSIVE")
    first = by_endpoint["GET /items/{n}"]["candidates"][0]
    assert first["probe"] == "SELECT name FROM items WHERE id = ?"
    assert 80 <= first["calls_per_request_mean"] <= 90
