"""WSGI middleware: scopes per request, named by template, covering streamed bodies.

Streaming runs under a real server (wsgiref on 127.0.0.1), which iterates and closes the
body itself; the rest uses Werkzeug's WSGI test client. Durations come from the
deterministic ``fake_clock``: the server's own work does not move it, so an endpoint's time
is exactly what the app advanced it by.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from werkzeug.test import Client

import hypoprobe
from conftest import FakeClock
from hypoprobe.integrations.wsgi import HypoprobeMiddleware
from servers import free_port

MS = 1_000_000
StartResponse = Callable[..., Any]


class _Client(Client):
    """Werkzeug's client, closing every body (which ends the scope) as real servers do.

    Unbuffered, Werkzeug leaves the body open until the caller closes the response.
    """

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


def _count(name: str) -> int:
    data = hypoprobe.snapshot().endpoint(name)
    return 0 if data is None else data.duration.count


def _faults(kind: str) -> int:
    return hypoprobe.snapshot().internal_errors.get(kind, 0)


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(app: Any) -> tuple[WSGIServer, threading.Thread, str]:
    server = make_server("127.0.0.1", free_port(), app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


def test_streamed_body_under_a_real_server_is_inside_the_scope(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("r")
    endpoint = f"GET /{tok}/reports/{{id}}"
    hypoprobe.hypothesis(hid, claim="rows dominate", endpoint=endpoint, min_share=0.5)
    closed: list[bool] = []

    @hypoprobe.probe(hid, name="fetch_rows")
    def fetch_rows() -> bytes:
        fake_clock.advance(30 * MS)
        return b"row\n"

    class Body:
        """A streamed body whose chunks are produced lazily, while the server iterates."""

        def __iter__(self) -> Iterator[bytes]:
            yield b"header\n"
            fake_clock.advance(50 * MS)  # work outside the probe
            yield fetch_rows()
            yield fetch_rows()

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    def name(environ: dict[str, Any]) -> str | None:
        parts = environ["PATH_INFO"].split("/")
        if len(parts) == 4 and parts[1:3] == [tok, "reports"]:
            return f"{environ['REQUEST_METHOD']} /{tok}/reports/{{id}}"
        return None

    server, thread, url = _serve(HypoprobeMiddleware(app, name=name))
    try:
        for report_id in (1, 2):
            with urllib.request.urlopen(f"{url}/{tok}/reports/{report_id}", timeout=5) as resp:
                assert resp.read() == b"header\nrow\nrow\n"
        _wait_for("both requests to be recorded", lambda: _count(endpoint) == 2)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    assert closed == [True, True]  # the server closed our wrapper, which closed the body
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert moments.requests == 2
    assert moments.requests_with_probe == 2
    # Every probe call happened after the app returned, while the server iterated.
    assert moments.probe_seconds == pytest.approx(0.120)
    assert moments.endpoint_seconds == pytest.approx(0.220)


def test_unmatched_requests_use_the_method_and_a_bounded_method_set(
    unique_id: Callable[..., str],
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    client = _Client(HypoprobeMiddleware(app, name=lambda environ: None))
    before = {n: _count(n) for n in ("GET <unmatched>", "POST <unmatched>", "OTHER <unmatched>")}
    client.get(f"/{unique_id()}/nowhere")
    client.post("/anything")
    client.open("/x", method="BREW")  # a client cannot mint new endpoint names
    after = {n: _count(n) for n in before}
    assert {n: after[n] - before[n] for n in before} == {
        "GET <unmatched>": 1,
        "POST <unmatched>": 1,
        "OTHER <unmatched>": 1,
    }
    # Without a naming function every request is unmatched.
    plain = _Client(HypoprobeMiddleware(app))
    plain.get("/campaigns/7")
    assert _count("GET <unmatched>") == after["GET <unmatched>"] + 1


def test_a_failing_or_invalid_naming_function_falls_back_and_counts_a_fault() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    def broken(environ: dict[str, Any]) -> str:
        raise KeyError("route")

    faults, unmatched = _faults("integration_name"), _count("PUT <unmatched>")
    assert _Client(HypoprobeMiddleware(app, name=broken)).put("/a").data == b"ok"
    assert _Client(HypoprobeMiddleware(app, name=lambda e: "<reserved>")).put("/a").data == b"ok"
    assert _faults("integration_name") == faults + 2
    assert _count("PUT <unmatched>") == unmatched + 2


class Boom(Exception):
    pass


def test_exceptions_propagate_unchanged_and_the_scope_still_ends(
    unique_id: Callable[..., str],
) -> None:
    tok = unique_id()
    raised = Boom("from the app")

    def failing_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        raise raised

    def failing_body(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise Boom("from the body")

    name = f"GET /{tok}"
    mw = HypoprobeMiddleware(failing_app, name=lambda e: name)
    with pytest.raises(Boom) as info:
        _Client(mw).get("/")
    assert info.value is raised
    assert _count(name) == 1

    streaming = _Client(HypoprobeMiddleware(failing_body, name=lambda e: name))
    with pytest.raises(Boom, match="from the body"):
        streaming.get("/")
    assert _count(name) == 2
    # Nothing was left open: a later request in this thread is a request of its own.
    _Client(HypoprobeMiddleware(lambda e, s: [s("200 OK", []) or b""], name=lambda e: name)).get(
        "/"
    )
    assert _count(name) == 3


def test_a_body_the_server_never_closes_is_dropped_not_left_open(
    unique_id: Callable[..., str],
) -> None:
    # A non-compliant server (here: this test, calling the app as a server would) never
    # calls close(); the next request of the thread must still get its own scope.
    name = f"GET /{unique_id()}"

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    mw = HypoprobeMiddleware(app, name=lambda e: name)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    faults = _faults("integration_body_not_closed")
    assert list(mw(dict(environ), lambda *a: None)) == [b"ok"]  # iterated, never closed
    body = mw(dict(environ), lambda *a: None)
    body.close()
    assert _count(name) == 1  # the abandoned request's end is unknown: not recorded
    assert _faults("integration_body_not_closed") == faults + 1


def test_inside_an_outer_scope_the_app_is_part_of_that_request(
    unique_id: Callable[..., str],
) -> None:
    inner, outer = f"GET /{unique_id()}", unique_id("outer")
    body = [b"ok"]

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return body

    mw = HypoprobeMiddleware(app, name=lambda e: inner)
    with hypoprobe.endpoint(outer):
        assert mw({"REQUEST_METHOD": "GET"}, lambda *a: None) is body  # untouched
    assert _count(inner) == 0
    assert _count(outer) == 1


def test_the_segment_hook_is_called_only_when_the_core_has_segments(
    unique_id: Callable[..., str],
) -> None:
    seen: list[str] = []

    def segment(environ: dict[str, Any]) -> str | None:
        seen.append(environ["PATH_INFO"])
        return None

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    mw = HypoprobeMiddleware(app, name=lambda e: f"GET /{unique_id()}", segment=segment)
    _Client(mw).get("/seg")
    assert seen == (["/seg"] if hasattr(hypoprobe, "segment") else [])


@pytest.mark.usefixtures("restore_config")
def test_when_disabled_the_app_and_its_body_are_untouched(unique_id: Callable[..., str]) -> None:
    name = f"GET /{unique_id()}"
    body = [b"ok"]

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return body

    mw = HypoprobeMiddleware(app, name=lambda e: name)
    hypoprobe.configure(enabled=False)
    assert mw({"REQUEST_METHOD": "GET"}, lambda *a: None) is body
    hypoprobe.configure(enabled=True)
    assert _Client(mw).get("/").data == b"ok"
    assert _count(name) == 1


def test_a_body_closed_on_another_thread_ends_the_request_there(
    unique_id: Callable[..., str],
) -> None:
    # Some servers hand the body to another thread; the request still ends at close(),
    # and the thread that began it is not left inside a finished request.
    name = f"GET /{unique_id()}"

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    mw = HypoprobeMiddleware(app, name=lambda e: name)
    faults = dict(hypoprobe.snapshot().internal_errors)
    body = mw({"REQUEST_METHOD": "GET"}, lambda *a: None)
    closer = threading.Thread(target=lambda: (list(body), body.close()))
    closer.start()
    closer.join(5)
    assert _count(name) == 1
    assert _Client(mw).get("/").data == b"ok"
    assert _count(name) == 2
    assert dict(hypoprobe.snapshot().internal_errors) == faults


def test_the_segment_hook_tags_each_request_and_never_breaks_it(
    unique_id: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for the core's hypoprobe.segment (added later): records what it is given
    # and whether a scope was open at that moment.
    tagged: list[tuple[str, bool]] = []

    def hypoprobe_scope_open() -> bool:
        from hypoprobe._core import _scope

        return _scope.CURRENT.get() is not None

    monkeypatch.setattr(
        hypoprobe,
        "segment",
        lambda value: tagged.append((value, hypoprobe_scope_open())),
        raising=False,
    )

    def segment(environ: dict[str, Any]) -> str | None:
        plan = environ.get("HTTP_X_PLAN")
        if plan == "broken":
            raise RuntimeError("segment lookup failed")
        return plan

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    client = _Client(
        HypoprobeMiddleware(app, name=lambda e: f"GET /{unique_id()}", segment=segment)
    )
    faults = _faults("integration_segment")
    assert client.get("/", headers={"X-Plan": "enterprise"}).data == b"ok"
    assert client.get("/").data == b"ok"  # None: not tagged
    assert client.get("/", headers={"X-Plan": "broken"}).data == b"ok"
    assert tagged == [("enterprise", True)]
    assert _faults("integration_segment") == faults + 1
