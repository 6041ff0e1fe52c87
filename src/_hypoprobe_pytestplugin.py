"""hypoprobe's pytest plugin: the ``probe_overhead`` fixture, guarding a probe's cost.

pytest loads this module through the ``pytest11`` entry point in every suite of an
environment where hypoprobe is installed, so it lives outside the ``hypoprobe`` package
and imports nothing but pytest at load: hypoprobe itself is imported only when a test
asks for the fixture. (Hypothesis ships its plugin the same way, for the same reason.)

Example, a complete test::

    def test_count_subscribers_probe_is_cheap(probe_overhead):
        probe_overhead(count_subscribers, 42, ratio=0.05)

See ``docs/guarding-overhead.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["probe_overhead"]


def _benchmark_fixture(request: pytest.FixtureRequest) -> Any:
    """pytest-benchmark's fixture when its JSON will hold this test's figures, else None.

    That is when the test asks for ``benchmark`` itself, or when pytest-benchmark runs
    with a JSON output (``--benchmark-json``, ``--benchmark-autosave``,
    ``--benchmark-save``) and neither skips nor disables benchmarks.
    """
    config = request.config
    if not config.pluginmanager.hasplugin("benchmark"):  # pytest-benchmark's entry point
        return None
    if "benchmark" in request.fixturenames:
        return request.getfixturevalue("benchmark")
    opt = config.getoption
    saving = any(
        opt(name, None) for name in ("benchmark_json", "benchmark_autosave", "benchmark_save")
    )
    if not saving or opt("benchmark_disable", False) or opt("benchmark_skip", False):
        return None
    return request.getfixturevalue("benchmark")


@pytest.fixture
def probe_overhead(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Measure a probed function against its original; fail the test over budget.

    ``probe_overhead(fn, *args, ratio=None, max_ns=None, **kwargs)`` calls ``fn`` (a
    function decorated with ``@hypoprobe.probe``) and ``fn.__wrapped__`` with the given
    arguments in interleaved rounds, inside one endpoint scope and outside any, and
    returns the figures (``added_ns``, ``bare_ns``, ``ratio``...). With ``ratio`` (added
    cost / bare cost) or ``max_ns`` (added ns per call), a larger added cost fails the
    test with a message naming the budget and the figures. Under pytest-benchmark, the
    figures go into the benchmark's ``extra_info["probe_overhead"]``.

    Example::

        def test_probe_cost(probe_overhead):
            result = probe_overhead(count_subscribers, 42, max_ns=2_000)
            assert result.ratio < 0.05
    """
    from hypoprobe import _guard

    def run(
        fn: Callable[..., Any],
        *args: Any,
        ratio: float | None = None,
        max_ns: float | None = None,
        **kwargs: Any,
    ) -> _guard.OverheadResult:
        result = _guard.measure_probe(fn, args, kwargs, ratio=ratio, max_ns=max_ns)
        bench = _benchmark_fixture(request)
        if bench is not None:
            bench.extra_info["probe_overhead"] = result.as_dict()
            if getattr(bench, "stats", None) is None and not getattr(bench, "disabled", False):
                # An entry in the JSON needs timings: the probed call's, a few quick rounds.
                bench.pedantic(
                    fn, args, kwargs, rounds=5, iterations=max(1, result.calls_per_round // 10)
                )
        failure = _guard.judge(result)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        return result

    return run
