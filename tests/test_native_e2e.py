"""Native histograms end to end: a pre-fork app -> Prometheus (protobuf scrape) -> PromQL.

A real Prometheus 2.42 started with ``--enable-feature=native-histograms`` scrapes a
two-worker gunicorn app whose ``/metrics`` is :func:`hypoprobe.metrics_wsgi_app`. It keeps
only the native form of each histogram (no ``_bucket`` series), and PromQL's
``histogram_quantile`` over it must match the host's own snapshot of the same requests within
one native bucket (5%), where the classic buckets a text scrape carries miss by 30% and more.
``query_prometheus`` (the report's ``--prometheus`` source) must read the native series alone.
A scraper that does not ask for protobuf still gets text that ``promtool check metrics``
passes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hypoprobe._cli import rules as _rules
from hypoprobe._core import _buckets
from hypoprobe.analysis import Verdict, report
from hypoprobe.model import Histogram, Snapshot
from servers import (
    PrometheusServer,
    free_port,
    require_prometheus,
    require_promtool,
    start_prometheus,
)

pytestmark = [pytest.mark.real_server, pytest.mark.slow]

APP = Path(__file__).resolve().parent / "nativeapp"
JOB = "native"
HYP = "NATIVE-1"
ENDPOINT = "GET /work"
CALLS = 25
REQUESTS = 160
PROTOBUF_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)


def get(address: str, path: str, accept: str | None = None) -> bytes:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, f"GET {path}: HTTP {resp.status}"
        return body
    finally:
        conn.close()


@contextlib.contextmanager
def gunicorn(tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    directory = tmp_path / "multiproc"
    directory.mkdir()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "HYPOPROBE_MULTIPROC_DIR": str(directory)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", address]
    cmd += ["--preload", "--no-control-socket", "--chdir", str(APP), "app:app"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            try:
                get(address, "/snapshot")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def drive(address: str, rng: random.Random, n: int) -> None:
    # Endpoint times of 34-40 ms (exactly: the app advances its clock by them), all in the
    # classic bucket (2^25 ns, 2^26 ns] = (33.6 ms, 67.1 ms], whose interpolation puts the
    # median near 50 ms and p95 near 65 ms; 25 calls per request, where the classic calls
    # buckets are 20 and 50.
    paths = []
    for _ in range(n):
        ms = rng.uniform(34, 40)
        paths.append(f"/work?ms={ms:.3f}&probe_ms={ms * 0.6:.3f}&calls={CALLS}")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: get(address, p), paths))


def snapshot_of(address: str) -> Snapshot:
    return Snapshot.from_json(get(address, "/snapshot").decode())


def value(prom: PrometheusServer, expr: str, at: float | None = None) -> float:
    got = prom.query_value(expr, at)
    assert got is not None, f"no result for {expr}"
    return got


LATENCY = f'hypoprobe_endpoint_duration_seconds{{endpoint="{ENDPOINT}"}}'


def requests_of(snap: Snapshot) -> int:
    endpoint = snap.endpoint(ENDPOINT)
    return 0 if endpoint is None else endpoint.duration.count


def scrape_with(prom: PrometheusServer, requests: int, after: float) -> float:
    """The timestamp of the first scrape at or after ``after`` that holds ``requests``.

    The windows compared below run from one scrape to another, so Prometheus' own view
    of them is exact (no ``increase()`` extrapolation, no request of a neighbouring
    interval); a scrape is only taken once it counts what the host's snapshot counts.
    """
    deadline = time.monotonic() + 30
    while True:
        prom.wait_for_scrape_after(after, JOB)
        (series,) = prom.query(f'timestamp(up{{job="{JOB}"}})')
        at = float(series["value"][1])
        got = prom.query_value(f"histogram_count(sum({LATENCY}))", at)
        if got == requests:
            return at
        assert got is None or got < requests, f"Prometheus counts {got}, the host {requests}"
        assert time.monotonic() < deadline, f"no scrape with {requests} requests (last {got})"
        after = at + 0.001


def settled(address: str, requests: int) -> Snapshot:
    """The host's snapshot once it counts ``requests`` (every worker's files written)."""
    deadline = time.monotonic() + 30
    while True:
        snap = snapshot_of(address)
        got = requests_of(snap)
        assert got <= requests, f"the host counts {got} requests of {requests} sent"
        if got == requests:
            return snap
        assert time.monotonic() < deadline, f"the host counts {got} requests of {requests}"
        time.sleep(0.05)


def wait_for_rules_after(prom: PrometheusServer, t: float) -> None:
    """Until every recording rule checked below was evaluated after wall time ``t``."""
    deadline = time.monotonic() + 30
    for rule in (_rules.LATENCY, _rules.CALLS):
        while (prom.query_value(f"min(timestamp({rule}))") or 0) <= t:
            assert time.monotonic() < deadline, f"{rule} not evaluated after {t}"
            time.sleep(0.1)


def classic(hist: Histogram, layout: _buckets.BucketLayout) -> Histogram:
    """The histogram a text scrape carries (default buckets_per_octave=1)."""
    dur = layout is _buckets.DURATION
    shown = _buckets.duration_exposed(1) if dur else layout.default_exposed
    return hist.restrict(layout.natural_bounds[i] for i in shown)


def verdict(snap: Snapshot) -> Verdict:
    (v,) = report(snap, hypotheses=[HYP], endpoint=ENDPOINT).verdicts
    return v


def off(got: float, want: float) -> float:
    return abs(got / want - 1)


def cli(*args: str, output: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hypoprobe.cli", *args, "-o", str(output)],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_native_histograms_through_real_prometheus(tmp_path: Path) -> None:
    require_prometheus()
    rng = random.Random(20261201)
    rules_file = tmp_path / "hypoprobe.rules.yml"
    cli("rules", "--import", "app", output=rules_file)
    dashboard_file = tmp_path / "dashboard.json"
    cli("dashboard", "--import", "app", output=dashboard_file)
    with gunicorn(tmp_path) as address:
        drive(address, rng, 4)  # the series exist before the first scrape
        flags = ["--enable-feature=native-histograms", "--enable-feature=exemplar-storage"]
        with start_prometheus(
            tmp_path, {JOB: [address]}, rule_files=[rules_file], extra_flags=flags
        ) as prom:
            prom.wait_for_up(JOB)
            before = snapshot_of(address)
            start = scrape_with(prom, requests_of(before), time.time())
            load_start = time.time()
            drive(address, rng, REQUESTS)
            snap = settled(address, requests_of(before) + REQUESTS)
            end = scrape_with(prom, requests_of(snap), time.time())
            seen_end = time.time()  # the scrape at `end` is committed by now

            # Prometheus kept the native form only.
            assert prom.query("hypoprobe_endpoint_duration_seconds_count") == []
            latency = LATENCY
            endpoint = snap.endpoint(ENDPOINT)
            assert endpoint is not None
            hist = endpoint.duration
            assert value(prom, f"histogram_count(sum({latency}))", end) == hist.count
            assert value(prom, f"histogram_sum(sum({latency}))", end) == pytest.approx(hist.sum)
            coarse = classic(hist, _buckets.DURATION)
            for q in (0.5, 0.95, 0.99):
                want = hist.quantile(q)
                assert want is not None
                got = value(prom, f"histogram_quantile({q}, sum({latency}))")
                was = coarse.quantile(q)
                assert was is not None
                print(
                    f"latency p{q * 100:g}: native {got:.5f} snapshot {want:.5f} classic {was:.5f}"
                )
                assert off(got, want) <= 0.05, (q, got, want)
            # 34-40 ms all lie in the classic bucket (33.6 ms, 67.1 ms]: its p95 is ~65 ms.
            assert off(coarse.quantile(0.95) or 0, hist.quantile(0.95) or 1) >= 0.30

            (req,) = [r for r in snap.requests if r.hypothesis == HYP]
            calls_sel = f'hypoprobe_request_calls{{hypothesis="{HYP}",endpoint="{ENDPOINT}"}}'
            for q in (0.5, 0.95):
                want = req.calls.quantile(q)
                got = value(prom, f"histogram_quantile({q}, sum({calls_sel}))")
                was = classic(req.calls, _buckets.CALLS).quantile(q)
                assert want is not None
                assert was is not None
                print(f"calls p{q * 100:g}: native {got:.3f} snapshot {want:.3f} classic {was:.3f}")
                assert off(got, want) <= 0.05, (q, got, want)
                assert off(was, want) >= 0.30, (q, was, want)
            assert value(prom, f"histogram_sum(sum({calls_sel}))") == req.calls.sum

            # Shares: the per-request share histogram's mean, and the aggregate from counters.
            share_sel = f'hypoprobe_request_share_ratio{{hypothesis="{HYP}",endpoint="{ENDPOINT}"}}'
            mean_share = value(
                prom, f"histogram_sum(sum({share_sel})) / histogram_count(sum({share_sel}))"
            )
            assert mean_share == pytest.approx(req.share.sum / req.share.count, rel=1e-6)
            share_median = value(prom, f"histogram_quantile(0.5, sum({share_sel}))")
            assert off(share_median, req.share.quantile(0.5) or 1) <= 0.05

            # The report's Prometheus source reads the native series alone.
            from hypoprobe.sources import query_prometheus

            window = snap.minus(before)
            # From the scrape before the load to the first one that holds all of it: the
            # same requests as the snapshots' difference, none before, none after.
            remote = query_prometheus(prom.url, window_seconds=end - start, at=end)
            local_v, remote_v = verdict(window), verdict(remote)
            for field in ("endpoint_p50", "endpoint_p95", "endpoint_p99", "calls_per_request_p95"):
                got, want = getattr(remote_v, field), getattr(local_v, field)
                print(f"report {field}: prometheus {got}, snapshot {want}")
                assert got is not None
                assert want is not None
                assert off(got, want) <= 0.05, (field, got, want)
            assert remote_v.requests == local_v.requests == REQUESTS
            assert remote_v.aggregate_share == pytest.approx(local_v.aggregate_share, abs=0.01)
            # The same through the command line a user runs.
            report_file = tmp_path / "report.json"
            cli("report", "--prometheus", prom.url, "--window", f"{end - start:.3f}",
                "--at", f"{end:.3f}", "--format", "json", output=report_file)  # fmt: skip
            (quoted,) = [
                v for v in json.loads(report_file.read_text())["verdicts"] if v["hypothesis"] == HYP
            ]
            for field in ("endpoint_p50", "endpoint_p95", "endpoint_p99"):
                assert off(quoted[field], getattr(local_v, field)) <= 0.05, (field, quoted)
            assert quoted["requests"] == REQUESTS

            # Exemplars of the native histogram: trace ids of requests the snapshot knows.
            found = prom.api(
                "query_exemplars",
                {"query": latency, "start": load_start - 5, "end": time.time()},
            )
            traces = {ex["labels"]["trace_id"] for series in found for ex in series["exemplars"]}
            print(f"exemplars: {len(traces)} traces")
            assert traces
            # Exemplars are per worker (the snapshot above is one worker's view of them), so
            # check what they are: traced requests of this endpoint, of their true duration.
            assert all(len(t) == 32 for t in traces)
            for series in found:
                for ex in series["exemplars"]:
                    assert 0.0 < float(ex["value"]) < 1.0, ex

            # The shipped recording rules and dashboard work from the native series alone.
            wait_for_rules_after(prom, seen_end)
            for quantile in ("0.5", "0.95"):
                rule = f'{_rules.LATENCY}{{endpoint="{ENDPOINT}",quantile="{quantile}"}}'
                want = window.endpoint(ENDPOINT).duration.quantile(float(quantile))  # type: ignore[union-attr]
                assert want is not None
                assert off(value(prom, rule), want) <= 0.05, rule
            calls_rule = f'{_rules.CALLS}{{hypothesis="{HYP}"}}'
            assert value(prom, calls_rule) == pytest.approx(CALLS)
            doc = json.loads(dashboard_file.read_text())
            for panel in doc["panels"]:
                for target in panel.get("targets", ()):
                    if "hypoprobe_customer" in target["expr"]:
                        continue  # this app names no customers: those panels are empty
                    expr = target["expr"].replace("$__rate_interval", "1m")
                    assert prom.query(expr.replace("$hypothesis", HYP)), (panel["title"], expr)

        # A scraper without protobuf: plain text, as prometheus_client writes it; lint-clean.
        promtool = require_promtool()
        text = get(address, "/metrics", accept="text/plain;version=0.0.4")
        assert b"hypoprobe_endpoint_duration_seconds_bucket" in text
        assert b"nativeapp_jobs_total" in text
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
        )
        assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
        # And the protobuf scrape carries the application's own metrics too.
        assert b"nativeapp_jobs_total" in get(address, "/metrics", accept=PROTOBUF_ACCEPT)
