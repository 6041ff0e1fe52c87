"""Customers: ``hypoprobe.customer()``, the sketches behind "how many, how much", and merges.

Ground truth: seeded scenarios whose exact sets of seen and affected customers (and their
values) are known, recorded on a fake clock so that every share is exact; the sketch's
estimates against exact sets (``hypothesis``); merges over threads, processes (SIGKILL
included) and snapshot files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import hypoprobe
from hypoprobe import _sketch
from hypoprobe._observers import _customers
from hypoprobe.analysis import customer_impact
from hypoprobe.model import Snapshot

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import NumberDataPoint

KEY = "test-customer-key-0123456789"


@pytest.fixture
def keyed(restore_config: None) -> None:
    hypoprobe.configure(customer_key=KEY)


Scenario = Callable[..., None]


def make_scenario(
    clock: Any, hid: str, ep: str, min_share: float = 0.5, **kw: Any
) -> tuple[Scenario, Callable[[int], None]]:
    hypoprobe.hypothesis(hid, claim="the query", endpoint=ep, min_share=min_share, **kw)

    @hypoprobe.probe(hid, name="query")
    def query(ns: int) -> None:
        clock.advance(ns)

    def request(
        cust: object, value: float | None, probe_ns: int, other_ns: int, **extra: Any
    ) -> None:
        with hypoprobe.endpoint(ep):
            if extra.get("segment"):
                hypoprobe.segment(extra["segment"])
            hypoprobe.customer(cust, value)  # type: ignore[arg-type]
            if probe_ns:
                query(probe_ns)
            clock.advance(other_ns)

    return request, query


def test_ground_truth_scenario_is_exact(fake_clock: Any, unique_id: Any, keyed: None) -> None:
    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep)
    rng = random.Random(7)
    values = {f"acct-{i}": float(rng.choice([10, 50, 5000])) for i in range(400)}
    seen: set[str] = set()
    affected: set[str] = set()
    affected_probe_ns = 0
    for _ in range(3000):
        cust = rng.choice(list(values))
        probe_ns = rng.choice([0, 1_000_000, 9_000_000])
        other = rng.choice([2_000_000, 8_000_000])
        request(cust, values[cust], probe_ns, other)
        seen.add(cust)
        if probe_ns / (probe_ns + other) >= 0.5:
            affected.add(cust)
            affected_probe_ns += probe_ns
    impact = customer_impact(hypoprobe.snapshot(), hid, ep)
    assert impact is not None
    assert impact.exact
    assert impact.seen == len(seen)
    assert impact.affected == len(affected)
    assert impact.seen_value == pytest.approx(sum(values[c] for c in seen))
    assert impact.affected_value == pytest.approx(sum(values[c] for c in affected))
    assert impact.affected_probe_seconds == pytest.approx(affected_probe_ns / 1e9)
    verdict = next(
        v for v in hypoprobe.analysis.report(hypoprobe.snapshot()).verdicts if v.hypothesis == hid
    )
    assert verdict.to_dict()["customers"]["affected"] == len(affected)


def test_a_slow_threshold_also_has_to_be_met(fake_clock: Any, unique_id: Any, keyed: None) -> None:
    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep, slow_threshold=0.05)
    request("fast-high-share", 1.0, 9_000_000, 1_000_000)  # share 90%, 10 ms: not slow
    request("slow-high-share", 2.0, 90_000_000, 10_000_000)  # share 90%, 100 ms
    request("slow-low-share", 4.0, 1_000_000, 99_000_000)
    impact = customer_impact(hypoprobe.snapshot(), hid, ep)
    assert impact is not None
    assert (impact.seen, impact.affected) == (3, 1)
    assert impact.affected_value == 2.0


def test_segments_are_kept_apart_and_unioned(fake_clock: Any, unique_id: Any, keyed: None) -> None:
    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep, segments=["free", "pro"])
    request("a", None, 9_000_000, 1_000_000, segment="free")
    request("a", None, 9_000_000, 1_000_000, segment="pro")  # one customer, two segments
    request("b", None, 0, 1_000_000, segment="pro")
    snap = hypoprobe.snapshot()
    free = customer_impact(snap, hid, ep, segment="free")
    pro = customer_impact(snap, hid, ep, segment="pro")
    both = customer_impact(snap, hid, ep)
    assert free is not None
    assert pro is not None
    assert both is not None
    assert (free.seen, pro.seen, both.seen, both.affected) == (1, 2, 2, 1)
    assert both.seen_value is None
    assert both.affected_value is None


def test_threads_merge_exactly(fake_clock: Any, unique_id: Any, keyed: None) -> None:
    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep)

    def work(t: int) -> None:
        for i in range(600):
            # Overlapping customer ranges: thread t sees acct-(100t) .. acct-(100t+599).
            request(f"acct-{100 * t + i}", float(i % 7), 9_000_000 if i % 3 == 0 else 0, 1_000_000)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    impact = customer_impact(hypoprobe.snapshot(), hid, ep)
    assert impact is not None
    assert impact.seen == 100 * 7 + 600
    expected_affected = {100 * t + i for t in range(8) for i in range(0, 600, 3)}
    assert impact.affected == len(expected_affected)
    assert impact.requests == 8 * 600


def test_without_a_key_nothing_is_recorded_and_it_is_said_once(
    unique_id: Any, restore_config: None, caplog: pytest.LogCaptureFixture
) -> None:
    hypoprobe.configure(customer_key=None)
    hid, ep = unique_id("H"), unique_id("GET /x")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)
    before = hypoprobe.snapshot().internal_errors.get("customer_key_missing", 0)
    with caplog.at_level(logging.WARNING, logger="hypoprobe"):
        for _ in range(3):
            with hypoprobe.endpoint(ep):
                hypoprobe.customer("acct-1")
    snap = hypoprobe.snapshot()
    assert customer_impact(snap, hid, ep) is None
    assert snap.internal_errors["customer_key_missing"] == before + 3
    assert sum("no customer key" in r.getMessage() for r in caplog.records) <= 1


def test_bad_input_never_raises(fake_clock: Any, unique_id: Any, keyed: None) -> None:
    hid, ep = unique_id("H"), unique_id("GET /x")
    _request, _ = make_scenario(fake_clock, hid, ep)
    hypoprobe.customer("outside any scope")  # nothing to name: no error
    before = dict(hypoprobe.snapshot().internal_errors)
    for bad_id, bad_value in ((None, None), (True, None), ("a", -1.0), ("a", math.nan), ("a", "x")):
        with hypoprobe.endpoint(ep):
            hypoprobe.customer(bad_id, bad_value)  # type: ignore[arg-type]
    errors = hypoprobe.snapshot().internal_errors
    assert errors["customer_id_type"] - before.get("customer_id_type", 0) == 2
    assert errors["customer_value"] - before.get("customer_value", 0) == 3
    assert customer_impact(hypoprobe.snapshot(), hid, ep) is None


def test_customer_key_is_validated_and_never_shown(restore_config: None) -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="customer_key"):
        hypoprobe.configure(customer_key="short")
    with pytest.raises(hypoprobe.ConfigurationError, match="customer_key"):
        hypoprobe.configure(customer_key=b"0123456789abcdef0123")
    config = hypoprobe.configure(customer_key=KEY)
    assert KEY not in repr(config)


def test_the_wsgi_middleware_names_the_customer(unique_id: Any, keyed: None) -> None:
    from hypoprobe.integrations.wsgi import HypoprobeMiddleware

    hid, ep = unique_id("H"), unique_id("GET /x")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.01)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    def who(environ: dict[str, Any]) -> tuple[str, float] | None:
        account = environ.get("HTTP_X_ACCOUNT")
        return None if account is None else (account, 3.0)

    wrapped = HypoprobeMiddleware(app, name=lambda environ: ep, customer=who)
    for account in ("a", "b", "a", None):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
        if account:
            environ["HTTP_X_ACCOUNT"] = account
        body = wrapped(environ, lambda *a: None)
        list(body)
        body.close()
    impact = customer_impact(hypoprobe.snapshot(), hid, ep)
    assert impact is not None
    assert (impact.seen, impact.affected, impact.seen_value, impact.requests) == (2, 0, 6.0, 3)


def test_a_request_named_at_its_end_counts_its_customers(unique_id: Any, keyed: None) -> None:
    # Starlette's requests are named from the matched route when they end; one in which no
    # probe ran gets no probe slots at all, and still counts its customer as seen.
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from hypoprobe.integrations.starlette import instrument_app

    hid, path = unique_id("H"), "/" + unique_id("named")
    ep = f"GET {path}/{{id}}"
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.01)

    @hypoprobe.probe(hid, name="query")
    def query() -> None:
        return None

    async def view(request: Any) -> PlainTextResponse:
        if request.path_params["id"] == 1:
            query()  # after routing: the probe names the request, its slot is made
        return PlainTextResponse("ok")

    app = instrument_app(
        Starlette(routes=[Route(path + "/{id:int}", view)]),
        customer=lambda scope: dict(scope["headers"]).get(b"x-account", b"").decode() or None,
    )

    async def call(target: str, account: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"t"), (b"x-account", account.encode())],
            "server": ("t", 80),
            "client": ("127.0.0.1", 1),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        await app(scope, receive, send)

    async def requests() -> None:
        for target, account in ((f"{path}/2", "a"), (f"{path}/3", "b"), (f"{path}/1", "c")):
            await call(target, account)

    asyncio.run(requests())
    impact = customer_impact(hypoprobe.snapshot(), hid, ep)
    assert impact is not None
    assert (impact.seen, impact.requests) == (3, 3)


# -- the sketch against exact sets --------------------------------------------------------


def _sketch_of(
    ids: list[str], values: dict[str, float], kind: str = _sketch.SEEN
) -> _sketch.CustomerSketch:
    key = hashlib.sha256(KEY.encode()).digest()
    entries: dict[int, float | None] = {_customers.hash_id(i, key): values[i] for i in ids}
    return _sketch.CustomerSketch.of(("H", "GET /x", "", kind), entries)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=[HealthCheck.too_slow],
)
@example(exponent=6.0, seed=65534)  # a million customers, 1% of them paying 85%
@given(exponent=st.floats(min_value=3.0, max_value=6.0), seed=st.integers(0, 2**32))
def test_estimates_are_within_2_percent_for_counts_and_5_percent_for_values(
    exponent: float, seed: int
) -> None:
    n = round(10**exponent)
    rng = random.Random(seed)
    ids = [f"acct-{seed}-{i}" for i in range(n)]
    # Heavy-tailed values: a few enterprise accounts pay far more than the many small ones.
    values = {i: (20_000.0 if rng.random() < 0.01 else rng.lognormvariate(3.0, 1.0)) for i in ids}
    s = _sketch_of(ids, values)
    assert abs(s.distinct() - n) <= 0.02 * n
    exact_value = math.fsum(values.values())
    found = s.value()
    assert found is not None
    assert abs(found - exact_value) <= 0.05 * exact_value
    if n < _sketch.K:
        assert s.exact
        assert s.distinct() == n


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(
        st.lists(st.integers(0, 40_000), max_size=3000).map(set), min_size=1, max_size=5
    ),
    k=st.sampled_from([16, 256, _sketch.K]),
)
def test_merging_sketches_is_exactly_the_sketch_of_the_union(parts: list[set[int]], k: int) -> None:
    key = b"k" * 32

    def sketch(ids: set[int]) -> _sketch.CustomerSketch:
        entries: dict[int, float | None] = {_customers.hash_id(i, key): float(i % 13) for i in ids}
        return _sketch.CustomerSketch.of(("H", "e", "", "seen"), entries, k, len(ids))

    merged = sketch(parts[0])
    for p in parts[1:]:
        merged = merged.merge(sketch(p))
    union = sketch(set().union(*parts))
    assert merged.entries == union.entries
    assert merged.weighted == union.weighted
    assert merged.requests == sum(map(len, parts))
    # Idempotent and order-free: merging again changes no figure.
    assert merged.merge(union).entries == union.entries


def test_recording_keeps_the_bottom_k_of_what_it_saw(
    fake_clock: Any, unique_id: Any, keyed: None
) -> None:
    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep)
    n = _sketch.K + 3000
    for i in range(n):
        request(f"c{i}", float(i % 5), 0, 1000)
    snap = hypoprobe.snapshot()
    seen = next(c for c in snap.customers if c.hypothesis == hid and c.kind == "seen")
    exact = _sketch_of([f"c{i}" for i in range(n)], {f"c{i}": float(i % 5) for i in range(n)})
    assert seen.entries == exact.entries
    assert seen.weighted == exact.weighted
    assert abs(seen.distinct() - n) <= 0.02 * n


def test_snapshot_files_of_hosts_merge_as_the_union() -> None:
    a = [f"a{i}" for i in range(20_000)]
    b = [f"a{i}" for i in range(10_000, 40_000)]
    values = {i: 1.0 for i in set(a) | set(b)}
    snaps = [
        Snapshot(created_at=1.0, source=name, customers=(_sketch_of(ids, values),))
        for name, ids in (("host-a", a), ("host-b", b))
    ]
    read_back = [Snapshot.from_json(s.to_json()) for s in snaps]
    merged = Snapshot.merge(read_back)
    union = _sketch_of(sorted(set(a) | set(b)), values)
    assert merged.customers[0].entries == union.entries
    assert merged.customers[0].weighted == union.weighted
    assert abs(merged.customers[0].distinct() - 40_000) <= 0.02 * 40_000


PRELUDE = f"""
import itertools, json, os, signal, sys, time
import hypoprobe
_ticks = itertools.count(0, 1000)
hypoprobe.configure(clock=lambda: next(_ticks), customer_key={KEY!r})
hypoprobe.hypothesis("CU-1", claim="c", endpoint="GET /c", min_share=0.01)
@hypoprobe.probe("CU-1", name="work")
def work():
    pass
def request(cust):
    with hypoprobe.endpoint("GET /c"):
        hypoprobe.customer(cust, 2.0)
        work()
"""


def test_worker_processes_merge_and_a_sigkilled_worker_keeps_its_customers(tmp_path: Path) -> None:
    body = """
    r, w = os.pipe()
    pids = []
    for worker in range(3):
        pid = os.fork()
        if pid == 0:
            for i in range(5000):
                request(f"acct-{worker * 2000 + i}")  # overlapping ranges
            os.write(w, b"x")
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
    for _ in pids:
        os.read(r, 1)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    first = hypoprobe.snapshot()
    snap = hypoprobe.snapshot()  # the dead workers' files now come from the cache
    assert first.customers == snap.customers
    seen = [c for c in snap.customers if c.kind == "seen"][0]
    print(json.dumps({"distinct": seen.distinct(), "exact": seen.exact, "requests": seen.requests,
                      "value": seen.value()}))
    """
    env = {**os.environ, "HYPOPROBE_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["requests"] == 15_000
    assert out["exact"] is True
    assert out["distinct"] == 2 * 2000 + 5000
    assert out["value"] == 2.0 * 9000


def test_no_output_ever_carries_a_raw_customer_id(
    fake_clock: Any, unique_id: Any, keyed: None, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from prometheus_client import generate_latest

    from hypoprobe import analysis, otel, render

    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep, segments=["free"])
    raw = [f"RAW-ACCOUNT-{i}-zq" for i in range(50)] + [
        str(73_194_682_507_319_468_250 + i) for i in range(50)
    ]
    with caplog.at_level(logging.DEBUG):
        for i, cust in enumerate(raw):
            request(
                cust if i % 2 else int(cust) if cust.isdigit() else cust,
                1.0,
                9_000_000,
                1_000_000,
                segment=cust,
            )
        with hypoprobe.endpoint(ep):
            hypoprobe.customer(raw[0], "not a number")  # type: ignore[arg-type]
        snap = hypoprobe.snapshot()
        outputs = {
            "exposition": generate_latest().decode(),
            "snapshot": snap.to_json(),
            "otel": otel.metrics_data(snap).to_json(),
        }
        rep = analysis.report(snap)
        for fmt in render.FORMATS:
            outputs[f"report-{fmt}"] = render.render_report(rep, fmt)
        outputs["logs"] = "\n".join(r.getMessage() for r in caplog.records)
    assert customer_impact(snap, hid, ep) is not None
    for name, text in outputs.items():
        for cust in raw:
            assert cust not in text, (name, cust)


def test_metrics_expose_per_host_distinct_gauges_and_exact_sums(
    fake_clock: Any, unique_id: Any, keyed: None
) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep)
    for i in range(30):
        request(f"c{i % 10}", 7.0, 9_000_000 if i % 2 else 0, 1_000_000)
    samples = {
        (s.name, s.labels["kind"]): s.value
        for fam in text_string_to_metric_families(generate_latest().decode())
        for s in fam.samples
        if s.labels.get("hypothesis") == hid and (s.name.startswith("hypoprobe_customer"))
    }
    assert samples[("hypoprobe_customers", "seen")] == 10
    assert samples[("hypoprobe_customers", "affected")] == 5
    assert samples[("hypoprobe_customers_value", "affected")] == 35.0
    assert samples[("hypoprobe_customer_requests_total", "seen")] == 30
    assert samples[("hypoprobe_customer_probe_seconds_total", "affected")] == pytest.approx(0.135)


def test_a_live_metrics_scrape_reports_the_hosts_customers(
    fake_clock: Any, unique_id: Any, keyed: None
) -> None:
    from hypoprobe import analysis, sources

    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep)
    for i in range(40):
        request(f"c{i % 20}", 3.0, 9_000_000 if i % 4 == 0 else 0, 1_000_000)
    server, _ = hypoprobe.start_metrics_server(0)
    try:
        snap = sources.scrape_metrics([f"127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
        server.server_close()
    verdict = next(v for v in analysis.report(snap, hypotheses=[hid]).verdicts)
    assert verdict.customers is not None
    figures = verdict.to_dict()["customers"]
    assert (figures["seen"], figures["affected"]) == (20, 5)
    assert (figures["seen_value"], figures["affected_value"]) == (60.0, 15.0)
    assert figures["exact"] is False  # gauges: the host's figures, not a sample to union
    again = analysis.customer_impact(Snapshot.from_json(snap.to_json()), hid, ep)
    assert again is not None
    assert (again.seen, again.affected, again.affected_value) == (20, 5, 15.0)


def test_opentelemetry_export_carries_the_customer_figures(
    fake_clock: Any, unique_id: Any, keyed: None
) -> None:
    from hypoprobe import otel

    hid, ep = unique_id("H"), unique_id("GET /x")
    request, _ = make_scenario(fake_clock, hid, ep)
    for i in range(12):
        request(f"c{i % 6}", 2.0, 9_000_000 if i < 2 else 0, 1_000_000)
    data = otel.metrics_data(hypoprobe.snapshot())
    points: dict[tuple[str, str], float] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    attrs = dict(p.attributes or {})
                    mine = attrs.get(otel.attribute_name("hypothesis")) == hid
                    if mine and metric.name.startswith("hypoprobe_customer"):
                        kind = str(attrs[otel.attribute_name("kind")])
                        points[(metric.name, kind)] = cast("NumberDataPoint", p).value
    assert points[("hypoprobe_customers", "seen")] == 6
    assert points[("hypoprobe_customers", "affected")] == 2
    assert points[("hypoprobe_customers_value", "affected")] == 4.0
    assert points[("hypoprobe_customer_requests", "seen")] == 12
