"""The plots' arithmetic: 1-2-5 ticks, log ticks, time ticks, clipped markers and bands."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

from hypothesis import assume, given
from hypothesis import strategies as st

import hypoprobe
import scenarios
from hypoprobe import analysis, render
from hypoprobe.analysis._text import seconds
from hypoprobe.render._svg import (
    Band,
    Bar,
    Marker,
    Point,
    Series,
    histogram,
    linear_ticks,
    log_ticks,
    time_ticks,
    timeline,
    y_ticks,
)


def _mantissa(step: float) -> float:
    m = step / 10 ** math.floor(math.log10(step) + 1e-9)
    return next((c for c in (1.0, 2.0, 5.0, 10.0) if math.isclose(m, c, rel_tol=1e-6)), m) % 9


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
)
def test_linear_ticks_are_even_1_2_5_steps_inside_the_range(lo: float, span: float) -> None:
    assume(span > abs(lo) * 1e-9)  # a range a float can still cut into steps
    hi = lo + span
    ticks = linear_ticks(lo, hi)
    assert 2 <= len(ticks) <= 11
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    step = ticks[1] - ticks[0]
    assert all(math.isclose(s, step, rel_tol=1e-6, abs_tol=1e-9) for s in steps)
    assert _mantissa(step) in (1.0, 2.0, 5.0)
    assert all(lo - step * 1e-3 <= t <= hi + step * 1e-3 for t in ticks)


@given(st.floats(min_value=1e-9, max_value=10.0))
def test_y_ticks_start_at_zero_and_cover_the_tallest_bar(tallest: float) -> None:
    ticks = y_ticks(tallest)
    assert ticks[0] == 0
    assert ticks[-1] >= tallest * (1 - 1e-9)
    assert 3 <= len(ticks) <= 6
    assert _mantissa(ticks[1]) in (1.0, 2.0, 5.0)


@given(st.floats(min_value=1e-7, max_value=100.0), st.floats(min_value=1.5, max_value=1e6))
def test_log_ticks_are_1_2_5_of_each_decade(lo: float, ratio: float) -> None:
    hi = lo * ratio
    ticks = log_ticks(lo, hi)
    assert len(ticks) <= 9
    assert all(lo <= t <= hi * 1.0001 for t in ticks)
    assert {_mantissa(t) for t in ticks} <= {1.0, 2.0, 3.0, 5.0}
    if ratio >= 10:
        assert len(ticks) >= 1


def test_log_ticks_examples() -> None:
    assert log_ticks(0.0008, 0.03) == [0.001, 0.002, 0.005, 0.01, 0.02]
    assert [seconds(t) for t in log_ticks(4e-4, 0.2)] == [
        "500 µs", "1 ms", "2 ms", "5 ms", "10 ms", "20 ms", "50 ms", "100 ms", "200 ms",
    ]  # fmt: skip


def test_time_ticks_fall_on_round_times() -> None:
    ticks = time_ticks(1_790_000_007.0, 1_790_000_250.0)
    assert ticks == [1_790_000_040.0, 1_790_000_100.0, 1_790_000_160.0, 1_790_000_220.0]
    hours = time_ticks(1_790_000_000.0, 1_790_000_000.0 + 6 * 3600)
    assert all(t % 3600 == 0 for t in hours)


def _plot(markers: list[Marker], **kw: object) -> str:
    bars = [Bar(0.002, 0.004, 0.5), Bar(0.004, 0.008, 0.49), Bar(0.008, 0.016, 0.01)]
    return histogram(
        "Latency",
        bars,
        markers,
        x_range=(0.001, 0.02),
        x_label="endpoint time",
        x_format=seconds,
        log_x=True,
        **kw,  # type: ignore[arg-type]
    )


def test_a_marker_beyond_the_axis_is_an_arrow_at_the_edge_with_its_value() -> None:
    svg = _plot([Marker(1.5, "anecdote 1.5 s", "anecdote"), Marker(0.005, "mean 5 ms", "mean")])
    (clipped,) = re.findall(r'<g class="marker clipped anecdote-marker">(.*?)</g>', svg, re.S)
    assert "<polygon" in clipped
    assert "anecdote 1.5 s (off the axis)" in clipped
    assert 'x1="580.0"' in clipped  # at the right edge of the plot, not beyond
    assert svg.count("clipped") == 2  # the group and its dotted line; the mean is inside
    left = _plot([Marker(1e-6, "fast", "anecdote")])
    assert 'class="marker clipped' in left
    assert 'text-anchor="start">fast (off the axis)' in left


def test_labels_ticks_band_and_tiny_bars() -> None:
    svg = _plot([], bands=[Band(0.003, 0.006, "95% interval")])
    assert 'class="label x-label"' in svg
    assert 'class="label y-label"' in svg
    assert [t for t in re.findall(r'class="tick x-tick"[^>]*>([^<]+)<', svg)] == [
        "1 ms", "2 ms", "5 ms", "10 ms", "20 ms",
    ]  # fmt: skip
    assert re.findall(r'class="tick y-tick"[^>]*>([^<]+)<', svg) == ["0%", "20%", "40%", "60%"]
    assert '<rect class="band"' in svg
    assert ">1.0%</text>" in svg  # the 1% bin says its value, it is not a sliver


def test_overlaid_series_share_one_scale_and_a_legend() -> None:
    before = Series("before", [Bar(0.002, 0.004, 0.8)], "bar-before")
    after = Series("after", [Bar(0.001, 0.002, 0.4)], "bar-after")
    svg = histogram(
        "before and after",
        [before, after],
        x_range=(0.0005, 0.01),
        x_label="t",
        x_format=seconds,
        log_x=True,
    )
    heights = {
        c: float(h) for c, h in re.findall(r'<rect class="(bar-\w+)" [^>]*height="([\d.]+)"', svg)
    }
    assert heights["bar-after"] == 0.5 * heights["bar-before"]  # 40% is half of 80%
    assert "legend-label" in svg


def test_timeline_draws_points_band_and_claim() -> None:
    points = [Point(1.79e9 + 60 * i, 0.4 + 0.01 * i, 0.3, 0.5) for i in range(4)]
    svg = timeline("Share over time", points, claim=0.5, claim_label="claim 50%", y_label="s")
    assert svg.count('class="share-dot"') == 4
    assert '<polygon class="band"' in svg
    assert "claim 50%" in svg
    assert 'class="label x-label"' in svg


def test_a_verdict_without_data_still_renders_its_plots() -> None:
    hid = "SVG-EMPTY"
    scenarios.run(scenarios.too_few(2), hid, "GET /svg-empty")
    rep = analysis.report(hypoprobe.snapshot(), hypotheses=[hid])
    empty = dataclasses.replace(
        rep.verdicts[0],
        requests=0,
        aggregate_share=None,
        ci_low=None,
        ci_high=None,
        anecdote_share=None,
        anecdote_percentile=None,
        anecdote_endpoint_seconds=None,
        share_histogram=None,
        endpoint_histogram=None,
        calls_histogram=None,
    )
    page = render.render_report(dataclasses.replace(rep, verdicts=(empty,)), "html")
    assert page.count('<svg class="plot ') == 3
    assert "NaN" not in page
    assert "inf" not in page.lower().replace("info", "")
