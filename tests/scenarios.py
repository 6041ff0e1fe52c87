"""Seeded traffic with known ground truth, replayed through hypoprobe's real recording path.

Each scenario is a list of requests whose endpoint time and probe call times (integer
nanoseconds) are drawn from a seeded generator. :func:`replay` runs them through
``hypoprobe.endpoint`` and ``hypoprobe.probe`` with a scripted clock installed by
``hypoprobe.configure(clock=...)``: time moves only when the replay advances it, so each
request's recorded endpoint and probe durations are exactly the generated ones, and the
true aggregate share of a scenario is known to the nanosecond.

The stories (see ``docs/verdicts.md``):

* :func:`seed_story` — a query that dominated one rare slow request (1.2 s of 1.5 s) but is
  a small share in aggregate: DISPROVED, with the anecdote in the top fraction of a percent;
* :func:`dominant_query` — a query that truly is most of the endpoint: CONFIRMED;
* :func:`n_plus_one` — many cheap calls per request that add up: CONFIRMED, N+1;
* :func:`too_few` — a dominant query, but only a dozen requests: INCONCLUSIVE;
* :func:`slow_segment` — a query that only hurts slow requests: small overall share
  (DISPROVED) but a large ``slow_share``;
* :func:`coverage_traffic` — a mixture whose *population* share is known analytically, for
  the interval coverage test.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import hypoprobe

NS = 1_000_000_000


@dataclass(frozen=True)
class Request:
    """One request's truth: its endpoint time and the duration of each probe call (ns)."""

    endpoint_ns: int
    calls_ns: tuple[int, ...] = ()
    #: Tagged with ``hypoprobe.segment`` during the request, when set.
    segment: str | None = None

    @property
    def probe_ns(self) -> int:
        return sum(self.calls_ns)

    @property
    def share(self) -> float:
        return self.probe_ns / self.endpoint_ns


@dataclass(frozen=True)
class Scenario:
    """A generated story: the hypothesis' parameters, the traffic, and what must come out."""

    name: str
    endpoint: str
    claim: str
    min_share: float
    requests: tuple[Request, ...]
    expected_verdict: str
    observed: hypoprobe.Observation | None = None
    slow_threshold: float | None = None
    probe_name: str = "query"

    @property
    def true_share(self) -> float:
        """Σp / Σe over the generated requests: what the report must find."""
        return sum(r.probe_ns for r in self.requests) / sum(r.endpoint_ns for r in self.requests)

    def true_slow_share(self) -> float | None:
        if self.slow_threshold is None:
            return None
        limit = self.slow_threshold * NS
        slow = [r for r in self.requests if r.endpoint_ns > limit]
        if not slow:
            return None
        return sum(r.probe_ns for r in slow) / sum(r.endpoint_ns for r in slow)

    def true_anecdote_fraction(self) -> float | None:
        """Fraction of requests whose share is at least the anecdote's."""
        if self.observed is None:
            return None
        return sum(r.share >= self.observed.share for r in self.requests) / len(self.requests)


class ScriptedClock:
    """A nanosecond clock that moves only when told to: every read returns the same value
    until :meth:`advance`, so durations recorded between reads are exactly those advanced."""

    def __init__(self, start: int = 10 * NS) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


@contextlib.contextmanager
def scripted_clock() -> Iterator[ScriptedClock]:
    """Install a :class:`ScriptedClock` through ``hypoprobe.configure`` and restore after."""
    previous = hypoprobe.configure().clock
    clock = ScriptedClock()
    hypoprobe.configure(clock=clock)
    try:
        yield clock
    finally:
        hypoprobe.configure(clock=previous)


def register(scenario: Scenario, hypothesis_id: str, endpoint: str | None = None) -> None:
    """Register the scenario's hypothesis under ``hypothesis_id`` (and endpoint name)."""
    hypoprobe.hypothesis(
        hypothesis_id,
        claim=scenario.claim,
        endpoint=endpoint or scenario.endpoint,
        min_share=scenario.min_share,
        observed=scenario.observed,
        slow_threshold=scenario.slow_threshold,
    )


def replay(
    requests: Sequence[Request],
    hypothesis_id: str,
    endpoint: str,
    clock: ScriptedClock,
    probe_name: str = "query",
) -> None:
    """Run ``requests`` through the real endpoint scope and probe, time scripted by ``clock``.

    The time outside the probe is spread before, between and after the calls, as code
    around a query would be.
    """
    probe = hypoprobe.probe(hypothesis_id, probe_name)
    for req in requests:
        other = req.endpoint_ns - req.probe_ns
        gaps = len(req.calls_ns) + 1
        gap = other // gaps
        with hypoprobe.endpoint(endpoint):
            if req.segment is not None:
                hypoprobe.segment(req.segment)
            for call in req.calls_ns:
                clock.advance(gap)
                with probe:
                    clock.advance(call)
            clock.advance(other - gap * (gaps - 1))


def run(scenario: Scenario, hypothesis_id: str, endpoint: str | None = None) -> None:
    """Register the scenario's hypothesis and replay its traffic with a scripted clock."""
    ep = endpoint or scenario.endpoint
    register(scenario, hypothesis_id, ep)
    with scripted_clock() as clock:
        replay(scenario.requests, hypothesis_id, ep, clock, scenario.probe_name)


# -- generators ---------------------------------------------------------------------------


def _ns(seconds: float) -> int:
    return max(1, round(seconds * NS))


def _split(total_ns: int, calls: int, rng: random.Random) -> tuple[int, ...]:
    """Split a probe time into ``calls`` positive call durations."""
    if calls <= 1:
        return (total_ns,) if calls == 1 else ()
    weights = [rng.random() + 0.1 for _ in range(calls)]
    scale = total_ns / sum(weights)
    parts = [max(1, int(w * scale)) for w in weights]
    parts[-1] = max(1, total_ns - sum(parts[:-1]))
    return tuple(parts)


def seed_story(seed: int, n: int = 3000) -> Scenario:
    """The anecdote that misleads: 1.2 s of a 1.5 s request, but ~7% in aggregate."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        if rng.random() < 0.003:  # the rare request a profiler happened to catch
            e = rng.uniform(1.3, 1.7)
            p = e * rng.uniform(0.78, 0.85)
        else:
            e = rng.lognormvariate(math.log(0.2), 0.5)
            p = e * rng.uniform(0.02, 0.10)
        reqs.append(Request(_ns(e), (_ns(p),)))
    return Scenario(
        "seed story",
        "GET /campaigns",
        "the subscriber count query dominates GET /campaigns",
        0.3,
        tuple(reqs),
        "DISPROVED",
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        probe_name="count_subscribers",
    )


def dominant_query(seed: int, n: int = 800) -> Scenario:
    """A query that really is most of the endpoint's time."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        e = rng.lognormvariate(math.log(0.4), 0.4)
        reqs.append(Request(_ns(e), (_ns(e * rng.uniform(0.55, 0.8)),)))
    return Scenario(
        "dominant query",
        "GET /reports",
        "the report aggregation query dominates GET /reports",
        0.5,
        tuple(reqs),
        "CONFIRMED",
        observed=hypoprobe.Observation(probe_seconds=0.3, endpoint_seconds=0.42),
        probe_name="aggregate_report",
    )


def n_plus_one(seed: int, n: int = 600) -> Scenario:
    """Many cheap calls per request (an ORM loading rows one by one) that add up."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        calls = rng.randint(15, 45)
        call_ns = tuple(_ns(rng.uniform(0.0008, 0.0016)) for _ in range(calls))
        other = rng.lognormvariate(math.log(0.05), 0.3)
        reqs.append(Request(sum(call_ns) + _ns(other), call_ns))
    return Scenario(
        "N+1",
        "GET /orders",
        "loading order lines one by one makes GET /orders slow",
        0.25,
        tuple(reqs),
        "CONFIRMED",
        probe_name="load_order_line",
    )


def too_few(seed: int, n: int = 12) -> Scenario:
    """A dominant query, but far too few requests to judge."""
    scenario = dominant_query(seed, n)
    return Scenario(
        "too few requests",
        "GET /rare",
        "the export query dominates GET /rare",
        0.5,
        scenario.requests,
        "INCONCLUSIVE",
        probe_name="export_query",
    )


def slow_segment(seed: int, n: int = 2000) -> Scenario:
    """A query that only hurts slow requests: small share overall, large among the slow."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        if rng.random() < 0.03:
            e = rng.uniform(1.5, 3.0)
            calls = _split(_ns(e * rng.uniform(0.55, 0.7)), rng.randint(1, 3), rng)
        else:
            e = rng.lognormvariate(math.log(0.2), 0.3)
            calls = _split(_ns(e * rng.uniform(0.0, 0.04)), 1, rng)
        reqs.append(Request(_ns(e), calls))
    return Scenario(
        "slow segment",
        "GET /dashboard",
        "the widget query makes GET /dashboard slow for big accounts",
        0.3,
        tuple(reqs),
        "DISPROVED",
        slow_threshold=1.0,
        observed=hypoprobe.Observation(probe_seconds=1.6, endpoint_seconds=2.5),
        probe_name="widget_query",
    )


def segmented(seed: int, n: int = 1500) -> list[Request]:
    """Enterprise accounts (10%) where the query is ~60% of the time; free ones at ~4%."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        if rng.random() < 0.1:
            e = rng.lognormvariate(math.log(0.8), 0.3)
            reqs.append(Request(_ns(e), (_ns(e * rng.uniform(0.5, 0.7)),), "enterprise"))
        else:
            e = rng.lognormvariate(math.log(0.15), 0.3)
            reqs.append(Request(_ns(e), (_ns(e * rng.uniform(0.0, 0.08)),), "free"))
    return reqs


#: The population share of :func:`coverage_traffic`, derived analytically: with
#: probability q a request is a spike (e ~ lognormal(ln 1.5, 0.2), share 0.8), otherwise
#: e ~ lognormal(ln 0.2, 0.6) with share ~ U(0.02, 0.18) independent of e (mean 0.1).
_Q = 0.02
_E_BASE = 0.2 * math.exp(0.6**2 / 2)
_E_SPIKE = 1.5 * math.exp(0.2**2 / 2)
COVERAGE_TRUE_SHARE = ((1 - _Q) * _E_BASE * 0.1 + _Q * _E_SPIKE * 0.8) / (
    (1 - _Q) * _E_BASE + _Q * _E_SPIKE
)


def coverage_traffic(seed: int, n: int) -> list[Request]:
    """Requests from a distribution whose population share is :data:`COVERAGE_TRUE_SHARE`."""
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        if rng.random() < _Q:
            e = rng.lognormvariate(math.log(1.5), 0.2)
            s = 0.8
        else:
            e = rng.lognormvariate(math.log(0.2), 0.6)
            s = rng.uniform(0.02, 0.18)
        e_ns = _ns(e)
        reqs.append(Request(e_ns, (max(1, round(e_ns * s)),)))
    return reqs


def coverage_intervals(reps: int, n: int) -> list[tuple[float, float]]:
    """Replay ``reps`` windows of :func:`coverage_traffic` (seeds 0..reps-1, ``n`` requests
    each) through the real recording path; return each window's 95% interval."""
    from hypoprobe import analysis

    hid, endpoint = "COVERAGE-1", "GET /coverage"
    hypoprobe.hypothesis(hid, claim="coverage of the interval", endpoint=endpoint, min_share=0.5)
    out = []
    with scripted_clock() as clock:
        before = hypoprobe.snapshot()
        for seed in range(reps):
            replay(coverage_traffic(seed, n), hid, endpoint, clock)
            after = hypoprobe.snapshot()
            est = analysis.estimate(after.minus(before).moments_for(hid, endpoint))
            before = after
            if est.n != n or est.ci_low is None or est.ci_high is None:
                raise AssertionError(f"window {seed}: expected {n} requests, got {est}")
            out.append((est.ci_low, est.ci_high))
    return out


def run_coverage_in_subprocess(reps: int, n: int) -> list[tuple[float, float]]:
    """:func:`coverage_intervals` in a fresh interpreter (few series: fast snapshots)."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import json, scenarios; print(json.dumps(scenarios.coverage_intervals({reps}, {n})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"coverage run failed:\n{proc.stderr}")
    return [(low, high) for low, high in json.loads(proc.stdout)]


def app_process(name: str, *, seed: int, n: int, hid: str, endpoint: str, out: str) -> None:
    """A stand-alone application process for source tests, driven by lines on stdin.

    It registers the scenario's hypothesis, serves ``/metrics`` on a free port and records
    one warm-up request (so every series exists before any window), then prints
    ``port N``. On ``go`` it replays the rest of the traffic, writes the snapshot of just
    that traffic to ``out`` and prints ``done``; it exits at end of input.
    """
    from prometheus_client import start_http_server

    scenario = ALL[name](seed, n)
    register(scenario, hid, endpoint)
    server, _ = start_http_server(0, addr="127.0.0.1")
    with scripted_clock() as clock:
        replay(scenario.requests[:1], hid, endpoint, clock, scenario.probe_name)
        print(f"port {server.server_port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "go":
                before = hypoprobe.snapshot()
                replay(scenario.requests[1:], hid, endpoint, clock, scenario.probe_name)
                with open(out, "w", encoding="utf-8") as f:
                    f.write(hypoprobe.snapshot().minus(before).to_json())
                print("done", flush=True)
    server.shutdown()


class App:
    """A running :func:`app_process`: its /metrics URL, and a way to run its traffic."""

    def __init__(self, proc: subprocess.Popen[str], snapshot: str) -> None:
        self.proc = proc
        #: Where the app writes the snapshot of the traffic ``run_traffic`` replays.
        self.snapshot = snapshot
        self.port = int(self._line().removeprefix("port "))

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise AssertionError(f"the app process ended early (exit {self.proc.wait(5)})")
        return line

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def run_traffic(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        if self._line() != "done":
            raise AssertionError("the app process did not finish its traffic")


@contextlib.contextmanager
def start_app(
    name: str, *, seed: int, n: int, hid: str, endpoint: str, out: os.PathLike[str] | str
) -> Iterator[App]:
    """Start :func:`app_process` in a fresh interpreter; stop it on exit."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import scenarios; scenarios.app_process({name!r}, seed={seed}, n={n}, "
        f"hid={hid!r}, endpoint={endpoint!r}, out={os.fspath(out)!r})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=here,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield App(proc, os.fspath(out))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # end of input: the app exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


#: Every story by name; each takes a seed and, optionally, the number of requests.
ALL: dict[str, Callable[..., Scenario]] = {
    "seed_story": seed_story,
    "dominant_query": dominant_query,
    "n_plus_one": n_plus_one,
    "too_few": too_few,
    "slow_segment": slow_segment,
}
