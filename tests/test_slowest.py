"""The slowest requests: per hypothesis and endpoint, the top K by share and by latency.

Durations come from ``fake_clock``, so every listed number is known exactly. Each test uses
its own hypothesis and endpoint, and reads only its own entries of ``snapshot().slowest``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_trace_id

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError
from hypoprobe._config import from_environment
from hypoprobe._core import _clock
from hypoprobe.model import SlowRequest, Snapshot

MS = 1_000_000  # nanoseconds
TRACER = TracerProvider().get_tracer("hypoprobe-tests")

Request = Callable[..., None]


@pytest.fixture
def setup(unique_id: Callable[..., str], fake_clock: FakeClock) -> tuple[str, str, Request]:
    """A hypothesis with two probes, and ``request(endpoint_ms, a_ms=0, b_ms=0, a_calls=1)``."""
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="a and b dominate", endpoint=ep, min_share=0.5)

    def request(endpoint_ms: float, a_ms: float = 0, b_ms: float = 0, a_calls: int = 1) -> None:
        with hypoprobe.endpoint(ep):
            for _ in range(a_calls if a_ms else 0):
                with hypoprobe.probe(hid, name="a"):
                    fake_clock.advance(round(a_ms / a_calls * MS))
            if b_ms:
                with hypoprobe.probe(hid, name="b"):
                    fake_clock.advance(round(b_ms * MS))
            fake_clock.advance(round((endpoint_ms - a_ms - b_ms) * MS))

    return hid, ep, request


def _listed(hid: str, kind: str, snap: Snapshot | None = None) -> list[SlowRequest]:
    snap = snap or hypoprobe.snapshot()
    return [r for r in snap.slowest if r.hypothesis == hid and r.kind == kind]


def test_the_k_highest_shares_and_the_k_slowest_requests_are_listed_exactly(
    setup: tuple[str, str, Request], restore_config: None
) -> None:
    hid, ep, request = setup
    hypoprobe.configure(slowest_requests=3)
    request(100, a_ms=10)  # share 0.10
    request(200, a_ms=30, b_ms=50, a_calls=3)  # share 0.40, 4 calls
    request(1000, a_ms=100)  # share 0.10, the slowest
    request(50, b_ms=45)  # share 0.90
    request(400)  # no probe called: share 0
    request(80, a_ms=40, a_calls=2)  # share 0.50
    request(300, b_ms=3)  # share 0.01

    share = _listed(hid, "share")
    # Integer nanoseconds divided once: exact.
    assert [(r.endpoint_seconds, r.probe_seconds, r.calls) for r in share] == [
        (0.050, 0.045, 1),
        (0.080, 0.040, 2),
        (0.200, 0.080, 4),
    ]
    assert [r.share for r in share] == pytest.approx([0.9, 0.5, 0.4])
    latency = _listed(hid, "latency")
    assert [r.endpoint_seconds for r in latency] == pytest.approx([1.0, 0.4, 0.3])
    assert [r.share for r in latency] == pytest.approx([0.1, 0.0, 0.01])
    assert {r.endpoint for r in share + latency} == {ep}
    assert all(r.trace_id is None for r in share + latency)
    assert all(abs(r.at - time.time()) < 600 for r in share)  # wall time, not the test clock


def test_a_snapshot_does_not_take_the_list_away_from_the_next(
    setup: tuple[str, str, Request],
) -> None:
    hid, _, request = setup
    for ms in (10, 20, 30):
        request(ms, a_ms=ms / 2)
    first = _listed(hid, "latency")
    assert [r.endpoint_seconds for r in first] == pytest.approx([0.03, 0.02, 0.01])
    assert _listed(hid, "latency") == first  # a scrape in between changes nothing
    request(5, a_ms=1)
    assert len(_listed(hid, "latency")) == 4


def test_the_trace_of_a_traced_request_is_listed(setup: tuple[str, str, Request]) -> None:
    hid, _, request = setup
    with TRACER.start_as_current_span("GET /x") as span:
        request(900, a_ms=800)
    request(100, a_ms=1)
    (traced, untraced) = _listed(hid, "latency")
    assert traced.trace_id == format_trace_id(span.get_span_context().trace_id)
    assert untraced.trace_id is None


def test_slowest_requests_zero_keeps_none_and_exemplars_still_work(
    setup: tuple[str, str, Request], restore_config: None
) -> None:
    hid, ep, request = setup
    hypoprobe.configure(slowest_requests=0)
    with TRACER.start_as_current_span("GET /x"):
        request(100, a_ms=50)
    snap = hypoprobe.snapshot()
    assert _listed(hid, "share", snap) == []
    assert _listed(hid, "latency", snap) == []
    endpoint = snap.endpoint(ep)
    assert endpoint is not None
    assert len(endpoint.duration.exemplars) == 1


def test_requests_older_than_the_window_are_dropped(
    setup: tuple[str, str, Request], fake_clock: FakeClock, restore_config: None
) -> None:
    # The window runs on the fake clock's wall time: on a loaded machine real seconds can
    # pass between a request and the snapshot that should still list it.
    hid, _, request = setup
    previous_wall = _clock.use_wall(fake_clock.wall)
    try:
        hypoprobe.configure(slowest_window_seconds=60)
        request(100, a_ms=50)
        assert len(_listed(hid, "share")) == 1
        fake_clock.advance_seconds(59)  # a half-window turn keeps it beside the new lists
        assert len(_listed(hid, "share")) == 1
        fake_clock.advance_seconds(2)
        assert _listed(hid, "share") == []
        request(10, a_ms=1)  # the list fills again
        assert [r.endpoint_seconds for r in _listed(hid, "share")] == pytest.approx([0.01])
    finally:
        _clock.use_wall(previous_wall)


def test_a_hypothesis_about_one_segment_lists_only_its_requests(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5, segment="enterprise")
    for plan, ms in (("free", 900), ("enterprise", 300), ("pro", 800), ("enterprise", 200)):
        with hypoprobe.endpoint(ep):
            hypoprobe.segment(plan)
            with hypoprobe.probe(hid, name="q"):
                fake_clock.advance(100 * MS)
            fake_clock.advance((ms - 100) * MS)
    assert [r.endpoint_seconds for r in _listed(hid, "latency")] == pytest.approx([0.3, 0.2])


def test_many_threads_keep_exactly_the_true_top_k(
    setup: tuple[str, str, Request],
) -> None:
    hid, _, request = setup
    rng = random.Random(5)
    # Distinct endpoint times per thread, so the true top 5 is unambiguous.
    plans = [[rng.randrange(1, 10_000) * 4 + t for _ in range(300)] for t in range(4)]

    def worker(times: list[int]) -> None:
        for us in times:
            request(us / 1000, a_ms=us / 4000)

    threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = sorted((us for p in plans for us in p), reverse=True)[:5]
    got = [r.endpoint_seconds for r in _listed(hid, "latency")]
    assert got == pytest.approx([us / 1e6 for us in want])


# --------------------------------------------------------------------------- the model


def _slow(kind: str, value: float, at: float, hid: str = "H-1") -> SlowRequest:
    seconds = value if kind == "latency" else 1.0
    share = value if kind == "share" else 0.5
    return SlowRequest(hid, "GET /x", kind, seconds, seconds * share, 2, share, at, "ab" * 16)


def test_slowest_round_trip_through_json_and_merge_keeps_the_top_k() -> None:
    a = Snapshot(
        created_at=100.0,
        source="a",
        slowest=(_slow("latency", 3.0, 10.0), _slow("latency", 1.0, 11.0)),
    )
    b = Snapshot(
        created_at=200.0,
        source="b",
        slowest=(_slow("latency", 2.0, 150.0), _slow("share", 0.7, 160.0)),
    )
    assert Snapshot.from_json(a.to_json()) == a
    merged = Snapshot.merge([a, b])
    # Two per list at most (what a process kept): the two slowest of the three.
    assert [r.endpoint_seconds for r in merged.slowest if r.kind == "latency"] == [3.0, 2.0]
    assert [r.share for r in merged.slowest if r.kind == "share"] == [0.7]
    # A window keeps what happened after the earlier snapshot.
    assert [r.at for r in merged.minus(a).slowest] == [150.0, 160.0]


def test_a_slow_request_of_unknown_kind_is_rejected() -> None:
    doc = Snapshot(created_at=1.0, source="x", slowest=(_slow("share", 0.5, 1.0),)).to_dict()
    doc["slowest"][0]["kind"] = "fastest"
    with pytest.raises(hypoprobe.SnapshotError):
        Snapshot.from_dict(doc)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("slowest_requests", -1),
        ("slowest_requests", 1000),
        ("slowest_requests", True),
        ("slowest_window_seconds", 0),
        ("slowest_window_seconds", float("nan")),
        ("exemplars", "yes"),
    ],
)
def test_bad_settings_are_refused(setting: str, value: object, restore_config: None) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        hypoprobe.configure(**{setting: value})


def test_settings_from_the_environment() -> None:
    config = from_environment(
        {
            "HYPOPROBE_EXEMPLARS": "0",
            "HYPOPROBE_SLOWEST_REQUESTS": "10",
            "HYPOPROBE_SLOWEST_WINDOW": "60",
        }
    )
    assert (config.exemplars, config.slowest_requests, config.slowest_window_seconds) == (
        False,
        10,
        60.0,
    )
    defaults = from_environment({})
    assert (defaults.exemplars, defaults.slowest_requests) == (True, 5)
