"""End to end: two gunicorn "hosts" in multi-process mode, a real Prometheus, known load.

Two instances of ``examples/fleet`` (2 sync workers each, ``preload_app``, each with its own
multi-process directory) on 127.0.0.1; Debian's Prometheus scrapes both every second with
the rules ``hypoprobe rules`` prints. A seeded load generator sends requests whose probe
and endpoint times it chose; halfway through, one worker of the first host is killed with
SIGKILL (between requests, so every request the client saw answered was completed by the
server, and no in-flight request makes the ground truth ambiguous). Then:

* raw counters summed in PromQL equal, exactly, the requests and probe calls the load
  generator sent, per host and fleet-wide, the killed worker's included, and those of the
  second host's workers, which gunicorn recycles every 30 requests (``max_requests``);
* the shipped recording rules' aggregate share (5m and 1h) and ``query_prometheus`` match
  the ground truth Σ probe time / Σ endpoint time (as the app timed each request itself)
  within 1 percentage point;
* every expression of ``hypoprobe dashboard`` runs on the real server and returns data.

Every process is stopped by pid, on success and on failure.
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
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hypoprobe._cli import rules as _rules
from servers import PrometheusServer, free_port, require_prometheus, start_prometheus

pytestmark = [pytest.mark.real_server, pytest.mark.slow]

FLEET = Path(__file__).resolve().parent.parent / "examples" / "fleet"
HYP = "FLEET-1"
ENDPOINT = "GET /report"
JOB = "fleet"
SEED = 20261123
PER_PHASE = 120
CLIENT_THREADS = 4


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (gunicorn's workers of a master)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            out.append(int(entry))
    return sorted(out)


def _wait(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Host:
    """One gunicorn master with its workers and its own multi-process directory."""

    def __init__(self, tmp_path: Path, name: str, workers: int = 2, max_requests: int = 0) -> None:
        self.name = name
        self.max_requests = max_requests
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.workers = workers
        self.directory = tmp_path / f"multiproc-{name}"
        self.directory.mkdir()
        self.log = tmp_path / f"gunicorn-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen_workers: set[int] = set()

    def start(self) -> None:
        env = {
            **os.environ,
            "FLEET_BIND": self.address,
            "FLEET_WORKERS": str(self.workers),
            "FLEET_MAX_REQUESTS": str(self.max_requests),
            "HYPOPROBE_MULTIPROC_DIR": str(self.directory),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    str(FLEET / "gunicorn.conf.py"),
                    "--chdir",
                    str(FLEET),
                    "app:app",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        _wait(f"gunicorn {self.name} to serve", self._serving)
        _wait(
            f"{self.workers} workers of {self.name}",
            lambda: len(self.worker_pids()) == self.workers,
        )

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn {self.name} exited:\n{self.log.read_text()[-3000:]}")
        try:
            get(self.address, "/pid")
        except OSError:
            return False
        return True

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        pids = children(self.proc.pid)
        self.seen_workers.update(pids)
        return pids

    def stop(self) -> None:
        if self.proc is None:
            return
        workers = set(self.seen_workers) | set(children(self.proc.pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        for pid in workers:  # a worker orphaned by a killed master
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if Path(f"/proc/{pid}/stat").exists():
                    os.kill(pid, signal.SIGKILL)


def get(address: str, path: str) -> bytes:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise AssertionError(f"GET {path} on {address}: HTTP {resp.status}")
        return body
    finally:
        conn.close()


@dataclass(frozen=True)
class Request:
    host: int
    probe_ms: int
    rest_ms: int
    calls: int

    @property
    def path(self) -> str:
        return f"/report?probe_ms={self.probe_ms}&rest_ms={self.rest_ms}&calls={self.calls}"


@dataclass
class Sent:
    """A request as the app answered it: its pid and the times it took, by its own clock."""

    request: Request
    pid: int
    probe_s: float
    endpoint_s: float


def plan(rng: random.Random, n: int) -> list[Request]:
    return [
        Request(i % 2, rng.randint(8, 30), rng.randint(8, 30), rng.randint(1, 3)) for i in range(n)
    ]


def drive(hosts: Sequence[Host], requests: Sequence[Request]) -> list[Sent]:
    def one(req: Request) -> Sent:
        pid, probe_s, endpoint_s = get(hosts[req.host].address, req.path).split()
        return Sent(req, int(pid), float(probe_s), float(endpoint_s))

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(one, requests))


def share(sent: Sequence[Sent]) -> float:
    """The ground truth: Σ probe time / Σ endpoint time, as the app timed them itself.

    Not the times asked for: a sleep overshoots, and by more on a loaded machine, where the
    code between the sleeps also waits for a core (by 2 % of the endpoint time in one CI run).
    """
    return sum(s.probe_s for s in sent) / sum(s.endpoint_s for s in sent)


def cli(*args: str, output: Path) -> None:
    """Run the real ``hypoprobe`` command line in the example's directory (imports app)."""
    done = subprocess.run(
        [sys.executable, "-m", "hypoprobe.cli", *args, "-o", str(output)],
        cwd=FLEET,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def fleet(tmp_path: Path) -> Iterator[list[Host]]:
    # Host b recycles its workers every 30 requests (gunicorn max_requests): their counts
    # must survive them too.
    hosts = [Host(tmp_path, "a"), Host(tmp_path, "b", max_requests=30)]
    try:
        for host in hosts:
            host.start()
        yield hosts
    finally:
        for host in hosts:
            host.stop()


def value(server: PrometheusServer, expr: str) -> float:
    got = server.query_value(expr)
    assert got is not None, f"no result for {expr}"
    return got


def test_fleet_share_and_counts_through_real_prometheus(tmp_path: Path) -> None:
    require_prometheus()
    rules_file = tmp_path / "hypoprobe.rules.yml"
    cli("rules", "--alerts", "--import", "app", output=rules_file)
    dashboards = [tmp_path / "dashboard-known.json", tmp_path / "dashboard-generic.json"]
    cli("dashboard", "--import", "app", output=dashboards[0])
    cli("dashboard", output=dashboards[1])
    rng = random.Random(SEED)
    # Requests before the first scrape, half as many as the load: rate() extrapolates a
    # range that starts before its first sample by at most the time its counter would take
    # to fall to zero at the range's mean slope. From a first sample near zero that time is
    # short and differs between the probe and the endpoint counters, which skews their
    # ratio (by 0.7 pp over a 7 s load with a tenth as many). From this far above zero
    # rate() extrapolates both by the same half scrape interval, as it does in production,
    # where a 5m range is full of samples.
    warmup = plan(rng, PER_PHASE)
    phase1 = plan(rng, PER_PHASE)
    phase2 = plan(rng, PER_PHASE)

    with fleet(tmp_path) as hosts:
        # Requests before the first scrape: counted in the totals, not in rate().
        sent = drive(hosts, warmup)
        targets = {JOB: [h.address for h in hosts]}
        with start_prometheus(tmp_path, targets, rule_files=[rules_file]) as prom:
            prom.wait_for_up(JOB, n_targets=2)
            prom.wait_for_scrape_after(time.time(), JOB)
            load_start = time.time()
            main = drive(hosts, phase1)

            # Kill a worker of host a that served requests, between requests.
            victims = [s.pid for s in main if s.request.host == 0]
            victim = Counter(victims).most_common(1)[0][0]
            assert victim in hosts[0].worker_pids()
            os.kill(victim, signal.SIGKILL)
            _wait(
                "gunicorn to replace the killed worker",
                lambda: victim not in hosts[0].worker_pids() and len(hosts[0].worker_pids()) == 2,
            )
            main += drive(hosts, phase2)
            load_end = time.time()
            prom.wait_for_scrape_after(load_end + 0.5, JOB)
            time.sleep(2.5)  # two rule evaluations after that scrape
            sent += main

            by_victim = sum(1 for s in sent if s.pid == victim)
            assert by_victim > 0
            recycled = {s.pid for s in sent if s.request.host == 1}
            assert len(recycled) >= 4  # b's workers were replaced at least twice
            assert victim not in hosts[0].worker_pids()

            # Exact counts: raw counters, summed by PromQL over hosts and workers.
            total = len(sent)
            calls = sum(s.request.calls for s in sent)
            h = f'hypothesis="{HYP}",endpoint="{ENDPOINT}"'
            assert value(prom, f"sum(hypoprobe_hypothesis_requests_total{{{h}}})") == total
            endpoint_count = f'hypoprobe_endpoint_duration_seconds_count{{endpoint="{ENDPOINT}"}}'
            assert value(prom, f"sum({endpoint_count})") == total
            assert value(prom, f"sum(hypoprobe_probe_duration_seconds_count{{{h}}})") == calls
            assert value(prom, f"sum(hypoprobe_request_calls_sum{{{h}}})") == calls
            for index, host in enumerate(hosts):
                expected = sum(1 for s in sent if s.request.host == index)
                per_host = (
                    f'sum(hypoprobe_hypothesis_requests_total{{{h},instance="{host.address}"}})'
                )
                assert value(prom, per_host) == expected

            # Aggregate share: the shipped recording rules, raw counters, query_prometheus.
            truth = share(main)
            asked = sum(s.request.probe_ms for s in main) / sum(
                s.request.probe_ms + s.request.rest_ms for s in main
            )
            print(f"ground truth {truth:.4f}, the sleeps asked for {asked:.4f}")
            for window in ("5m", "1h"):
                rule = f'{_rules.SHARE.format(window=window)}{{hypothesis="{HYP}"}}'
                got = value(prom, rule)
                print(f"{rule}: {got:.4f}, ground truth {truth:.4f}")  # shown with -rP
                assert got == pytest.approx(truth, abs=0.01), rule
            raw = (
                f"sum(hypoprobe_hypothesis_probe_seconds_total{{{h}}})"
                f" / sum(hypoprobe_hypothesis_endpoint_seconds_total{{{h}}})"
            )
            assert value(prom, raw) == pytest.approx(share(sent), abs=0.01)
            requests_rule = f'{_rules.REQUESTS.format(window="5m")}{{hypothesis="{HYP}"}}'
            assert value(prom, requests_rule) > 0

            from hypoprobe.sources import query_prometheus

            snap = query_prometheus(prom.url, window_seconds=time.time() - load_start + 0.2)
            moments = [mo for mo in snap.moments if mo.hypothesis == HYP]
            probe_s = sum(mo.probe_seconds for mo in moments)
            endpoint_s = sum(mo.endpoint_seconds for mo in moments)
            assert probe_s / endpoint_s == pytest.approx(truth, abs=0.01)
            # increase() extrapolates to the window's edges: counts are close, not exact.
            requests = sum(mo.requests for mo in moments)
            print(
                f"query_prometheus: share {probe_s / endpoint_s:.4f}, requests {requests}"
                f" (sent {len(main)}); killed worker {victim} had completed {by_victim}"
            )
            assert requests == pytest.approx(len(main), rel=0.15)

            # Every dashboard expression parses and returns data on the real server.
            for path in dashboards:
                doc = json.loads(path.read_text())
                for panel in doc["panels"]:
                    for target in panel.get("targets", ()):
                        if "hypoprobe_customer" in target["expr"]:
                            continue  # this app names no customers: those panels are empty
                        expr = (
                            target["expr"]
                            .replace("$__rate_interval", "1m")
                            .replace("$hypothesis", HYP)
                        )
                        assert prom.query(expr), f"{path.name} {panel['title']}: {expr}"
