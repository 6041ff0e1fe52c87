"""Verdicts against ground truth: seeded traffic through the real recording path.

Each scenario's per-request probe and endpoint times are generated (tests/scenarios.py)
and replayed with a scripted clock, so the true aggregate share, slow share, anecdote
fraction, calls and latency percentiles are known exactly; the report must find them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

import hypoprobe
import scenarios
from hypoprobe import analysis
from hypoprobe._core import _buckets
from hypoprobe.analysis import MIN_REQUESTS, NoDataError
from hypoprobe.model import Moments
from scenarios import NS, Request, Scenario

SEEDS = (1, 2, 3)


def _judge(scenario: Scenario, hid: str, endpoint: str) -> analysis.Verdict:
    before = hypoprobe.snapshot()
    scenarios.run(scenario, hid, endpoint)
    window = hypoprobe.snapshot().minus(before)
    (verdict,) = analysis.report(window, hypotheses=[hid]).verdicts
    return verdict


def _sample_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(scenarios.ALL))
def test_verdict_matches_the_ground_truth(
    name: str, seed: int, unique_id: Callable[[str], str]
) -> None:
    scenario = scenarios.ALL[name](seed)
    reqs = scenario.requests
    v = _judge(scenario, unique_id("h"), unique_id(scenario.endpoint))

    assert v.verdict == scenario.expected_verdict
    assert v.requests == len(reqs)
    assert v.requests_with_probe == sum(1 for r in reqs if r.calls_ns)
    assert v.aggregate_share is not None
    assert abs(v.aggregate_share - scenario.true_share) < 0.005
    assert v.saving_share == pytest.approx(scenario.true_share, abs=0.005)
    assert v.saving_seconds_per_request == pytest.approx(
        sum(r.probe_ns for r in reqs) / len(reqs) / NS, rel=1e-9
    )
    assert v.calls_per_request_mean == pytest.approx(
        sum(len(r.calls_ns) for r in reqs) / len(reqs), rel=1e-12
    )
    # Calls are counted exactly; the p95 is the upper bound of the bucket holding it.
    true_calls_p95 = _sample_quantile([len(r.calls_ns) for r in reqs], 0.95)
    assert v.calls_per_request_p95 == min(b for b in _buckets.CALLS.bounds if b >= true_calls_p95)
    # Latency percentiles come from buckets at most 4.5% wide.
    endpoint_seconds = [r.endpoint_ns / NS for r in reqs]
    for q, got in ((0.5, v.endpoint_p50), (0.95, v.endpoint_p95), (0.99, v.endpoint_p99)):
        assert got == pytest.approx(_sample_quantile(endpoint_seconds, q), rel=0.05)
    calls = [c / NS for r in reqs for c in r.calls_ns]
    assert v.probe_p95 == pytest.approx(_sample_quantile(calls, 0.95), rel=0.05)
    assert v.meaning.startswith(f"{scenario.expected_verdict}: ")

    if scenario.slow_threshold is None:
        assert v.slow_share is None
        assert v.slow_requests is None
    else:
        limit = scenario.slow_threshold * NS
        assert v.slow_requests == sum(1 for r in reqs if r.endpoint_ns > limit)
        truth = scenario.true_slow_share()
        assert truth is not None
        assert v.slow_share == pytest.approx(truth, abs=0.005)


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_story_places_the_anecdote_among_all_requests(
    seed: int, unique_id: Callable[[str], str]
) -> None:
    scenario = scenarios.seed_story(seed)
    v = _judge(scenario, unique_id("h"), unique_id("GET /campaigns"))
    assert scenario.observed is not None
    anecdote = scenario.observed.share
    assert v.anecdote_share == pytest.approx(anecdote)
    # The recorded share is floor(p * 1e9 / e) parts per billion; the estimate interpolates
    # inside the bucket holding the anecdote, so it lies between the fractions of requests
    # above that bucket's upper and lower bounds.
    ppb = [r.probe_ns * 10**9 // r.endpoint_ns for r in scenario.requests]
    bounds = _buckets.SHARE.bounds
    i = _buckets.SHARE.index(round(anecdote * 10**9))
    above_upper = sum(1 for x in ppb if x > bounds[i]) / len(ppb)
    above_lower = sum(1 for x in ppb if x > bounds[i - 1]) / len(ppb)
    assert v.anecdote_percentile is not None
    assert above_upper <= v.anecdote_percentile <= above_lower
    truth = scenario.true_anecdote_fraction()
    assert truth is not None
    assert 0 < truth < 0.01  # the story: the anecdote is rare
    assert "1.2 s of 1.5 s observation was in the top" in v.meaning
    assert v.verdict == "DISPROVED"
    assert v.aggregate_share is not None
    assert v.aggregate_share < 0.15
    assert v.min_share == 0.3


def test_slow_segment_shows_a_small_overall_and_a_large_slow_share(
    unique_id: Callable[[str], str],
) -> None:
    v = _judge(scenarios.slow_segment(7), unique_id("h"), unique_id("GET /dashboard"))
    assert v.aggregate_share is not None
    assert v.slow_share is not None
    assert v.aggregate_share < 0.3
    assert v.slow_share > 0.5
    assert "slow requests (over 1 s)" in v.meaning


def test_n_plus_one_reports_many_calls_per_request(unique_id: Callable[[str], str]) -> None:
    v = _judge(scenarios.n_plus_one(4), unique_id("h"), unique_id("GET /orders"))
    assert v.calls_per_request_mean is not None
    assert 25 < v.calls_per_request_mean < 35
    assert v.probe_p95 is not None
    assert v.probe_p95 < 0.002  # each call is cheap ...
    assert v.verdict == "CONFIRMED"  # ... but together they are a large share
    assert "N+1" in v.meaning


def _constant_share_requests(n: int) -> list[Request]:
    return [Request(100_000_000 + 1_000_000 * i, (90_000_000,)) for i in range(n)]


def test_below_the_minimum_sample_it_is_always_inconclusive(
    unique_id: Callable[[str], str],
) -> None:
    scenario = Scenario(
        "minimum", "GET /min", "q dominates", 0.1, tuple(_constant_share_requests(29)), ""
    )
    hid, ep = unique_id("h"), unique_id("GET /min")
    v = _judge(scenario, hid, ep)
    assert v.requests == MIN_REQUESTS - 1
    assert v.ci_low is not None
    assert v.ci_low > 0.5  # the interval alone would confirm the claim of 10%
    assert v.verdict == "INCONCLUSIVE"
    assert v.requests_needed == 1
    assert f"at least {MIN_REQUESTS} are needed" in v.meaning

    one_more = Scenario("", "", "q dominates", 0.1, (_constant_share_requests(1)[0],), "")
    before = hypoprobe.snapshot().minus(hypoprobe.snapshot())  # an empty window
    assert before.moments_for(hid, ep).requests == 0
    with scenarios.scripted_clock() as clock:
        scenarios.replay(one_more.requests, hid, ep, clock)
    (v,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    assert v.requests == MIN_REQUESTS
    assert v.verdict == "CONFIRMED"
    assert v.requests_needed is None


def test_requests_needed_estimates_how_many_more_settle_it(
    unique_id: Callable[[str], str],
) -> None:
    # The population share is 0.675; a claim of 0.668 is too close for 100 requests.
    hid, ep = unique_id("h"), unique_id("GET /reports")
    first = scenarios.dominant_query(15, 100)
    claim = Scenario(first.name, ep, first.claim, 0.668, first.requests, "")
    v = _judge(claim, hid, ep)
    assert v.verdict == "INCONCLUSIVE"
    assert v.requests_needed is not None
    assert 100 < v.requests_needed < 5000
    assert f"about {v.requests_needed:,} more requests would settle it" in v.meaning
    # With four times the estimate the interval is half as wide again: settled.
    more = scenarios.dominant_query(16, 4 * v.requests_needed).requests
    with scenarios.scripted_clock() as clock:
        scenarios.replay(more, hid, ep, clock)
    (settled,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    assert settled.verdict == "CONFIRMED"
    assert settled.requests_needed is None


def test_the_interval_covers_the_true_share_in_at_least_90_percent_of_repetitions() -> None:
    # A fresh interpreter keeps each repetition's snapshot small and fast, whatever else
    # this test session recorded; each repetition is a window of 600 requests.
    reps = 200
    intervals = scenarios.run_coverage_in_subprocess(reps, 600)
    truth = scenarios.COVERAGE_TRUE_SHARE
    assert len(intervals) == reps
    covered = sum(1 for low, high in intervals if low <= truth <= high)
    assert covered / reps >= 0.90
    # An interval that covers by being uselessly wide would pass the line above.
    assert sum(high - low for low, high in intervals) / reps < 0.12


def test_linearised_standard_error_agrees_with_the_jackknife() -> None:
    reqs = scenarios.coverage_traffic(5, 800)
    p = [r.probe_ns / NS for r in reqs]
    e = [r.endpoint_ns / NS for r in reqs]
    n = len(reqs)
    mo = Moments(
        "h",
        "e",
        False,
        requests=n,
        requests_with_probe=n,
        probe_seconds=sum(p),
        endpoint_seconds=sum(e),
        probe_seconds_squared=sum(x * x for x in p),
        endpoint_seconds_squared=sum(x * x for x in e),
        probe_endpoint_seconds_squared=sum(x * y for x, y in zip(p, e, strict=True)),
    )
    est = analysis.estimate(mo)
    sp, se_ = sum(p), sum(e)
    loo = [(sp - pi) / (se_ - ei) for pi, ei in zip(p, e, strict=True)]
    mean_loo = sum(loo) / n
    jackknife = math.sqrt((n - 1) / n * sum((x - mean_loo) ** 2 for x in loo))
    assert est.share == pytest.approx(sp / se_)
    assert est.se == pytest.approx(jackknife, rel=0.1)


def test_estimate_without_data_has_no_share() -> None:
    est = analysis.estimate(Moments("h", "e", False))
    assert (est.share, est.ci_low, est.ci_high) == (None, None, None)
    assert analysis.requests_needed(est, 0.5) == MIN_REQUESTS


def test_unknown_hypothesis_and_endpoint_are_no_data_errors(
    unique_id: Callable[[str], str],
) -> None:
    hid, ep = unique_id("h"), unique_id("GET /x")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)
    snap = hypoprobe.snapshot()
    with pytest.raises(NoDataError, match="unknown hypothesis NOPE-1"):
        analysis.report(snap, hypotheses=["NOPE-1"])
    with pytest.raises(NoDataError, match="no hypothesis names endpoint"):
        analysis.report(snap, hypotheses=[hid], endpoint="GET /nothing")
    with pytest.raises(NoDataError, match="no requests recorded"):
        analysis.report(snap, hypotheses=[hid])


def test_an_empty_window_is_no_data(unique_id: Callable[[str], str]) -> None:
    scenario = scenarios.dominant_query(3, 50)
    hid, ep = unique_id("h"), unique_id("GET /reports")
    scenarios.run(scenario, hid, ep)
    snap = hypoprobe.snapshot()
    assert analysis.report(snap, hypotheses=[hid]).verdicts[0].requests == 50
    with pytest.raises(NoDataError, match="widen the window"):
        analysis.report(hypoprobe.snapshot().minus(snap), hypotheses=[hid])


def test_a_hypothesis_with_several_endpoints_gets_one_verdict_each(
    unique_id: Callable[[str], str],
) -> None:
    hid, ep1, ep2 = unique_id("h"), unique_id("GET /a"), unique_id("GET /b")
    hypoprobe.hypothesis(hid, claim="c", endpoint=[ep1, ep2], min_share=0.2)
    a = scenarios.dominant_query(1, 60).requests
    b = scenarios.seed_story(1, 60).requests
    with scenarios.scripted_clock() as clock:
        scenarios.replay(a, hid, ep1, clock)
        scenarios.replay(b, hid, ep2, clock)
    rep = analysis.report(hypoprobe.snapshot(), hypotheses=[hid])
    assert [(v.endpoint, v.requests) for v in rep.verdicts] == [(ep1, 60), (ep2, 60)]
    only_b = analysis.report(hypoprobe.snapshot(), hypotheses=[hid], endpoint=ep2)
    assert [v.endpoint for v in only_b.verdicts] == [ep2]


def _share_of(reqs: list[Request]) -> float:
    return sum(r.probe_ns for r in reqs) / sum(r.endpoint_ns for r in reqs)


def test_segments_get_their_own_share(unique_id: Callable[[str], str]) -> None:
    reqs = scenarios.segmented(3)
    by = {s: [r for r in reqs if r.segment == s] for s in ("enterprise", "free")}
    hid, ep = unique_id("h"), unique_id("GET /campaigns")
    only, ep2 = unique_id("h"), unique_id("GET /campaigns")
    hypoprobe.hypothesis(
        hid, claim="q is slow", endpoint=ep, min_share=0.3, segments=["enterprise", "free"]
    )
    hypoprobe.hypothesis(
        only,
        claim="q is slow for enterprise accounts",
        endpoint=ep2,
        min_share=0.3,
        segments=["enterprise"],
        segment="enterprise",
    )
    before = hypoprobe.snapshot()
    with scenarios.scripted_clock() as clock:
        scenarios.replay(reqs, hid, ep, clock)
        scenarios.replay(reqs, only, ep2, clock)
    window = hypoprobe.snapshot().minus(before)
    (v,) = analysis.report(window, hypotheses=[hid]).verdicts
    assert v.aggregate_share == pytest.approx(_share_of(reqs), abs=0.005)
    assert v.verdict == "DISPROVED"
    assert [(s.segment, s.requests) for s in v.segments] == [
        ("enterprise", len(by["enterprise"])),
        ("free", len(by["free"])),
    ]
    for seg in v.segments:
        assert seg.aggregate_share == pytest.approx(_share_of(by[seg.segment]), abs=0.005)
    assert "By segment: enterprise" in v.meaning

    # Restricted to one segment: only those requests count, and the claim holds there.
    (e,) = analysis.report(window, hypotheses=[only]).verdicts
    assert e.requests == len(by["enterprise"])
    assert e.aggregate_share == pytest.approx(_share_of(by["enterprise"]), abs=0.005)
    assert e.verdict == "CONFIRMED"
    assert e.segment == "enterprise"
    assert "(segment enterprise)" in e.meaning


def test_a_slow_threshold_no_request_reaches_is_said(unique_id: Callable[[str], str]) -> None:
    story = scenarios.dominant_query(2, 40)
    quick = Scenario("", "", story.claim, 0.5, story.requests, "CONFIRMED", slow_threshold=30.0)
    v = _judge(quick, unique_id("h"), unique_id("GET /reports"))
    assert (v.slow_requests, v.slow_share) == (0, None)
    assert "No request was slower than 30 s." in v.meaning
