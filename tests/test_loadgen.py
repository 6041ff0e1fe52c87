"""The demo's load generator: seeded, a realistic mix, and bounded in requests and time.

It is driven against a tiny stand-in WSGI app on a real HTTP server (wsgiref) that serves
the account list the generator reads and counts every request it receives.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from hypoprobe.demo import loadgen

ACCOUNTS = [
    {"id": i, "plan": plan, "lists": [100 + i], "campaigns": [1000 + i, 2000 + i]}
    for i, plan in enumerate(["free"] * 10 + ["pro"] * 5 + ["enterprise"], start=1)
]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class CountingApp:
    """Answers ``/api/accounts`` with :data:`ACCOUNTS`, anything else with 200 after ``delay``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.paths: list[str] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/api/accounts":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(ACCOUNTS).encode()]
        self.paths.append(path)
        time.sleep(self.delay)  # the stand-in's response time, for the time bound
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


def _serve(app: CountingApp) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def app() -> CountingApp:
    return CountingApp()


@pytest.fixture
def url(app: CountingApp) -> Iterator[str]:
    yield from _serve(app)


def test_sends_exactly_the_requested_number_of_requests(app: CountingApp, url: str) -> None:
    result = loadgen.run(url, requests=37, seed=3)
    assert (result.requests, result.errors, result.stopped_by) == (37, 0, "requests")
    assert len(app.paths) == 37
    assert sum(result.by_page.values()) == 37


def test_the_same_seed_sends_the_same_requests(app: CountingApp, url: str) -> None:
    loadgen.run(url, requests=40, seed=5)
    first, app.paths[:] = list(app.paths), []
    loadgen.run(url, requests=40, seed=5)
    assert app.paths == first
    loadgen.run(url, requests=40, seed=6)
    assert app.paths[40:] != first


def test_stops_at_the_time_bound() -> None:
    slow = CountingApp(delay=0.05)
    for url in _serve(slow):
        result = loadgen.run(url, requests=10_000, seed=1, max_seconds=0.5)
    assert result.stopped_by == "time"
    assert 0 < result.requests < 10_000
    assert len(slow.paths) == result.requests
    # It stops at the first request after the bound: the overrun is at most one request.
    assert result.seconds < 0.5 + 2.0


def test_the_mix_follows_the_documented_weights() -> None:
    planned = loadgen.plan_requests(ACCOUNTS, 20_000, seed=2)
    pages = Counter(page for page, _ in planned)
    for page, weight in loadgen.ENDPOINT_MIX.items():
        assert pages[page] / len(planned) == pytest.approx(weight, abs=0.01)
    by_id = {a["id"]: a for a in ACCOUNTS}
    enterprise = sum(
        1
        for _, path in planned
        if path.startswith("/accounts/") and by_id[int(path.split("/")[2])]["plan"] == "enterprise"
    )
    accounts_pages = pages["campaigns"] + pages["lists"]
    assert enterprise / accounts_pages == pytest.approx(loadgen.PLAN_MIX["enterprise"], abs=0.01)


def test_progress_is_reported_for_every_request(url: str) -> None:
    seen: list[tuple[int, int]] = []
    loadgen.run(url, requests=5, seed=1, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]


def test_command_line(app: CountingApp, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert loadgen.main([url, "--requests", "12", "--seed", "9"]) == 0
    assert len(app.paths) == 12
    assert "12 requests" in capsys.readouterr().out


def test_command_line_rejects_a_non_http_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert loadgen.main(["ftp://example.invalid/", "--requests", "1"]) == 2
    assert "not an http://" in capsys.readouterr().err
