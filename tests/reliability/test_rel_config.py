"""Configuration that used to be accepted and then broke recording (or raised the wrong error).

The house rule: a bad value is a ``ConfigurationError`` at configuration time, naming the
setting; a value that is accepted records correctly for as long as the process runs.
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import re

import pytest

import hypoprobe
from hypoprobe import prometheus

pytestmark = pytest.mark.reliability


_ids = itertools.count(1)


def _register(hid: str, **fields: object) -> hypoprobe.Hypothesis:
    hid = f"{hid}-{next(_ids)}"  # unique: a refused definition must not meet an accepted one
    return hypoprobe.hypothesis(
        hid,
        claim="x is slow",
        endpoint=f"GET /{hid}",
        min_share=0.5,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("threshold", [1e300, 1e10, float(10**18)])
def test_an_absurd_slow_threshold_is_refused_at_registration(threshold: float) -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="slow_threshold"):
        _register("REL-SLOW-BIG", slow_threshold=threshold)


def test_the_largest_slow_threshold_accepted_still_records(fake_clock) -> None:  # type: ignore[no-untyped-def]
    h = _register("REL-SLOW-MAX", slow_threshold=86_400 * 365)
    probe = hypoprobe.probe(h.id, name="q")
    with hypoprobe.endpoint(h.endpoints[0]):
        with probe:
            fake_clock.advance(1000)
        fake_clock.advance(1000)
    snap = hypoprobe.snapshot()
    moments = {m.slow: m.requests for m in snap.moments if m.hypothesis == h.id}
    assert moments.get(False) == 1
    assert moments.get(True, 0) == 0
    assert "scope_enter" not in snap.internal_errors
    assert "scope_exit" not in snap.internal_errors


@pytest.mark.parametrize(
    "expires",
    [
        "9999-12-31",
        dt.date.max,
        dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(1, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        "0001-01-01T00:30:00+05:00",
    ],
)
def test_an_expiry_past_the_calendar_is_a_configuration_error(expires: object) -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="expires"):
        _register("REL-EXP-MAX", expires=expires)


def test_the_last_representable_expiry_day_is_accepted() -> None:
    h = _register("REL-EXP-OK", expires="9999-12-30")
    assert h.expires == dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc)
    assert not h.is_expired()


@pytest.mark.parametrize("value", [1.0, True, 2.0, False, "1"])
def test_buckets_per_octave_must_be_an_integer_of_the_list(value: object) -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="buckets_per_octave"):
        hypoprobe.configure(buckets_per_octave=value)


def test_no_docstring_example_binds_every_interface() -> None:
    # start_http_server(port) listens on 0.0.0.0: an example copied into production would
    # publish the metrics (endpoint names, hypotheses) to whoever reaches the host.
    source = inspect.getsource(prometheus)
    calls = re.findall(r"start_http_server\([^)]*\)", source)
    assert calls
    assert all("addr=" in call for call in calls), calls
