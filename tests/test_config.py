"""Configuration: argument > environment > default, validation, and the run-time kill switch."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe import Config, ConfigurationError
from hypoprobe._config import from_environment


def test_defaults_without_environment() -> None:
    config = from_environment({})
    assert config == Config()
    assert (config.enabled, config.max_series, config.buckets_per_octave) == (True, 2000, 1)


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"HYPOPROBE_DISABLED": "1"}, "enabled", False),
        ({"HYPOPROBE_DISABLED": "true"}, "enabled", False),
        ({"HYPOPROBE_DISABLED": " YES "}, "enabled", False),
        ({"HYPOPROBE_DISABLED": "0"}, "enabled", True),
        ({"HYPOPROBE_DISABLED": "off"}, "enabled", True),
        ({"HYPOPROBE_MAX_SERIES": "5000"}, "max_series", 5000),
        ({"HYPOPROBE_BUCKETS_PER_OCTAVE": "4"}, "buckets_per_octave", 4),
    ],
)
def test_environment_overrides_defaults(env: dict[str, str], field: str, value: object) -> None:
    assert getattr(from_environment(env), field) == value


@pytest.mark.parametrize(
    ("var", "raw", "field"),
    [
        ("HYPOPROBE_DISABLED", "maybe", "enabled"),
        ("HYPOPROBE_MAX_SERIES", "lots", "max_series"),
        ("HYPOPROBE_MAX_SERIES", "5", "max_series"),
        ("HYPOPROBE_MAX_SERIES", "-100", "max_series"),
        ("HYPOPROBE_BUCKETS_PER_OCTAVE", "3", "buckets_per_octave"),
        ("HYPOPROBE_BUCKETS_PER_OCTAVE", "", "buckets_per_octave"),
    ],
)
def test_bad_environment_value_warns_and_falls_back(
    caplog: pytest.LogCaptureFixture, var: str, raw: str, field: str
) -> None:
    caplog.set_level(logging.WARNING, logger="hypoprobe")
    config = from_environment({var: raw, "HYPOPROBE_MAX_SERIES_UNRELATED": "x"})
    assert getattr(config, field) == getattr(Config(), field)
    (warning,) = [r for r in caplog.records if var in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert repr(raw) in warning.getMessage()


def test_one_bad_variable_does_not_spoil_the_good_ones(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hypoprobe")
    config = from_environment({"HYPOPROBE_MAX_SERIES": "3000", "HYPOPROBE_DISABLED": "perhaps"})
    assert (config.max_series, config.enabled) == (3000, True)


def test_argument_beats_environment_beats_default_in_a_fresh_process() -> None:
    code = (
        "import json, hypoprobe\n"
        "before = hypoprobe.configure()\n"
        "after = hypoprobe.configure(max_series=4000)\n"
        "print(json.dumps([before.max_series, before.buckets_per_octave, before.enabled,"
        " after.max_series, after.enabled]))\n"
    )
    env = {**os.environ, "HYPOPROBE_MAX_SERIES": "3000", "HYPOPROBE_DISABLED": "1"}
    env.pop("HYPOPROBE_BUCKETS_PER_OCTAVE", None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == [3000, 1, False, 4000, False]


@pytest.mark.parametrize(
    "settings",
    [
        {"enabeld": False},
        {"enabled": "yes"},
        {"enabled": 1},
        {"max_series": 5},
        {"max_series": 100.0},
        {"max_series": True},
        {"buckets_per_octave": 3},
        {"registry": "default"},
        {"clock": 5},
        {"clock": time.perf_counter},  # seconds as a float: sums would stop being exact
        {"clock": lambda: "now"},
        {"clock": lambda: True},
        {"clock": lambda: 1 // 0},
    ],
)
def test_bad_settings_raise_and_change_nothing(settings: dict[str, object]) -> None:
    before = hypoprobe.configure()
    with pytest.raises(ConfigurationError) as caught:
        hypoprobe.configure(**settings)
    assert isinstance(caught.value, ValueError)
    assert hypoprobe.configure() == before


def test_a_partly_bad_configure_call_changes_nothing() -> None:
    before = hypoprobe.configure()
    with pytest.raises(ConfigurationError, match="max_series"):
        hypoprobe.configure(enabled=False, max_series=3)
    assert hypoprobe.configure() == before
    assert hypoprobe.configure().enabled is True


def test_configure_returns_the_frozen_config(restore_config: None) -> None:
    config = hypoprobe.configure(max_series=4321)
    assert config.max_series == 4321
    assert hypoprobe.configure() is config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_series = 1  # type: ignore[misc]


def test_disabled_records_nothing_and_calls_through(
    registered_hypothesis: Callable[..., tuple[str, str]],
    fake_clock: FakeClock,
    restore_config: None,
) -> None:
    hid, ep = registered_hypothesis()

    @hypoprobe.probe(hid, name="sync")
    def work(x: int) -> int:
        fake_clock.advance(1_000)
        return x + 1

    @hypoprobe.probe(hid, name="async")
    async def awork(x: int) -> int:
        return x * 2

    @hypoprobe.probe(hid, name="gen")
    def gen(n: int) -> Iterator[int]:
        yield from range(n)

    @hypoprobe.endpoint(ep)
    def view() -> int:
        return work(1)

    def totals() -> tuple[int, int, int]:
        snap = hypoprobe.snapshot()
        calls = sum(p.duration.count for p in snap.probes if p.hypothesis == hid)
        endpoint = snap.endpoint(ep)
        return calls, snap.moments_for(hid, ep).requests, endpoint.duration.count if endpoint else 0

    assert view() == 2
    enabled_counts = totals()
    assert enabled_counts == (1, 1, 1)

    hypoprobe.configure(enabled=False)
    assert view() == 2
    assert asyncio.run(awork(4)) == 8
    assert list(gen(3)) == [0, 1, 2]
    with hypoprobe.endpoint(ep), hypoprobe.probe(hid, name="block"):
        fake_clock.advance(5)
    error = KeyError("passes")

    @hypoprobe.probe(hid, name="raises")
    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        fail()
    assert caught.value is error
    assert totals() == enabled_counts

    hypoprobe.configure(enabled=True)  # the kill switch works both ways, at run time
    assert view() == 2
    assert totals() == (2, 2, 2)


def test_probes_created_while_disabled_start_recording_when_enabled(
    unique_id: Callable[..., str], fake_clock: FakeClock, restore_config: None
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.configure(enabled=False)
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)

    @hypoprobe.probe(hid, name="late")
    def late() -> int:
        fake_clock.advance(1_000)
        return 7

    with hypoprobe.endpoint(ep):
        assert late() == 7
    assert not [p for p in hypoprobe.snapshot().probes if p.hypothesis == hid and p.duration.count]
    hypoprobe.configure(enabled=True)
    with hypoprobe.endpoint(ep):
        assert late() == 7
    snap = hypoprobe.snapshot()
    assert sum(p.duration.count for p in snap.probes if p.hypothesis == hid) == 1
    assert snap.moments_for(hid, ep).requests == 1
