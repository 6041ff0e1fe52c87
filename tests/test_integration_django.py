"""Django: a middleware naming requests by the URL resolver's route pattern.

A real Django (settings configured in-process, no database) driven by its own test
client; each test brings its own URLconf and middleware list via ``override_settings``.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError
from hypoprobe.integrations.django import normalise_route
from servers import need_component

try:
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]
    from django.http import HttpResponse, StreamingHttpResponse  # type: ignore[import-untyped]
    from django.test import Client, override_settings  # type: ignore[import-untyped]
    from django.urls import include, path, re_path  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the test extra installs Django
    django = None

MS = 1_000_000
MIDDLEWARE = ["hypoprobe.integrations.django.HypoprobeMiddleware"]


@pytest.fixture(scope="module", autouse=True)
def _django() -> None:
    need_component("Django", django is not None, "pip install -e '.[test]'")
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="hypoprobe-tests",
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=[],
            DATABASES={},
            MIDDLEWARE=[],
            ROOT_URLCONF=types.ModuleType("hypoprobe_tests_empty_urls"),
        )
        django.setup()


def _urls(*patterns: Any) -> types.ModuleType:
    module = types.ModuleType("hypoprobe_tests_urls")
    module.urlpatterns = list(patterns)  # type: ignore[attr-defined]
    return module


def _count(name: str) -> int:
    data = hypoprobe.snapshot().endpoint(name)
    return 0 if data is None else data.duration.count


def custom_name(request: Any) -> str:
    """Named in a setting by its dotted path (this module is importable from tests/)."""
    return f"{request.method} /custom-{request.path_info.strip('/').split('/')[0]}"


def ok(request: Any, **kwargs: Any) -> HttpResponse:
    return HttpResponse("ok")


def test_routes_are_normalised_to_templates() -> None:
    assert normalise_route("campaigns/<int:id>/") == "/campaigns/{id}/"
    assert normalise_route("api/items/<slug:s>") == "/api/items/{s}"
    assert (
        normalise_route("^articles/(?P<year>[0-9]{4})/(?P<p>(a|b)+)/$") == "/articles/{year}/{p}/"
    )


def test_two_ids_of_one_route_are_one_endpoint_and_view_probes_count(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("app")
    endpoint = f"GET /{tok}/campaigns/{{id}}/"
    hypoprobe.hypothesis(hid, claim="the count query dominates", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="count_subscribers")
    def count_subscribers() -> int:
        fake_clock.advance(30 * MS)
        return 3

    def campaign(request: Any, id: int) -> HttpResponse:
        fake_clock.advance(70 * MS)
        return HttpResponse(f"{id}:{count_subscribers()}")

    urls = _urls(path(f"{tok}/campaigns/<int:id>/", campaign))
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=MIDDLEWARE):
        client = Client()
        assert client.get(f"/{tok}/campaigns/1/").content == b"1:3"
        assert client.get(f"/{tok}/campaigns/2/").content == b"2:3"

    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert (moments.requests, moments.requests_with_probe) == (2, 2)
    assert moments.probe_seconds == pytest.approx(0.060)
    assert moments.endpoint_seconds == pytest.approx(0.200)


def test_included_and_regex_routes_and_unmatched(unique_id: Callable[..., str]) -> None:
    tok = unique_id("app")
    urls = _urls(
        path(f"{tok}/api/", include([path("items/<slug:slug>", ok)])),
        re_path(rf"^{tok}/articles/(?P<year>[0-9]{{4}})/$", ok),
    )
    before = _count("GET <unmatched>")
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=MIDDLEWARE):
        client = Client()
        assert client.get(f"/{tok}/api/items/blue").status_code == 200
        assert client.get(f"/{tok}/articles/2024/").status_code == 200
        assert client.get(f"/{tok}/nowhere").status_code == 404
    assert _count(f"GET /{tok}/api/items/{{slug}}") == 1
    assert _count(f"GET /{tok}/articles/{{year}}/") == 1
    assert _count("GET <unmatched>") == before + 1


def test_a_streamed_response_ends_when_the_response_is_closed(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, tok = unique_id(), unique_id("app")
    endpoint = f"GET /{tok}/export"
    hypoprobe.hypothesis(hid, claim="rows dominate", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="row")
    def row(i: int) -> bytes:
        fake_clock.advance(10 * MS)
        return b"%d\n" % i

    def export(request: Any) -> StreamingHttpResponse:
        def rows() -> Iterator[bytes]:
            for i in range(3):
                yield row(i)
            fake_clock.advance(20 * MS)

        return StreamingHttpResponse(rows())

    with override_settings(
        ROOT_URLCONF=_urls(path(f"{tok}/export", export)), MIDDLEWARE=MIDDLEWARE
    ):
        response = Client().get(f"/{tok}/export")
        assert _count(endpoint) == 0  # the body is not sent yet: the request goes on
        assert b"".join(response.streaming_content) == b"0\n1\n2\n"  # closes when exhausted
    moments = hypoprobe.snapshot().moments_for(hid, endpoint)
    assert moments.requests == 1
    assert moments.probe_seconds == pytest.approx(0.030)
    assert moments.endpoint_seconds == pytest.approx(0.050)


class Boom(Exception):
    pass


def test_view_exceptions_reach_the_caller_unchanged_and_the_scope_ends(
    unique_id: Callable[..., str],
) -> None:
    tok = unique_id("app")
    raised = Boom("view failed")

    def fail(request: Any) -> HttpResponse:
        raise raised

    with override_settings(ROOT_URLCONF=_urls(path(f"{tok}/fail", fail)), MIDDLEWARE=MIDDLEWARE):
        with pytest.raises(Boom) as info:
            Client().get(f"/{tok}/fail")
        assert info.value is raised
        assert Client(raise_request_exception=False).get(f"/{tok}/fail").status_code == 500
    assert _count(f"GET /{tok}/fail") == 2


class BreakResolverMatch:
    """A later middleware leaving a resolver match that has no route: a faulty naming."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        request.resolver_match = object()
        return response


def test_a_faulty_route_is_counted_and_the_request_named_unmatched(
    unique_id: Callable[..., str],
) -> None:
    tok = unique_id("app")
    faults = hypoprobe.snapshot().internal_errors.get("integration_name", 0)
    unmatched = _count("GET <unmatched>")
    middleware = [*MIDDLEWARE, "test_integration_django.BreakResolverMatch"]
    with override_settings(ROOT_URLCONF=_urls(path(f"{tok}/x", ok)), MIDDLEWARE=middleware):
        assert Client().get(f"/{tok}/x").content == b"ok"
    assert hypoprobe.snapshot().internal_errors.get("integration_name", 0) == faults + 1
    assert _count("GET <unmatched>") == unmatched + 1
    assert _count(f"GET /{tok}/x") == 0


def test_naming_from_settings_and_bad_settings_fail_at_startup(
    unique_id: Callable[..., str],
) -> None:
    tok = unique_id("app")
    urls = _urls(path(f"{tok}/x", ok))
    with override_settings(
        ROOT_URLCONF=urls,
        MIDDLEWARE=MIDDLEWARE,
        HYPOPROBE_ENDPOINT_NAME="test_integration_django.custom_name",
    ):
        assert Client().get(f"/{tok}/x").content == b"ok"
    assert _count(f"GET /custom-{tok}") == 1

    with (
        override_settings(ROOT_URLCONF=urls, MIDDLEWARE=MIDDLEWARE, HYPOPROBE_SEGMENT=42),
        pytest.raises(ConfigurationError, match="HYPOPROBE_SEGMENT"),
    ):
        Client().get(f"/{tok}/x")


def test_an_async_streamed_response_is_timed_to_its_end(unique_id: Callable[..., str]) -> None:
    tok = unique_id("app")
    endpoint = f"GET /{tok}/async-export"

    def export(request: Any) -> StreamingHttpResponse:
        async def rows() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"%d\n" % i

        return StreamingHttpResponse(rows())

    urls = _urls(path(f"{tok}/async-export", export))
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=MIDDLEWARE):
        response = Client().get(f"/{tok}/async-export")
        assert _count(endpoint) == 0
        with pytest.warns(Warning, match="synchronously"):  # Django's own, under WSGI
            assert b"".join(response) == b"0\n1\n2\n"
    assert _count(endpoint) == 1
