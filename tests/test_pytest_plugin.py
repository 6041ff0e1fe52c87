"""The ``probe_overhead`` pytest plugin, run in real inner pytest sessions (``pytester``).

Inner sessions run in subprocesses: each gets a fresh hypoprobe and its own timings. The
budgets are far from the figures on purpose (a no-op's probe costs several times the
no-op; on a 1 ms function it is well under 1%): the tests check verdicts, never timings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hypoprobe
from hypoprobe._overhead import median_interval

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _inner_sessions_are_not_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An inner session inherits the environment: under ``pytest -n``, the worker's
    ``PYTEST_XDIST_*`` variables would make pytest-benchmark switch itself off there."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


MODULE = """
import time

import hypoprobe

hypoprobe.hypothesis(
    "GUARD-1", claim="the probe is cheap", endpoint="GET /guarded", min_share=0.5
)


@hypoprobe.probe("GUARD-1")
def noop():
    return None


@hypoprobe.probe("GUARD-1")
def one_ms(factor=1):
    end = time.perf_counter_ns() + 1_000_000 * factor
    while time.perf_counter_ns() < end:
        pass
    return factor
"""

TIGHT = """
from guarded import noop, one_ms


def test_noop_under_tight_ratio(probe_overhead):
    probe_overhead(noop, ratio=0.05)


def test_one_ms_under_tight_ratio(probe_overhead):
    result = probe_overhead(one_ms, 1, ratio=0.05)
    assert result.ratio < 0.05  # noise may make a tiny figure negative
"""


def _suite(pytester: pytest.Pytester, tests: str) -> None:
    pytester.makepyfile(guarded=MODULE, test_guard=tests)


def test_a_no_op_fails_a_tight_ratio_and_a_1ms_function_passes(pytester: pytest.Pytester) -> None:
    _suite(pytester, TIGHT)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*probe overhead over budget: noop adds * ns per call (±* ns) inside endpoint "
            "'GET /guarded'",
            "*  budget: ratio=0.05 (* ns of its bare * ns)",
            "*  inside the endpoint: +* ns per call, ratio *",
            "*  outside any endpoint: +* ns per call, ratio *",
            "*  bare call: * ns; medians of * undisturbed interleaved rounds of * calls",
        ]
    )
    assert "test_one_ms_under_tight_ratio" not in "\n".join(
        line for line in result.stdout.lines if line.startswith("FAILED")
    )


def test_the_same_budget_gives_the_same_verdict_run_after_run(pytester: pytest.Pytester) -> None:
    _suite(pytester, TIGHT)
    verdicts = []
    for _ in range(3):
        result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-rA")
        verdicts.append(
            sorted(
                line.split(" ")[0] + " " + line.split("::")[-1].split(" ")[0]
                for line in result.stdout.lines
                if line.startswith(("PASSED", "FAILED"))
            )
        )
    assert verdicts[0] == [
        "FAILED test_noop_under_tight_ratio",
        "PASSED test_one_ms_under_tight_ratio",
    ]
    assert verdicts[1] == verdicts[0]
    assert verdicts[2] == verdicts[0]


def test_max_ns_is_a_budget_in_nanoseconds_per_call(pytester: pytest.Pytester) -> None:
    _suite(
        pytester,
        """
from guarded import noop


def test_generous(probe_overhead):
    result = probe_overhead(noop, max_ns=1_000_000)
    assert result.added_ns > 0 and result.bare_ns > 0
    assert result.budget_ns == 1_000_000 and result.within_budget


def test_impossible(probe_overhead):
    probe_overhead(noop, max_ns=1)
""",
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*probe overhead over budget: noop adds*", "*  budget: max_ns=1"])


def test_arguments_reach_the_function_and_the_result_has_the_figures(
    pytester: pytest.Pytester,
) -> None:
    _suite(
        pytester,
        """
import math

from guarded import one_ms


def test_figures(probe_overhead):
    result = probe_overhead(one_ms, factor=2)
    assert 1_900_000 < result.bare_ns < 10_000_000  # factor=2 reached the function
    assert math.isclose(result.ratio, result.added_ns / result.bare_ns)
    assert result.endpoint == "GET /guarded"
    assert result.rounds >= 9 and result.calls_per_round >= 1
    assert result.resolution_ns >= 2.0
    assert result.limit_ns is None and result.within_budget
""",
    )
    pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_figures_go_into_pytest_benchmarks_json(pytester: pytest.Pytester) -> None:
    _suite(
        pytester,
        """
from guarded import noop, one_ms


def test_without_benchmark_fixture(probe_overhead):
    probe_overhead(one_ms, ratio=0.05)


def test_with_benchmark_fixture(probe_overhead, benchmark):
    probe_overhead(noop, max_ns=1_000_000)
""",
    )
    out = pytester.path / "bench.json"
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", f"--benchmark-json={out}"
    )
    result.assert_outcomes(passed=2)
    data = json.loads(out.read_text())
    by_name = {b["name"]: b for b in data["benchmarks"]}
    assert set(by_name) == {"test_without_benchmark_fixture", "test_with_benchmark_fixture"}
    for name, function in (
        ("test_without_benchmark_fixture", "one_ms"),
        ("test_with_benchmark_fixture", "noop"),
    ):
        figures = by_name[name]["extra_info"]["probe_overhead"]
        assert figures["function"] == function
        for key in ("added_ns", "bare_ns", "ratio", "resolution_ns", "outside_added_ns"):
            assert isinstance(figures[key], float), key
            assert math.isfinite(figures[key]), key
        assert figures["within_budget"] is True
        assert by_name[name]["stats"]["rounds"] >= 1


def test_the_plugin_is_inert_when_not_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
import sys


def test_nothing_of_hypoprobe_is_loaded():
    assert "hypoprobe" not in sys.modules
    assert not [m for m in sys.modules if m.startswith("hypoprobe.")]
""",
        test_fixture_listed="""
def test_plugin_registered(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("hypoprobe")
""",
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    listed = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    listed.stdout.fnmatch_lines(["probe_overhead*", "*Measure a probed function*"])


def test_a_function_that_is_not_probed_is_a_clear_error(probe_overhead: object) -> None:
    def plain() -> None:
        return None

    with pytest.raises(hypoprobe.ConfigurationError, match="no __wrapped__ original"):
        probe_overhead(plain)  # type: ignore[operator]


@pytest.mark.parametrize("budget", [{"ratio": -1}, {"max_ns": "10"}, {"ratio": True}])
def test_a_bad_budget_is_a_clear_error(probe_overhead: object, budget: dict[str, object]) -> None:
    @hypoprobe.probe("GUARD-BAD")
    def probed() -> None:
        return None

    with pytest.raises(hypoprobe.ConfigurationError, match="give a number >= 0"):
        probe_overhead(probed, **budget)  # type: ignore[operator]


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200))
def test_the_median_interval_brackets_the_median_with_sample_values(values: list[float]) -> None:
    mid, low, high = median_interval(values)
    assert low <= mid <= high
    assert low in values
    assert high in values
    assert min(values) <= low
    assert high <= max(values)


def test_an_unregistered_hypothesis_is_warned_about(
    probe_overhead: Any, unique_id: Callable[..., str]
) -> None:
    @hypoprobe.probe(unique_id("H"))
    def probed() -> None:
        return None

    with pytest.warns(UserWarning, match="is not registered in this process"):
        result = probe_overhead(probed, max_ns=1e9)
    assert result.endpoint == "probe_overhead"
    assert result.within_budget


def test_a_probed_method_is_measured_against_its_bound_original(
    probe_overhead: Any, unique_id: Callable[..., str]
) -> None:
    hid = unique_id("H")
    hypoprobe.hypothesis(hid, claim="c", endpoint=unique_id("ep"), min_share=0.5)

    class Repo:
        def __init__(self) -> None:
            self.seen: list[int] = []

        @hypoprobe.probe(hid)
        def fetch(self, key: int) -> int:
            self.seen.append(key)
            return key

    repo = Repo()
    result = probe_overhead(repo.fetch, 7, max_ns=1e9)
    assert result.within_budget
    assert set(repo.seen) == {7}  # both sides called with the object and the argument


def test_generator_and_async_functions_are_refused(probe_overhead: Any) -> None:
    @hypoprobe.probe("GUARD-GEN")
    def rows() -> Any:
        yield 1

    @hypoprobe.probe("GUARD-GEN")
    async def fetch() -> None:
        return None

    for fn in (rows, fetch):
        with pytest.raises(hypoprobe.ConfigurationError, match="plain synchronous functions"):
            probe_overhead(fn)


def test_skipping_benchmarks_does_not_skip_the_guard(pytester: pytest.Pytester) -> None:
    _suite(pytester, TIGHT)
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "--benchmark-skip", "--benchmark-json=out.json"
    )
    result.assert_outcomes(passed=1, failed=1)  # judged, not skipped
