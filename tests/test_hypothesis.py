"""hypoprobe.hypothesis(): validation, registration, re-registration and expiry."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError, Observation


def _register(hid: str, **overrides: object) -> hypoprobe.Hypothesis:
    fields: dict[str, object] = {
        "claim": "the count query dominates the endpoint",
        "endpoint": f"GET /{hid}",
        "min_share": 0.5,
    }
    fields.update(overrides)
    return hypoprobe.hypothesis(hid, **fields)  # type: ignore[arg-type]


# -- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "-A_b.9", "x" * 20])
def test_ticket_like_ids_are_accepted(unique_id: Callable[..., str], suffix: str) -> None:
    hid = (unique_id("") + suffix)[:64]
    assert _register(hid).id == hid


@pytest.mark.parametrize(
    "bad",
    ["", "PERF 123", "PERF/123", "PERF-123\n", "é-1", "x" * 65, None, 123, b"PERF-1"],
)
def test_bad_ids_raise_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="ticket-like"):
        _register(bad)  # type: ignore[arg-type]


def test_an_id_of_64_characters_is_the_longest_allowed() -> None:
    _register("L" * 63 + "Z")
    with pytest.raises(ConfigurationError):
        _register("L" * 64 + "Z")


# -- min_share, endpoint, observed, slow_threshold --------------------------------------


@pytest.mark.parametrize("good", [1e-9, 0.5, 1, 1.0])
def test_min_share_in_zero_one_is_accepted(unique_id: Callable[..., str], good: float) -> None:
    assert _register(unique_id(), min_share=good).min_share == float(good)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.0001, 2, float("nan"), float("inf"), True, "0.5"])
def test_min_share_outside_zero_one_is_rejected(unique_id: Callable[..., str], bad: object) -> None:
    with pytest.raises(ConfigurationError, match="min_share"):
        _register(unique_id(), min_share=bad)


def test_endpoint_may_be_one_name_or_a_list(unique_id: Callable[..., str]) -> None:
    assert _register(unique_id(), endpoint="GET /a").endpoints == ("GET /a",)
    many = _register(unique_id(), endpoint=["GET /a", "POST /b", "GET /a"])
    assert many.endpoints == ("GET /a", "POST /b")  # duplicates collapse, order kept
    assert _register(unique_id(), endpoint=("job x",)).endpoints == ("job x",)


@pytest.mark.parametrize("bad", [[], "", "   ", None, 3, ["GET /a", ""], ["GET /a", 7], "x" * 201])
def test_bad_endpoints_are_rejected(unique_id: Callable[..., str], bad: object) -> None:
    with pytest.raises(ConfigurationError, match="endpoint"):
        _register(unique_id(), endpoint=bad)


def test_reserved_endpoint_names_are_rejected(unique_id: Callable[..., str]) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        _register(unique_id(), endpoint="<none>")


def test_observed_is_the_anecdote(unique_id: Callable[..., str]) -> None:
    seen = Observation(probe_seconds=1.2, endpoint_seconds=1.5)
    h = _register(unique_id(), observed=seen)
    assert h.observed == seen
    assert h.observed_share == pytest.approx(0.8)
    info = hypoprobe.snapshot().hypothesis(h.id)
    assert info is not None
    assert info.observed_share == pytest.approx(0.8)
    assert _register(unique_id()).observed_share is None


@pytest.mark.parametrize(
    ("probe_s", "endpoint_s"),
    [(2.0, 1.0), (0, 1.0), (-1, 1.0), (1.0, 0), (float("nan"), 1.0), ("1", 2), (True, 2)],
)
def test_impossible_observations_are_rejected(probe_s: object, endpoint_s: object) -> None:
    with pytest.raises(ConfigurationError, match="Observation"):
        Observation(probe_seconds=probe_s, endpoint_seconds=endpoint_s)  # type: ignore[arg-type]


def test_observed_must_be_an_observation(unique_id: Callable[..., str]) -> None:
    with pytest.raises(ConfigurationError, match="observed"):
        _register(unique_id(), observed=(1.2, 1.5))


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "1s", True])
def test_slow_threshold_must_be_positive_seconds(
    unique_id: Callable[..., str], bad: object
) -> None:
    with pytest.raises(ConfigurationError, match="slow_threshold"):
        _register(unique_id(), slow_threshold=bad)
    assert _register(unique_id(), slow_threshold=1).slow_threshold == 1.0


@pytest.mark.parametrize("bad", ["", "   ", 42])
def test_claim_must_be_text(unique_id: Callable[..., str], bad: object) -> None:
    with pytest.raises(ConfigurationError, match="claim"):
        _register(unique_id(), claim=bad)


def test_unknown_keyword_is_a_configuration_error_and_a_value_error(
    unique_id: Callable[..., str],
) -> None:
    with pytest.raises(ConfigurationError, match="min_shar") as caught:
        _register(unique_id(), min_shar=0.5)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, hypoprobe.HypoprobeError)


def test_a_rejected_hypothesis_is_not_registered(unique_id: Callable[..., str]) -> None:
    hid = unique_id()
    with pytest.raises(ConfigurationError):
        _register(hid, min_share=5)
    assert hypoprobe.snapshot().hypothesis(hid) is None


# -- re-registration ---------------------------------------------------------------------


def test_same_definition_again_is_a_no_op(unique_id: Callable[..., str]) -> None:
    hid = unique_id()
    first = _register(hid, observed=Observation(1.2, 1.5), owner="perf", expires="2999-01-01")
    again = _register(hid, observed=Observation(1.2, 1.5), owner="perf", expires="2999-01-01")
    assert again == first
    assert [h.id for h in hypoprobe.snapshot().hypotheses].count(hid) == 1


def test_different_definition_under_the_same_id_is_an_error(
    unique_id: Callable[..., str],
) -> None:
    hid = unique_id()
    _register(hid, min_share=0.5)
    with pytest.raises(ConfigurationError, match="already registered"):
        _register(hid, min_share=0.6)
    info = hypoprobe.snapshot().hypothesis(hid)
    assert info is not None
    assert info.min_share == 0.5  # the first definition stands


# -- expiry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires",
    [
        dt.date(2999, 12, 31),
        "2999-12-31",
        dt.datetime(2999, 12, 31, 12, 0),
        dt.datetime(2999, 12, 31, 12, 0, tzinfo=dt.timezone.utc),
        "2999-12-31T12:00:00",
    ],
)
def test_expires_accepts_dates_datetimes_and_iso_strings(
    unique_id: Callable[..., str], expires: object
) -> None:
    h = _register(unique_id(), expires=expires)
    assert h.expires is not None
    assert h.expires.tzinfo is not None
    assert h.expires.date() in (dt.date(2999, 12, 31), dt.date(3000, 1, 1))
    assert not h.is_expired()
    info = hypoprobe.snapshot().hypothesis(h.id)
    assert info is not None
    assert info.expires is not None
    assert not info.expired


def test_a_date_means_through_that_day_utc(unique_id: Callable[..., str]) -> None:
    h = _register(unique_id(), expires=dt.date(2030, 6, 1))
    last_moment = dt.datetime(2030, 6, 1, 23, 59, 59, tzinfo=dt.timezone.utc)
    assert not h.is_expired(last_moment)
    assert h.is_expired(last_moment + dt.timedelta(seconds=1))


@pytest.mark.parametrize("bad", ["next week", "2026-13-01", 20260101, 1.5])
def test_bad_expiry_is_rejected(unique_id: Callable[..., str], bad: object) -> None:
    with pytest.raises(ConfigurationError, match="expires"):
        _register(unique_id(), expires=bad)


def test_expired_hypothesis_probes_pass_through_and_warn_once(
    unique_id: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    caplog.set_level(logging.WARNING, logger="hypoprobe")
    _register(hid, endpoint=ep, expires=dt.date(2020, 1, 1))

    @hypoprobe.probe(hid)
    def work(x: int) -> int:
        return x + 1

    for i in range(5):
        with hypoprobe.endpoint(ep):
            assert work(i) == i + 1
        with hypoprobe.probe(hid, name="block"):
            pass
    snap = hypoprobe.snapshot()
    hypoprobe.snapshot()

    info = snap.hypothesis(hid)
    assert info is not None
    assert info.expired
    assert [p for p in snap.probes if p.hypothesis == hid and p.duration.count] == []
    assert all(mo.requests == 0 for mo in snap.moments if mo.hypothesis == hid)
    warnings = [r for r in caplog.records if hid in r.getMessage() and "expired" in r.getMessage()]
    assert len(warnings) == 1


def test_hypothesis_registered_expired_after_its_probes_stops_them(
    unique_id: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    hid = unique_id()
    caplog.set_level(logging.WARNING, logger="hypoprobe")

    @hypoprobe.probe(hid)
    def work() -> str:
        return "ok"

    assert work() == "ok"
    _register(hid, expires="2020-01-01")
    for _ in range(3):
        assert work() == "ok"
    snap = hypoprobe.snapshot()
    counts = [p.duration.count for p in snap.probes if p.hypothesis == hid]
    assert counts == [1]  # only the call made before the hypothesis (expired) was known
    warnings = [r for r in caplog.records if hid in r.getMessage() and "expired" in r.getMessage()]
    assert len(warnings) == 1


def test_snapshot_lists_registered_hypotheses_with_their_fields(
    unique_id: Callable[..., str],
) -> None:
    hid = unique_id()
    _register(
        hid,
        endpoint=["GET /a", "GET /b"],
        min_share=0.25,
        observed=Observation(probe_seconds=0.3, endpoint_seconds=1.2),
        slow_threshold=0.75,
        owner="perf-team",
        ticket="https://tracker.example/X",
    )
    info = hypoprobe.snapshot().hypothesis(hid)
    assert info is not None
    assert info.endpoints == ("GET /a", "GET /b")
    assert (info.min_share, info.slow_threshold) == (0.25, 0.75)
    assert (info.observed_probe_seconds, info.observed_endpoint_seconds) == (0.3, 1.2)
    assert (info.owner, info.ticket, info.expires, info.expired) == (
        "perf-team",
        "https://tracker.example/X",
        None,
        False,
    )


def test_a_hypothesis_expiring_while_the_app_runs_stops_its_probes(
    unique_id: Callable[..., str], fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hypoprobe")
    hid, ep = unique_id(), unique_id("ep")
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
    _register(hid, endpoint=ep, expires=soon)

    @hypoprobe.probe(hid, name="q")
    def query() -> str:
        fake_clock.advance(1_000)
        return "rows"

    with hypoprobe.endpoint(ep):
        assert query() == "rows"
    fake_clock.advance_seconds(11 * 60)  # the hypoprobe clock passes the expiry
    for _ in range(3):
        with hypoprobe.endpoint(ep):
            assert query() == "rows"
    snap = hypoprobe.snapshot()
    assert sum(p.duration.count for p in snap.probes if p.hypothesis == hid) == 1
    assert snap.moments_for(hid, ep).requests == 1
    info = snap.hypothesis(hid)
    assert info is not None
    assert info.expired
    warnings = [r for r in caplog.records if hid in r.getMessage() and "expired" in r.getMessage()]
    assert len(warnings) == 1
