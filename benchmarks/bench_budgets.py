"""The per-request and per-call budgets, judged on interleaved rounds (see interleave.py).

Each budget of ``budgets.INTERLEAVED`` times three cases in turn, round after round: the
bare workload, hypoprobe's case and its reference (prometheus_client, or single-process
mode), and judges ``median(case - bare) / median(reference - bare)`` over the rounds, the
differences paired per round (see interleave.py for why not the median of the ratios).

* Middlewares (same apps and drivers as bench_middleware.py): hypoprobe's integration, its
  endpoint with one hypothesis, vs the histogram middleware a team already runs
  (``Histogram.labels(method, route).observe`` per request, route from the framework).
* ``scope_3_hypotheses``: ``with hypoprobe.endpoint(...)`` whose endpoint has three
  hypotheses (each with a probe, not called) vs one ``Histogram.time()``-decorated call.
* ``probe_in_scope``: a probed no-op call inside a scope vs a ``Histogram.time()`` one.
* ``multiproc_*``: the same probe and scope with the thread's shard in a memory-mapped file
  vs in memory; the two shards are swapped between rounds (the only thing multi-process
  mode changes on the recording path), so the modes interleave too.

Run: ``make bench`` or ``pytest benchmarks/bench_budgets.py --benchmark-only``; a table is
printed at the end; a budget whose ratio exceeds its limit fails its test. Under
``--benchmark-disable`` each comparison runs a few rounds, unjudged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

import hypoprobe
from hypoprobe._core._storage import STORAGE, TLS
from hypoprobe.integrations.asgi import HypoprobeASGIMiddleware
from hypoprobe.integrations.wsgi import HypoprobeMiddleware

from . import bench_middleware as mw
from .budgets import INTERLEAVED, LOOP, Budget
from .interleave import Ratio, ratio, run

pytestmark = pytest.mark.benchmark(group="budgets")

#: Interleaved rounds per budget (timed runs), and requests per round: rounds of a few
#: milliseconds, long enough for the CPU-time clock, short enough for many of them. A
#: framework's request is 30-100 us, and a round's noise as large as a middleware's cost:
#: more rounds there, for a ratio that moves less between runs.
ROUNDS = {"raw": 200, "framework": 600, "call": 400}
REQUESTS = {"raw": 200, "framework": 40}
_RESULTS: dict[str, Ratio] = {}

for _i in range(3):
    hypoprobe.hypothesis(f"BUDGET-{_i}", claim="benchmark", endpoint="GET /budget", min_share=0.5)
hypoprobe.hypothesis("BUDGET-MP", claim="benchmark", endpoint="GET /budget-mp", min_share=0.5)
_REGISTRY = prometheus_client.CollectorRegistry()
_HIST = prometheus_client.Histogram("budget_noop_seconds", "budget", registry=_REGISTRY)


def noop() -> None:
    return None


def _loop(fn: Callable[[], Any]) -> Callable[[], None]:
    def run_loop() -> None:
        for _ in range(LOOP):
            fn()

    return run_loop


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _RESULTS:
        return
    lines = [
        "",
        "Budgets on interleaved rounds: median(case-bare) / median(reference-bare), paired",
        "per round (90% bootstrap interval); added cost per unit in us, case / reference:",
    ]
    known = []
    for name, r in _RESULTS.items():
        budget = INTERLEAVED[name]
        verdict = _verdict(budget, r)
        lines.append(
            f"  {verdict:6s} {name:19s} {r.median:6.3f}"
            f" ({r.low:.3f}-{r.high:.3f}, {r.rounds} rounds)"
            f"  budget <= {budget.limit:<5.3g}"
            f" {1e6 * r.case_added:8.3f} / {1e6 * r.reference_added:8.3f}  {budget.what}"
        )
        if budget.known_over is not None and verdict != "ok":
            ceiling, why = budget.known_over
            known.append(f"  {name}: known over its budget (fails above {ceiling}): {why}")
    lines.extend(known)
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n".join(lines))


def _judge(
    benchmark: Any, names: list[str], cases: dict[str, Callable[[], None]], kind: str, per: int
) -> None:
    """Time ``cases`` in interleaved rounds and judge each budget of ``names`` on them."""
    rounds = 3 if benchmark.disabled else ROUNDS[kind]
    times: dict[str, list[float]] = {}

    def measure() -> None:
        times.update(run(cases, rounds))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    if benchmark.disabled:
        return
    over = []
    for name in names:
        budget = INTERLEAVED[name]
        result = _RESULTS[name] = ratio(times, budget.case, budget.reference, "bare", per)
        if _verdict(budget, result) == "BROKEN":
            over.append(
                f"{name}: ratio {result.median:.3f} (90% interval {result.low:.3f}-"
                f"{result.high:.3f}) over budget {budget.limit}"
                + (f" and its known ceiling {budget.known_over[0]}" if budget.known_over else "")
            )
    assert not over, "; ".join(over)


def _verdict(budget: Budget, result: Ratio) -> str:
    """ "ok", "OVER" (a known excess, under its ceiling) or "BROKEN"."""
    if result.median <= budget.limit:
        return "ok"
    if budget.known_over is not None and result.median <= budget.known_over[0]:
        return "OVER"
    return "BROKEN"


# -- middlewares ---------------------------------------------------------------------------


def test_wsgi(benchmark: Any) -> None:
    n = REQUESTS["raw"]
    apps = {
        "bare": mw._wsgi_app,
        "hypoprobe": HypoprobeMiddleware(mw._wsgi_app, name=lambda e: "GET /bench/{id}"),
        "prometheus": mw._prometheus_wsgi(mw._wsgi_app, mw._bench_route),
    }
    cases = {k: mw._serve_wsgi(app, "/bench/7", n) for k, app in apps.items()}
    _judge(benchmark, ["wsgi"], cases, "raw", n)


def test_asgi(benchmark: Any) -> None:
    n = REQUESTS["raw"]
    apps = {
        "bare": mw._asgi_app,
        "hypoprobe": HypoprobeASGIMiddleware(mw._asgi_app, name=lambda s: "GET /bench/{id}"),
        "prometheus": mw._prometheus_asgi(mw._asgi_app, mw._bench_route),
    }
    cases = {k: mw._serve_asgi(app, "/bench/7", n) for k, app in apps.items()}
    _judge(benchmark, ["asgi"], cases, "raw", n)


def test_flask(benchmark: Any) -> None:
    n = REQUESTS["framework"]
    cases = {
        k: mw._serve_wsgi(mw._flask_app(k), "/flask/7", n)
        for k in ("bare", "hypoprobe", "prometheus")
    }
    _judge(benchmark, ["flask"], cases, "framework", n)


def test_django(benchmark: Any) -> None:
    from django.test import override_settings  # type: ignore[import-untyped]

    n = REQUESTS["framework"]
    handlers = {
        k: mw._django_handler(k) for k in ("bare", "hypoprobe", "prometheus", "django_prometheus")
    }
    urls = handlers["bare"][1]
    cases = {k: mw._serve_wsgi(h, "/django/7/", n) for k, (h, _) in handlers.items()}
    with override_settings(ROOT_URLCONF=urls):
        _judge(benchmark, ["django", "django_prometheus"], cases, "framework", n)


def test_starlette(benchmark: Any) -> None:
    n = REQUESTS["framework"]
    cases = {
        k: mw._serve_asgi(mw._starlette_app(k), "/starlette/7", n)
        for k in ("bare", "hypoprobe", "prometheus", "instrumentator")
    }
    _judge(benchmark, ["starlette", "instrumentator"], cases, "framework", n)


# -- per call ------------------------------------------------------------------------------


def _scoped() -> Callable[[], None]:
    for i in range(3):
        hypoprobe.probe(f"BUDGET-{i}", name="budget.scoped")(noop)()

    def one_request() -> None:
        with hypoprobe.endpoint("GET /budget"):
            pass

    return one_request


def test_scope_3_hypotheses(benchmark: Any) -> None:
    cases = {
        "bare": _loop(noop),
        "hypoprobe": _loop(_scoped()),
        "prometheus": _loop(_HIST.time()(noop)),
    }
    _judge(benchmark, ["scope_3_hypotheses"], cases, "call", LOOP)


def test_probe_in_scope(benchmark: Any) -> None:
    probed = hypoprobe.probe("BUDGET-0", name="budget.noop")(noop)
    cases = {
        "bare": _loop(noop),
        "hypoprobe": _loop(probed),
        "prometheus": _loop(_HIST.time()(noop)),
    }
    with hypoprobe.endpoint("GET /budget"):  # every round runs inside the one scope
        probed()
        _judge(benchmark, ["probe_in_scope"], cases, "call", LOOP)


# -- multi-process mode --------------------------------------------------------------------


@contextlib.contextmanager
def _two_shards(directory: Path) -> Iterator[Callable[[str], None]]:
    """This thread's in-memory shard and its memory-mapped one, and a switch between them."""
    hypoprobe.configure(multiproc_dir=str(directory))
    try:
        mapped = STORAGE.shard()
        hypoprobe.configure(multiproc_dir=None)
        memory = STORAGE.shard()
        shards = {"single": memory, "multi": mapped}

        def use(mode: str) -> None:
            TLS.ints, TLS.floats = TLS.shard = shards[mode]

        yield use
    finally:
        hypoprobe.configure(multiproc_dir=None)
        STORAGE.shard()


def _in_mode(use: Callable[[str], None], mode: str, fn: Callable[[], None]) -> Callable[[], None]:
    def timed() -> None:
        use(mode)
        fn()

    return timed


def test_multiproc_probe(benchmark: Any, tmp_path: Path) -> None:
    probed = hypoprobe.probe("BUDGET-MP", name="budget.mp")(noop)
    with hypoprobe.endpoint("GET /budget-mp"):
        probed()  # every series exists before the two shards are sized
    with _two_shards(tmp_path) as use, hypoprobe.endpoint("GET /budget-mp"):
        cases = {
            "bare": _in_mode(use, "single", _loop(noop)),
            "single": _in_mode(use, "single", _loop(probed)),
            "multi": _in_mode(use, "multi", _loop(probed)),
        }
        _judge(benchmark, ["multiproc_probe"], cases, "call", LOOP)


def test_multiproc_scope(benchmark: Any, tmp_path: Path) -> None:
    hypoprobe.probe("BUDGET-MP", name="budget.mp")(noop)()

    def one_request() -> None:
        with hypoprobe.endpoint("GET /budget-mp"):
            pass

    one_request()
    with _two_shards(tmp_path) as use:
        cases = {
            "bare": _in_mode(use, "single", _loop(noop)),
            "single": _in_mode(use, "single", _loop(one_request)),
            "multi": _in_mode(use, "multi", _loop(one_request)),
        }
        _judge(benchmark, ["multiproc_scope"], cases, "call", LOOP)
