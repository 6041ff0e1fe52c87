"""hypoprobe's own cost in production: the estimate's arithmetic, and where it shows.

The arithmetic is checked with a fake calibration (exact figures, no timing); the real
calibration is run once, for its plumbing only (it runs in a child interpreter and must
leave this process' storage alone). The estimate's accuracy against a measured ground
truth is a benchmark: benchmarks/bench_selfcost.py, recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import start_http_server

import hypoprobe
from hypoprobe import _selfcost, analysis, render
from hypoprobe._core import _buckets
from hypoprobe.model import EndpointData, Histogram, Moments, ProbeData, RequestData, Snapshot
from hypoprobe.otel import metrics_data
from hypoprobe.sources import scrape_metrics
from otel_helpers import one_point

FAKE = _selfcost.Costs(
    call_ns=100.0, call_outside_ns=70.0, request_ns=1_000.0, hypothesis_ns=200.0, probe_row_ns=300.0
)


@pytest.fixture
def fake_costs() -> Iterator[_selfcost.Costs]:
    before = _selfcost.costs(wait=None)
    _selfcost.set_costs(FAKE)
    try:
        yield FAKE
    finally:
        _selfcost.set_costs(before)


def _traffic(unique_id: Callable[..., str], requests: int, calls: int) -> tuple[str, str]:
    """``requests`` requests of a fresh endpoint, each calling two probes ``calls`` times
    (the second probe only in every other request), plus 3 calls outside any scope."""
    hid, ep = unique_id("H"), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)

    @hypoprobe.probe(hid, name="a")
    def a() -> None:
        pass

    @hypoprobe.probe(hid, name="b")
    def b() -> None:
        pass

    for i in range(requests):
        with hypoprobe.endpoint(ep):
            for _ in range(calls):
                a()
                if i % 2 == 0:
                    b()
    for _ in range(3):
        a()
    return hid, ep


def test_the_estimate_is_calibrated_costs_times_the_counts(
    fake_costs: _selfcost.Costs, unique_id: Callable[..., str]
) -> None:
    before = hypoprobe.snapshot()
    _, ep = _traffic(unique_id, requests=10, calls=4)
    window = hypoprobe.snapshot().minus(before)
    # 10 requests; 40 calls of a + 20 of b inside; 1 hypothesis row per request;
    # probe rows: a in 10 requests, b in 5
    expected_ns = 10 * 1_000 + 60 * 100 + 10 * 200 + 15 * 300
    assert window.self_seconds[ep] == pytest.approx(expected_ns / 1e9, rel=1e-12)
    # the 3 calls outside any scope, on top of whatever earlier tests left there
    assert window.self_seconds["<none>"] == pytest.approx(3 * 70 / 1e9, rel=1e-9)


def test_the_estimate_comes_from_the_snapshot_alone(fake_costs: _selfcost.Costs) -> None:
    assert _selfcost.estimate(Snapshot(created_at=0.0, source="empty"), FAKE) == {}
    assert _selfcost.estimate(Snapshot(created_at=0.0, source="x"), None, calibrate=False) == {}


def test_merge_sums_and_windows_subtract_the_estimate() -> None:
    a = Snapshot(created_at=1.0, source="a", self_seconds={"GET /x": 0.5, "<none>": 0.1})
    b = Snapshot(created_at=2.0, source="b", self_seconds={"GET /x": 0.25})
    merged = Snapshot.merge([a, b])
    assert merged.self_seconds == {"GET /x": 0.75, "<none>": 0.1}
    assert merged.minus(a).self_seconds == {"GET /x": 0.25, "<none>": 0.0}
    assert Snapshot.from_json(merged.to_json()) == merged
    # documents written before the estimate existed read as "no estimate"
    old = json.loads(a.to_json())
    del old["self_seconds"]
    assert Snapshot.from_dict(old).self_seconds == {}


def test_the_report_says_what_the_probes_cost_the_endpoint_in_every_format(
    fake_costs: _selfcost.Costs, unique_id: Callable[..., str]
) -> None:
    before = hypoprobe.snapshot()
    hid, ep = _traffic(unique_id, requests=40, calls=2)
    window = hypoprobe.snapshot().minus(before)
    (v,) = analysis.report(window, hypotheses=[hid]).verdicts
    endpoint_seconds = window.endpoint(ep).duration.sum  # type: ignore[union-attr]
    assert v.self_seconds == window.self_seconds[ep]
    assert v.self_share == pytest.approx(window.self_seconds[ep] / endpoint_seconds)
    line = f"probes cost {analysis._text.pct(v.self_share)} of {ep}"
    for fmt in ("table", "markdown", "html"):
        assert line in render.render_report(analysis.report(window, hypotheses=[hid]), fmt), fmt
    doc = json.loads(render.render_report(analysis.report(window, hypotheses=[hid]), "json"))
    assert doc["verdicts"][0]["self_share"] == pytest.approx(v.self_share)
    assert doc["verdicts"][0]["self_seconds"] == pytest.approx(v.self_seconds)


def test_without_an_estimate_the_report_has_no_line(unique_id: Callable[..., str]) -> None:
    before = hypoprobe.snapshot()
    hid, _ = _traffic(unique_id, requests=5, calls=1)
    window = hypoprobe.snapshot().minus(before)
    bare = Snapshot.from_dict({**window.to_dict(), "self_seconds": {}})
    (v,) = analysis.report(bare, hypotheses=[hid]).verdicts
    assert v.self_share is None
    assert v.self_seconds is None
    assert "probes cost" not in render.render_report(analysis.report(bare), "table")


def test_metrics_and_both_exports_carry_the_estimate(
    fake_costs: _selfcost.Costs, unique_id: Callable[..., str]
) -> None:
    _, ep = _traffic(unique_id, requests=6, calls=1)
    server, thread = start_http_server(0, addr="127.0.0.1")
    try:
        scraped = scrape_metrics([f"http://127.0.0.1:{server.server_port}/metrics"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    local = hypoprobe.snapshot()
    assert scraped.self_seconds[ep] == local.self_seconds[ep]  # exact: floats go out as repr
    point = one_point(metrics_data(local), "hypoprobe_self_seconds", **{"http.route": ep})
    assert point.value == local.self_seconds[ep]


def test_the_real_calibration_runs_apart_and_leaves_this_process_alone() -> None:
    before = {e.endpoint for e in hypoprobe.snapshot().endpoints}
    costs = _selfcost._calibrate_in_child()
    for name in ("call_ns", "call_outside_ns", "request_ns", "hypothesis_ns", "probe_row_ns"):
        value = getattr(costs, name)
        assert math.isfinite(value), name
        assert value >= 0, name
    after = {e.endpoint for e in hypoprobe.snapshot().endpoints}
    assert not {e for e in after - before if e.startswith("selfcost")}
    # a fixed calibration, as HYPOPROBE_SELF_COST takes it, reads back the same
    assert _selfcost.Costs.from_dict(json.loads(_selfcost.as_json(costs))) == costs


@pytest.mark.parametrize(
    ("setting", "shown"),
    [("off", False), (_selfcost.as_json(FAKE), True), ('{"call_ns": -1}', True)],
)
def test_hypoprobe_self_cost_turns_it_off_or_fixes_it(setting: str, shown: bool) -> None:
    code = (
        "import hypoprobe, json\n"
        "from hypoprobe import _selfcost\n"
        "with hypoprobe.endpoint('GET /x'):\n"
        "    pass\n"
        "_selfcost.costs(wait=None)\n"
        "print(json.dumps(dict(hypoprobe.snapshot().self_seconds)))\n"
    )
    env = {**os.environ, "HYPOPROBE_SELF_COST": setting}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert ("GET /x" in figures) is shown
    if setting.startswith('{"call_ns": -1'):  # not a calibration: warned, then measured
        assert "is not a calibration" in done.stderr
    elif shown:
        assert figures["GET /x"] == pytest.approx(FAKE.request_ns / 1e9)


_counts = st.integers(min_value=0, max_value=10**9)


def _snapshot_of(requests: int, calls: int, outside: int, rows: int, called: int) -> Snapshot:
    d = _buckets.DURATION.natural_bounds
    c = _buckets.CALLS.natural_bounds

    def hist(bounds: tuple[float, ...], first: int, rest: int) -> Histogram:
        return Histogram(bounds, (first, rest, *([0] * (len(bounds) - 1))), 0.0)

    return Snapshot(
        created_at=0.0,
        source="counts",
        endpoints=(EndpointData("GET /p", hist(d, 0, requests)),),
        probes=(
            ProbeData("P-1", "q", "GET /p", hist(d, 0, calls)),
            ProbeData("P-1", "q", "<none>", hist(d, outside, 0)),
        ),
        moments=(Moments("P-1", "GET /p", False, requests=rows),),
        requests=(
            RequestData(
                "P-1", "q", "GET /p", hist(d, 0, 0), hist(d, 0, 0), hist(d, 0, 0),
                hist(c, rows - called, called),
            ),
        ),
    )  # fmt: skip


@given(
    st.tuples(_counts, _counts, _counts, _counts, _counts),
    st.tuples(_counts, _counts, _counts, _counts, _counts),
)
def test_the_estimate_of_merged_processes_is_the_sum_of_theirs(
    a: tuple[int, ...], b: tuple[int, ...]
) -> None:
    def snap(t: tuple[int, ...]) -> Snapshot:
        requests, calls, outside, rows, called = t
        return _snapshot_of(requests, calls, outside, rows + called, called)

    merged = _selfcost.estimate(Snapshot.merge([snap(a), snap(b)]), FAKE)
    apart = [_selfcost.estimate(snap(t), FAKE) for t in (a, b)]
    for endpoint in set(merged) | {k for e in apart for k in e}:
        total = sum(e.get(endpoint, 0.0) for e in apart)
        assert merged.get(endpoint, 0.0) == pytest.approx(total, rel=1e-12, abs=1e-15)
    requests, calls, outside, rows, called = a
    alone = apart[0]
    expected = requests * 1_000 + calls * 100 + (rows + called) * 200 + called * 300
    assert alone.get("GET /p", 0.0) == pytest.approx(expected / 1e9, rel=1e-12)
    assert alone.get("<none>", 0.0) == pytest.approx(outside * 70 / 1e9, rel=1e-12)


def test_a_failed_calibration_is_counted_and_leaves_the_figure_out(
    monkeypatch: pytest.MonkeyPatch, unique_id: Callable[..., str]
) -> None:
    def broken() -> _selfcost.Costs:
        raise RuntimeError("exit status 1: no interpreter")

    before = _selfcost.costs(wait=None)
    monkeypatch.delenv("HYPOPROBE_SELF_COST")
    monkeypatch.setattr(_selfcost, "_calibrate_in_child", broken)
    faults = hypoprobe.snapshot().internal_errors.get("self_cost_calibration", 0)
    _selfcost.set_costs(None)
    try:
        assert _selfcost.costs(wait=None) is None
        _, ep = _traffic(unique_id, requests=3, calls=1)
        snap = hypoprobe.snapshot()
        assert ep not in snap.self_seconds
        assert snap.internal_errors["self_cost_calibration"] == faults + 1
        assert _selfcost.costs(wait=None) is None  # not retried
    finally:
        _selfcost.set_costs(before)


def test_under_an_embedding_server_no_foreign_binary_is_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "/usr/bin/uwsgi")
    monkeypatch.setattr(sys, "_base_executable", "/usr/bin/uwsgi", raising=False)
    with pytest.raises(RuntimeError, match="no Python interpreter to calibrate with"):
        _selfcost._calibrate_in_child()


def test_the_calibration_process_gets_only_the_settings_that_change_costs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYPOPROBE_CONFIG", "/etc/app/perf.toml")
    monkeypatch.setenv("HYPOPROBE_MULTIPROC_DIR", "/run/app/hypoprobe")
    monkeypatch.setenv("HYPOPROBE_RUN_DIR", "/run/app/status")
    monkeypatch.setenv("HYPOPROBE_EXEMPLARS", "0")
    env = _selfcost._calibration_env()
    assert env["HYPOPROBE_EXEMPLARS"] == "0"
    assert "PATH" in env
    for name in ("HYPOPROBE_CONFIG", "HYPOPROBE_MULTIPROC_DIR", "HYPOPROBE_RUN_DIR"):
        assert name not in env
    assert "HYPOPROBE_SELF_COST" not in env
