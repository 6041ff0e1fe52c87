"""The network sources against malformed input: URLs, times and windows that cannot be used,
and Prometheus answers of the wrong shape. Each is a one-line ``SourceError``, or a usable
snapshot, never another exception.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from hypoprobe import analysis, render
from hypoprobe.sources import (
    EXIT_NO_DATA,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    SourceError,
    query_prometheus,
    scrape_metrics,
)
from readside import fixed_json, serving


@pytest.mark.parametrize(
    "url",
    ["http://[::1/x", "[::1", "https://[::1/", "127.0.0.1:99999", "http://h:abc/", "http://:80/"],
)
def test_malformed_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(SourceError) as scrape:
        scrape_metrics([url])
    assert scrape.value.exit_code == EXIT_USAGE
    with pytest.raises(SourceError) as prom:
        query_prometheus(url, 60.0)
    assert prom.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("at", [math.inf, -math.inf, math.nan, 1e20, -1.0])
def test_times_prometheus_cannot_be_asked_for_are_usage_errors(at: float) -> None:
    with pytest.raises(SourceError) as exc:
        query_prometheus("http://127.0.0.1:9", 60.0, at=at)
    assert exc.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("window", [1e10, math.inf, math.nan, -5.0, 0.0])
def test_windows_that_cannot_be_waited_for_are_usage_errors(window: float) -> None:
    with pytest.raises(SourceError) as scrape:
        scrape_metrics(["http://127.0.0.1:9/metrics"], window_seconds=window)
    assert scrape.value.exit_code == EXIT_USAGE
    if window == 1e10:
        return  # a range Prometheus itself judges (it answers 400 beyond its limit: exit 3)
    with pytest.raises(SourceError) as prom:
        query_prometheus("http://127.0.0.1:9", window)
    assert prom.value.exit_code == EXIT_USAGE


def _answer(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


@pytest.mark.parametrize(
    "doc",
    [
        _answer([1]),
        _answer("vector"),
        _answer(None),
        _answer({"resultType": "vector", "result": 5}),
        _answer({"resultType": "vector", "result": {"a": 1}}),
        _answer({"resultType": "matrix", "result": []}),
        {"status": "error", "errorType": ["x"], "error": {"deep": [[[]]]}},
        {"status": 7},
        [1, 2, 3],
    ],
    ids=repr,
)
def test_prometheus_answers_of_the_wrong_shape_are_source_errors(doc: Any) -> None:
    with serving(fixed_json(doc)) as server, pytest.raises(SourceError) as exc:
        query_prometheus(server.url, 60.0, timeout=10.0)
    assert exc.value.exit_code == EXIT_UNREACHABLE
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "series",
    [
        [{"metric": [], "value": [1, "5"]}],
        [{"metric": {"hypothesis": ["H"]}, "value": [1, "5"]}],
        [{"metric": {}, "value": "5"}],
        [{"metric": {}, "value": [1]}],
        [{"metric": {}, "value": [1, "NaN"]}, {"metric": {}, "value": [1, "+Inf"]}],
        [5, None, "x", []],
    ],
    ids=repr,
)
def test_series_of_the_wrong_shape_are_skipped(series: list[Any]) -> None:
    doc = _answer({"resultType": "vector", "result": series})
    with serving(fixed_json(doc)) as server, pytest.raises(SourceError) as exc:
        query_prometheus(server.url, 60.0, timeout=10.0)
    assert exc.value.exit_code == EXIT_NO_DATA  # nothing usable: no hypoprobe series


#: One series that every query gets back: its labels cover every family, and histogram
#: queries find only the +Inf bucket, as from a Prometheus that dropped the others.
_ONLY_INF = {
    "hypothesis": "REL-INF",
    "probe": "p",
    "endpoint": "GET /inf",
    "le": "+Inf",
    "slow": "false",
    "segment": "",
    "claim": "p dominates GET /inf",
    "min_share": "0.3",
    "status": "2xx",
    "exception": "",
    "kind": "x",
}


def test_a_prometheus_with_only_the_inf_bucket_gives_verdicts_without_quantiles() -> None:
    doc = _answer({"resultType": "vector", "result": [{"metric": _ONLY_INF, "value": [1, "50"]}]})
    with serving(fixed_json(doc)) as server:
        snap = query_prometheus(server.url, 60.0, timeout=10.0)
    rep = analysis.report(snap)
    (v,) = rep.verdicts
    assert v.requests == 50
    assert v.endpoint_p95 is None
    assert v.calls_per_request_p95 is None
    for fmt in render.FORMATS:
        render.render_report(rep, fmt)
        render.render_comparison(analysis.compare(snap, snap), fmt)


_HIST = {"count": "10", "sum": "1.5", "buckets": [[0, "0.001", "0.002", "10"]]}


@pytest.mark.parametrize(
    "series",
    [
        [{"metric": _ONLY_INF, "histogram": "x"}],
        [{"metric": _ONLY_INF, "histogram": [1, "x"]}],
        [{"metric": _ONLY_INF, "histogram": [1, {**_HIST, "buckets": "x"}]}],
        [{"metric": _ONLY_INF, "histogram": [1, {**_HIST, "buckets": [[0, "a", "b"]]}]}],
        [{"metric": _ONLY_INF, "histogram": [1, {**_HIST, "buckets": [[0, "NaN", "+Inf", "5"]]}]}],
        [{"metric": _ONLY_INF, "histogram": [1, {**_HIST, "buckets": [[0, "-Inf", "-1", "5"]]}]}],
        [{"metric": _ONLY_INF, "histogram": [1, {**_HIST, "count": "NaN"}]}],
        [{"metric": [], "histogram": [1, _HIST]}],
        [{"metric": {"endpoint": 5}, "histogram": [1, _HIST]}],
        [{"metric": _ONLY_INF, "histogram": [1, {**_HIST, "buckets": [[0, "1", "2", "1e400"]]}]}],
    ],
    ids=repr,
)
def test_native_histogram_answers_of_the_wrong_shape_do_not_escape(series: list[Any]) -> None:
    # Every query (float and native) gets the same answer: each parser sees what it can use.
    doc = _answer({"resultType": "vector", "result": series})
    error: SourceError | None
    with serving(fixed_json(doc)) as server:
        try:
            snap = query_prometheus(server.url, 60.0, timeout=10.0)
        except SourceError as exc:
            error = exc
        else:
            error = None
    if error is not None:
        assert error.exit_code in (EXIT_UNREACHABLE, EXIT_NO_DATA)
        return
    try:
        rep = analysis.report(snap)
    except analysis.NoDataError:
        return
    for fmt in render.FORMATS:
        render.render_report(rep, fmt)
