"""Live /metrics as a report source: what a scrape rebuilds is what the process recorded.

Real HTTP all the way: hypoprobe's collector served by prometheus_client's
``start_http_server``, a second hypoprobe process for the fleet case, and a plain stdlib
HTTP server for the endpoints that are not hypoprobe's.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, start_http_server
from prometheus_client.openmetrics import exposition as openmetrics_exposition

import hypoprobe
from conftest import FakeClock
from hypoprobe.model import Snapshot
from hypoprobe.sources import SourceError, load_snapshot_files, scrape_metrics
from servers import free_port
from source_checks import assert_same_histogram, assert_same_moments, requester

PROBE = "query"


# --------------------------------------------------------------------------- helpers


def _hypothesis(hid: str, endpoint: str) -> None:
    hypoprobe.hypothesis(
        hid,
        claim='the "subscriber" query dominates\nthe endpoint',
        endpoint=endpoint,
        min_share=0.3,
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        slow_threshold=0.5,
        owner="perf-team",
        ticket="https://tracker.example/PERF-1",
        expires="2099-12-31",
    )


def _traffic(clock: FakeClock, hid: str, endpoint: str) -> Callable[..., None]:
    """A request function with known probe and endpoint times (fake clock)."""

    return requester(clock, hid, endpoint, PROBE)


def _mixed(request: Callable[..., None], n: int) -> None:
    """n requests: mostly fast with 0-3 cheap calls, every fifth one slow."""
    for i in range(n):
        rest = 0.600 if i % 5 == 0 else 0.001 * (1 + i % 7)
        request(rest, *[0.0002 * (1 + i % 4)] * (i % 4))


def _assert_rebuilt(got: Snapshot, truth: Snapshot, hid: str, endpoint: str) -> None:
    """Everything the scrape rebuilt for (hid, endpoint) equals the recorded truth."""
    for slow in (False, True):
        want, have = truth.moments_for(hid, endpoint, slow), got.moments_for(hid, endpoint, slow)
        assert_same_moments(have, want)
    got_e, truth_e = got.endpoint(endpoint), truth.endpoint(endpoint)
    assert got_e is not None
    assert truth_e is not None
    assert_same_histogram(got_e.duration, truth_e.duration)

    key = (hid, PROBE, endpoint)
    (got_p,) = [p for p in got.probes if (p.hypothesis, p.probe, p.endpoint) == key]
    (truth_p,) = [p for p in truth.probes if (p.hypothesis, p.probe, p.endpoint) == key]
    assert_same_histogram(got_p.duration, truth_p.duration)

    (got_r,) = [r for r in got.requests if (r.hypothesis, r.probe, r.endpoint) == key]
    (truth_r,) = [r for r in truth.requests if (r.hypothesis, r.probe, r.endpoint) == key]
    for part in ("probe_seconds_fast", "probe_seconds_slow", "share", "calls"):
        assert_same_histogram(getattr(got_r, part), getattr(truth_r, part))


@pytest.fixture
def metrics_url() -> Iterator[str]:
    """This process's /metrics (prometheus_client's default registry, hypoprobe included)."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _FixedAnswer(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b""
    content_type = "text/plain"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def plain_server() -> Iterator[Callable[[int, bytes, str], str]]:
    """Start stdlib HTTP servers that always answer one status and body; returns their URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(status: int, body: bytes, content_type: str = "text/plain") -> str:
        handler = type(
            "Handler",
            (_FixedAnswer,),
            {"status": status, "body": body, "content_type": content_type},
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/metrics"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# A second hypoprobe process: deterministic traffic (its own fake clock), its snapshot
# written to a file, then its /metrics served until stdin closes.
_WORKER = r"""
import sys
import hypoprobe
from prometheus_client import start_http_server

hid, endpoint, out = sys.argv[1:4]
now = [10**12]
hypoprobe.configure(clock=lambda: now[0])
hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.3, slow_threshold=0.5)

@hypoprobe.probe(hid, name="query")
def query(ns):
    now[0] += ns

for i in range(40):
    with hypoprobe.endpoint(endpoint):
        now[0] += 1_000_000 * (1 + i % 7) + (700_000_000 if i % 10 == 0 else 0)
        for _ in range(i % 6):
            query(150_000 * (1 + i % 5))
with open(out, "w") as f:
    f.write(hypoprobe.snapshot().to_json())
server, _ = start_http_server(0, addr="127.0.0.1")
print(server.server_port, flush=True)
sys.stdin.readline()
"""


# --------------------------------------------------------------------------- round trips


def test_scrape_rebuilds_what_the_process_recorded(
    metrics_url: str, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /campaigns")
    _hypothesis(hid, endpoint)
    _mixed(_traffic(fake_clock, hid, endpoint), 30)
    ghost = unique_id("ghost")  # probed, never registered

    @hypoprobe.probe(hid, name="flaky")
    def flaky() -> None:
        raise KeyError("gone")

    @hypoprobe.probe(ghost)
    def haunted() -> None:
        pass

    for _ in range(3):
        with pytest.raises(KeyError), hypoprobe.endpoint(endpoint):
            flaky()
    haunted()
    truth = hypoprobe.snapshot()

    got = scrape_metrics([metrics_url])

    _assert_rebuilt(got, truth, hid, endpoint)
    mine = [x for x in got.exceptions if x.hypothesis == hid]
    assert mine == [x for x in truth.exceptions if x.hypothesis == hid]
    assert [(x.probe, x.count) for x in mine] == [("flaky", 3)]
    assert ghost in truth.unregistered
    assert got.unregistered == truth.unregistered
    assert got.internal_errors == truth.internal_errors
    assert got.series_overflow == truth.series_overflow
    assert got.moments_for(hid, endpoint, slow=True).requests == 6
    assert got.moments_for(hid, endpoint).requests == 30 + 3
    info, want = got.hypothesis(hid), truth.hypothesis(hid)
    assert info is not None
    assert want is not None
    assert (info.claim, info.endpoints, info.min_share, info.slow_threshold) == (
        want.claim,
        want.endpoints,
        want.min_share,
        want.slow_threshold,
    )
    assert (info.owner, info.ticket, info.expired) == (
        "perf-team",
        "https://tracker.example/PERF-1",
        False,
    )
    assert want.expires is not None
    assert info.expires == want.expires  # the date on the series, the instant in the model
    assert info.observed_share == pytest.approx(1.2 / 1.5)
    assert got.source == f"metrics {metrics_url}"


def test_openmetrics_answer_is_parsed_too(
    plain_server: Callable[..., str], fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /campaigns")
    _hypothesis(hid, endpoint)
    _mixed(_traffic(fake_clock, hid, endpoint), 15)
    truth = hypoprobe.snapshot()
    # A server that answers OpenMetrics whatever was asked for.
    body = openmetrics_exposition.generate_latest(REGISTRY)  # type: ignore[no-untyped-call]
    url = plain_server(200, body, openmetrics_exposition.CONTENT_TYPE_LATEST)

    got = scrape_metrics([url])

    _assert_rebuilt(got, truth, hid, endpoint)


def test_url_without_scheme_or_path_means_http_and_metrics(
    metrics_url: str, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /x")
    _hypothesis(hid, endpoint)
    _mixed(_traffic(fake_clock, hid, endpoint), 3)

    host_port = metrics_url.removeprefix("http://").removesuffix("/metrics")
    got = scrape_metrics([host_port])

    assert got.moments_for(hid, endpoint).requests == 3


def test_windowed_scrape_keeps_only_what_happened_between_the_scrapes(
    metrics_url: str, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /campaigns")
    _hypothesis(hid, endpoint)
    request = _traffic(fake_clock, hid, endpoint)

    @hypoprobe.probe(hid, name="flaky")
    def flaky() -> None:
        raise KeyError("gone")

    def fail(times: int) -> None:
        for _ in range(times):
            with pytest.raises(KeyError):
                flaky()

    _mixed(request, 25)  # before the window: must not count
    fail(2)
    seen: dict[str, Snapshot] = {}
    messages: list[str] = []

    def progress(message: str) -> None:
        messages.append(message)
        if message.startswith("waiting"):  # the first scrape is done: traffic in the window
            seen["before"] = hypoprobe.snapshot()
            _mixed(request, 12)
            fail(1)
            seen["after"] = hypoprobe.snapshot()

    got = scrape_metrics([metrics_url], window_seconds=0.2, progress=progress)

    assert got.moments_for(hid, endpoint).requests == 12
    assert [(x.probe, x.count) for x in got.exceptions if x.hypothesis == hid] == [("flaky", 1)]
    _assert_rebuilt(got, seen["after"].minus(seen["before"]), hid, endpoint)
    assert messages[0] == f"scraped {metrics_url}"
    assert messages[1] == "waiting 0.2 s for the second scrape"


def test_two_targets_are_merged(
    tmp_path: Path, metrics_url: str, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /campaigns")
    _hypothesis(hid, endpoint)
    _mixed(_traffic(fake_clock, hid, endpoint), 20)
    worker_json = tmp_path / "worker.json"
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, hid, endpoint, str(worker_json)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        port = int(worker.stdout.readline())
        local = hypoprobe.snapshot()
        progress: list[str] = []

        got = scrape_metrics(
            [metrics_url, f"http://127.0.0.1:{port}/metrics"], progress=progress.append
        )
    finally:
        worker.communicate("", timeout=10)

    truth = Snapshot.merge([local, load_snapshot_files([worker_json])])
    assert got.moments_for(hid, endpoint).requests == 20 + 40
    _assert_rebuilt(got, truth, hid, endpoint)
    assert sorted(m.split(":")[0] for m in progress) == ["scraped 1/2", "scraped 2/2"]


# --------------------------------------------------------------------------- bad input


def _one_line(exc: SourceError) -> str:
    message = str(exc)
    assert message
    assert "\n" not in message
    return message


def test_unreachable_url_is_exit_3() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens there

    with pytest.raises(SourceError) as info:
        scrape_metrics([url], timeout=2)

    assert info.value.exit_code == 3
    message = _one_line(info.value)
    assert message.startswith(f"cannot reach {url}")
    assert "check the address" in message


def test_http_error_is_exit_3(plain_server: Callable[..., str]) -> None:
    url = plain_server(404, b"not found")

    with pytest.raises(SourceError) as info:
        scrape_metrics([url])

    assert info.value.exit_code == 3
    assert "answered HTTP 404" in _one_line(info.value)


def test_metrics_without_hypoprobe_is_exit_4() -> None:
    registry = CollectorRegistry()
    Counter("shop_orders", "Orders placed.", registry=registry).inc(3)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with pytest.raises(SourceError) as info:
            scrape_metrics([f"http://127.0.0.1:{port}/metrics"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    assert info.value.exit_code == 4
    assert "serves no hypoprobe metrics" in _one_line(info.value)


def test_a_page_that_is_not_metrics_is_exit_4(plain_server: Callable[..., str]) -> None:
    url = plain_server(200, b"<html><body>Welcome</body></html>\n", "text/html")

    with pytest.raises(SourceError) as info:
        scrape_metrics([url])

    assert info.value.exit_code == 4
    assert "did not answer with Prometheus metrics" in _one_line(info.value)


def test_one_bad_target_among_many_fails_the_scrape(
    metrics_url: str, plain_server: Callable[..., str]
) -> None:
    bad = plain_server(500, b"oops")

    with pytest.raises(SourceError, match="HTTP 500") as info:
        scrape_metrics([metrics_url, bad])

    assert info.value.exit_code == 3
    assert bad in str(info.value)


def test_window_without_traffic_is_exit_4(
    metrics_url: str, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /x")
    _hypothesis(hid, endpoint)
    _mixed(_traffic(fake_clock, hid, endpoint), 3)  # data exists, but not in the window

    with pytest.raises(SourceError) as info:
        scrape_metrics([metrics_url], window_seconds=0.05)

    assert info.value.exit_code == 4
    assert "no requests were recorded" in _one_line(info.value)


@pytest.mark.parametrize(
    ("urls", "window"),
    [([], None), (["ftp://127.0.0.1/metrics"], None), (["127.0.0.1:1"], 0.0)],
)
def test_unusable_arguments_are_exit_2(urls: list[str], window: float | None) -> None:
    with pytest.raises(SourceError) as info:
        scrape_metrics(urls, window_seconds=window)

    assert info.value.exit_code == 2
    _one_line(info.value)


def test_the_same_url_twice_is_refused_not_counted_twice() -> None:
    # Merging a target with itself doubles every count: a narrower interval from the
    # same requests, a verdict from evidence that is not there.
    with pytest.raises(SourceError) as info:
        scrape_metrics(["http://127.0.0.1:9/metrics", "127.0.0.1:9"])
    assert info.value.exit_code == 2
    assert "given more than once: its requests would be counted twice" in str(info.value)
