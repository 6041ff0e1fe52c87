"""Flask: requests named by their URL rule, probes in views and streamed bodies counted.

A real Flask app driven by its own test client. The test client closes the body (which
ends the scope, as a server does) when ``buffered=True``; the ``get`` helper passes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context

import hypoprobe
from conftest import FakeClock
from hypoprobe.integrations.flask import instrument_app, normalise_rule

MS = 1_000_000


def _count(name: str) -> int:
    data = hypoprobe.snapshot().endpoint(name)
    return 0 if data is None else data.duration.count


def _app(tok: str) -> Flask:
    app = Flask(tok)
    instrument_app(app)
    return app


def test_rules_are_normalised_to_templates() -> None:
    assert normalise_rule("/campaigns/<int:id>") == "/campaigns/{id}"
    assert normalise_rule("/a/<b>/<path:rest>") == "/a/{b}/{rest}"
    assert normalise_rule("/k/<any(x, y):kind>/<uuid:u>") == "/k/{kind}/{u}"


def test_two_ids_of_one_route_are_one_endpoint_and_view_probes_count(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("app")
    endpoint = f"GET /{tok}/campaigns/{{campaign_id}}"
    hypoprobe.hypothesis(hid, claim="the count query dominates", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="count_subscribers")
    def count_subscribers(campaign_id: int) -> int:
        fake_clock.advance(60 * MS)
        return campaign_id * 10

    app = _app(tok)

    @app.get(f"/{tok}/campaigns/<int:campaign_id>")
    def campaign(campaign_id: int) -> dict[str, int]:
        fake_clock.advance(40 * MS)
        return {"subscribers": count_subscribers(campaign_id)}

    client = app.test_client()
    assert client.get(f"/{tok}/campaigns/1", buffered=True).json == {"subscribers": 10}
    assert client.get(f"/{tok}/campaigns/2", buffered=True).json == {"subscribers": 20}

    snap = hypoprobe.snapshot()
    assert snap.endpoint(endpoint) is not None
    assert not [
        e.endpoint for e in snap.endpoints if e.endpoint.startswith(f"GET /{tok}/campaigns/1")
    ]
    moments = snap.moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (2, 2)
    assert moments.probe_seconds == pytest.approx(0.120)
    assert moments.endpoint_seconds == pytest.approx(0.200)


def test_a_streamed_response_is_inside_the_scope(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("app")
    endpoint = f"GET /{tok}/export"
    hypoprobe.hypothesis(hid, claim="rows dominate", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="row")
    def row(i: int) -> str:
        fake_clock.advance(25 * MS)
        return f"{i}\n"

    app = _app(tok)

    @app.get(f"/{tok}/export")
    def export() -> Response:
        def rows() -> Iterator[str]:
            for i in range(4):
                yield row(i)

        return Response(stream_with_context(rows()), mimetype="text/plain")

    assert app.test_client().get(f"/{tok}/export", buffered=True).text == "0\n1\n2\n3\n"
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert moments.requests == 1
    assert moments.probe_seconds == pytest.approx(0.100)
    assert moments.endpoint_seconds == pytest.approx(0.100)


def test_404_and_405_are_unmatched(unique_id: Callable[..., str]) -> None:
    tok = unique_id("app")
    app = _app(tok)

    @app.get(f"/{tok}/only-get")
    def only_get() -> str:
        return "ok"

    client = app.test_client()
    before = (_count("GET <unmatched>"), _count("POST <unmatched>"))
    assert client.get(f"/{tok}/missing", buffered=True).status_code == 404
    assert client.post(f"/{tok}/only-get", buffered=True).status_code == 405
    assert (_count("GET <unmatched>"), _count("POST <unmatched>")) == (before[0] + 1, before[1] + 1)
    assert client.get(f"/{tok}/only-get", buffered=True).text == "ok"
    assert _count(f"GET /{tok}/only-get") == 1


class Boom(Exception):
    pass


def test_view_exceptions_propagate_unchanged_and_the_scope_ends(
    unique_id: Callable[..., str],
) -> None:
    tok = unique_id("app")
    app = _app(tok)
    app.testing = True  # Flask re-raises view exceptions instead of answering 500
    raised = Boom("view failed")

    @app.get(f"/{tok}/fail")
    def fail() -> Any:
        raise raised

    with pytest.raises(Boom) as info:
        app.test_client().get(f"/{tok}/fail", buffered=True)
    assert info.value is raised
    assert _count(f"GET /{tok}/fail") == 1

    app.testing = False  # production: Flask answers 500, the request is still one scope
    assert app.test_client().get(f"/{tok}/fail", buffered=True).status_code == 500
    assert _count(f"GET /{tok}/fail") == 2


def test_a_custom_naming_function_overrides_the_rule(unique_id: Callable[..., str]) -> None:
    tok = unique_id("app")
    app = Flask(tok)
    instrument_app(app, name=lambda environ: f"GET /{tok}/custom")

    @app.get(f"/{tok}/<int:x>")
    def view(x: int) -> str:
        return "ok"

    app.test_client().get(f"/{tok}/3", buffered=True)
    assert _count(f"GET /{tok}/custom") == 1
    assert _count(f"GET /{tok}/{{x}}") == 0


def test_host_matching_rules_are_matched_per_host(unique_id: Callable[..., str]) -> None:
    tok = unique_id("app")
    app = Flask(tok, host_matching=True, static_host="static.test")
    instrument_app(app)

    @app.get(f"/{tok}/<int:n>", host="a.test")
    def on_a(n: int) -> str:
        return "a"

    client = app.test_client()
    before = _count("GET <unmatched>")
    assert client.get(f"/{tok}/1", headers={"Host": "a.test"}, buffered=True).text == "a"
    assert client.get(f"/{tok}/1", headers={"Host": "b.test"}, buffered=True).status_code == 404
    assert client.get(f"/{tok}/2", headers={"Host": "a.test"}, buffered=True).text == "a"
    assert _count(f"GET /{tok}/{{n}}") == 2
    assert _count("GET <unmatched>") == before + 1
