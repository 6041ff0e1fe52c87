"""Before and after a fix: latency change, its significance, and the share, against truth."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

import hypoprobe
import scenarios
from hypoprobe import analysis
from hypoprobe.analysis import NoDataError, Sample
from hypoprobe.model import Snapshot
from scenarios import NS, Request


def _fixed(reqs: tuple[Request, ...], speedup: float) -> list[Request]:
    """The same requests after the probed code became ``speedup`` times faster."""
    out = []
    for r in reqs:
        calls = tuple(max(1, round(c / speedup)) for c in r.calls_ns)
        out.append(Request(r.endpoint_ns - r.probe_ns + sum(calls), calls))
    return out


def _windows(
    hid: str, endpoint: str, before: list[Request], after: list[Request]
) -> tuple[Snapshot, Snapshot]:
    with scenarios.scripted_clock() as clock:
        start = hypoprobe.snapshot()
        scenarios.replay(before, hid, endpoint, clock)
        middle = hypoprobe.snapshot()
        scenarios.replay(after, hid, endpoint, clock)
        end = hypoprobe.snapshot()
    return middle.minus(start), end.minus(middle)


def _mean(reqs: list[Request]) -> float:
    return sum(r.endpoint_ns for r in reqs) / len(reqs) / NS


def _share(reqs: list[Request]) -> float:
    return sum(r.probe_ns for r in reqs) / sum(r.endpoint_ns for r in reqs)


def test_a_real_fix_is_measured_and_significant(unique_id: Callable[[str], str]) -> None:
    story = scenarios.slow_segment(5)
    hid, ep = unique_id("h"), unique_id("GET /dashboard")
    scenarios.register(story, hid, ep)
    before = list(story.requests)
    after = _fixed(scenarios.slow_segment(6).requests, speedup=10)
    b, a = _windows(hid, ep, before, after)

    (c,) = analysis.compare(b, a, hypotheses=[hid]).comparisons
    assert (c.requests_before, c.requests_after) == (len(before), len(after))
    assert c.endpoint_mean_before == pytest.approx(_mean(before), rel=1e-9)
    assert c.endpoint_mean_after == pytest.approx(_mean(after), rel=1e-9)
    assert c.endpoint_mean_change == pytest.approx(
        (_mean(after) - _mean(before)) / _mean(before), rel=1e-9
    )
    assert c.endpoint_mean_change is not None
    assert c.endpoint_mean_change < -0.1
    assert c.mean_change_significant is True
    assert c.mean_change_p_value is not None
    assert c.mean_change_p_value < 0.001
    assert c.share_before == pytest.approx(_share(before), abs=0.005)
    assert c.share_after == pytest.approx(_share(after), abs=0.005)
    assert c.share_change_significant is True
    for q, x, y in (
        (0.5, c.endpoint_p50_before, c.endpoint_p50_after),
        (0.99, c.endpoint_p99_before, c.endpoint_p99_after),
    ):
        for got, reqs in ((x, before), (y, after)):
            ordered = sorted(r.endpoint_ns / NS for r in reqs)
            assert got == pytest.approx(ordered[math.ceil(q * len(ordered)) - 1], rel=0.05)
    assert c.endpoint_p99_change is not None
    assert c.endpoint_p99_change < -0.3  # the fix helps the slow tail most
    assert (c.verdict_before, c.verdict_after) == ("DISPROVED", "DISPROVED")
    assert "a significant change" in c.meaning
    assert "faster" in c.meaning


def test_same_traffic_twice_is_not_a_significant_change(
    unique_id: Callable[[str], str],
) -> None:
    story = scenarios.dominant_query(1)
    hid, ep = unique_id("h"), unique_id("GET /reports")
    scenarios.register(story, hid, ep)
    b, a = _windows(hid, ep, list(story.requests), list(story.requests))
    (c,) = analysis.compare(b, a, hypotheses=[hid]).comparisons
    assert c.endpoint_mean_change == 0
    assert c.mean_change_p_value == 1.0
    assert c.mean_change_significant is False
    assert c.share_before == c.share_after
    assert "not a significant change" in c.meaning


def test_welch_rejects_a_true_null_about_five_percent_of_the_time() -> None:
    # Two samples from one skewed distribution, 400 times: the false-positive rate of the
    # test at alpha = 5% must stay near 5% (generously: at most 10%).
    rng = random.Random(42)

    def sample(n: int) -> Sample:
        xs = [rng.lognormvariate(math.log(0.2), 0.6) for _ in range(n)]
        mean = sum(xs) / n
        return Sample(n, mean, sum((x - mean) ** 2 for x in xs) / (n - 1))

    trials = 400
    rejected = 0
    for _ in range(trials):
        w = analysis.welch(sample(200), sample(200))
        assert w is not None
        rejected += w.p_value < analysis.ALPHA
    assert rejected / trials <= 0.10
    assert rejected > 0  # a test that never rejects is not testing anything


def test_welch_on_a_worked_example() -> None:
    w = analysis.welch(Sample(100, 1.0, 0.04), Sample(100, 0.9, 0.04))
    assert w is not None
    assert w.t == pytest.approx(-0.1 / math.sqrt(0.0008))
    assert w.df == pytest.approx(198)
    assert w.p_value == pytest.approx(math.erfc(abs(w.t) / math.sqrt(2)))
    assert 0.0003 < w.p_value < 0.0005
    assert analysis.welch(Sample(1, 1.0, 0.0), Sample(100, 0.9, 0.04)) is None


def test_too_few_requests_make_no_significance_claim(unique_id: Callable[[str], str]) -> None:
    story = scenarios.too_few(2)
    hid, ep = unique_id("h"), unique_id("GET /rare")
    scenarios.register(story, hid, ep)
    b, a = _windows(hid, ep, list(story.requests), _fixed(story.requests, 4))
    (c,) = analysis.compare(b, a, hypotheses=[hid]).comparisons
    assert c.requests_before == c.requests_after == 12
    assert c.mean_change_significant is None
    assert c.share_change_significant is None
    assert "too few requests" in c.meaning


def test_compare_unknown_hypothesis_or_empty_windows_is_no_data(
    unique_id: Callable[[str], str],
) -> None:
    hid, ep = unique_id("h"), unique_id("GET /x")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)
    snap = hypoprobe.snapshot()
    with pytest.raises(NoDataError, match="unknown hypothesis NOPE-2"):
        analysis.compare(snap, snap, hypotheses=["NOPE-2"])
    with pytest.raises(NoDataError, match="no requests"):
        analysis.compare(snap, snap, hypotheses=[hid])
