"""Per-request cost of survey mode, side by side in one run: a request (an endpoint scope
running three SQLite statements on an in-memory database) with no survey, surveyed, and
left out by the survey's sampling.

The surveyed request times each statement as a candidate of its endpoint and records every
candidate's moments at the request's end; an unsurveyed one pays the sampling draw at the
scope's start and one check per statement. Run:
``pytest benchmarks/bench_survey.py --benchmark-only``; the table (median per request and
added cost over the unsurveyed-by-construction bare case) is printed at the end.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hypoprobe
from hypoprobe import _survey

pytestmark = pytest.mark.benchmark(group="survey")

REQUESTS = 50
ROUNDS = 200
_RESULTS: dict[str, tuple[float, float]] = {}
_STATEMENTS = ("SELECT 1", "SELECT ? + 1", "SELECT count(*) FROM t WHERE id = ?")


def _connection() -> Any:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    return conn


def _requests(conn: Any, endpoint: str) -> Callable[[], None]:
    one, two, three = _STATEMENTS

    def run() -> None:
        for i in range(REQUESTS):
            with hypoprobe.endpoint(endpoint):
                conn.execute(one).fetchall()
                conn.execute(two, (i,)).fetchall()
                conn.execute(three, (i,)).fetchall()

    return run


@pytest.fixture(scope="module", autouse=True)
def _stop_after() -> Iterator[None]:
    yield
    _survey.stop()  # the other benchmarks of the session run without a survey
    if _RESULTS:
        bare = _RESULTS.get("no_survey", (0.0, 0.0))[1]
        print("\nsurvey, per request (3 statements): min, median, median added over no_survey")
        for name, (low, median) in _RESULTS.items():
            print(
                f"  {name:<20} {low * 1e6:7.1f} µs {median * 1e6:7.1f} µs "
                f"+{(median - bare) * 1e6:6.1f} µs"
            )


def _bench(benchmark: Any, name: str, run: Callable[[], None]) -> None:
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=5)
    stats = benchmark.stats  # None when timing is off (--benchmark-disable)
    if stats is not None:
        _RESULTS[name] = (stats.stats.min / REQUESTS, stats.stats.median / REQUESTS)


def test_no_survey(benchmark: Any) -> None:
    _survey.stop()
    _bench(benchmark, "no_survey", _requests(_connection(), "GET /bench-survey/none"))


def test_surveyed(benchmark: Any) -> None:
    hypoprobe.survey(rate=1.0)
    conn = _survey.wrap_connection(_connection())
    _bench(benchmark, "surveyed", _requests(conn, "GET /bench-survey/surveyed"))


def test_unsurveyed_by_sampling(benchmark: Any) -> None:
    hypoprobe.survey(rate=1e-9)  # every draw says "not surveyed"
    conn = _survey.wrap_connection(_connection())
    _bench(benchmark, "unsurveyed_sampled", _requests(conn, "GET /bench-survey/unsurveyed"))


def test_surveyed_at_10_percent(benchmark: Any) -> None:
    hypoprobe.survey(rate=0.1)
    conn = _survey.wrap_connection(_connection())
    _bench(benchmark, "rate_0.1", _requests(conn, "GET /bench-survey/tenth"))


def test_timer_resolution_is_enough() -> None:
    assert time.get_clock_info("perf_counter").resolution < 1e-6
