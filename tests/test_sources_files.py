"""Snapshot files as a report source: load, merge, and refuse bad files with a clear line."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe.sources import SourceError, load_snapshot_files
from source_checks import requester


def _traffic(clock: FakeClock, hid: str, endpoint: str) -> Callable[..., None]:
    """A request function with known probe and endpoint times (fake clock)."""
    hypoprobe.hypothesis(
        hid,
        claim="the query dominates the endpoint",
        endpoint=endpoint,
        min_share=0.3,
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        slow_threshold=0.5,
    )

    return requester(clock, hid, endpoint, "query")


def _write(path: Path, snap: hypoprobe.Snapshot) -> Path:
    path.write_text(snap.to_json())
    return path


def test_one_file_loads_to_the_snapshot_that_was_written(
    tmp_path: Path, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /ep")
    request = _traffic(fake_clock, hid, endpoint)
    request(0.010, 0.002, 0.003)
    request(0.700, 0.300)
    snap = hypoprobe.snapshot()

    loaded = load_snapshot_files([_write(tmp_path / "one.json", snap)])

    assert loaded == snap
    assert loaded.moments_for(hid, endpoint).requests == 2
    assert loaded.moments_for(hid, endpoint, slow=True).requests == 1


def test_several_files_are_merged(
    tmp_path: Path, fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /ep")
    request = _traffic(fake_clock, hid, endpoint)
    request(0.010, 0.002)
    first = hypoprobe.snapshot()
    request(0.020, 0.004, 0.004)
    request(0.030)
    second = hypoprobe.snapshot()

    # As from two processes: two snapshots of one process are the same counters twice.
    second = dataclasses.replace(second, origins=("web-2:4242:1",))
    merged = load_snapshot_files(
        [_write(tmp_path / "a.json", first), str(_write(tmp_path / "b.json", second))]
    )

    mo = merged.moments_for(hid, endpoint)
    assert mo.requests == 1 + 3
    assert mo.requests_with_probe == 1 + 2
    assert mo.probe_seconds == pytest.approx(0.002 + (0.002 + 0.008))
    e = merged.endpoint(endpoint)
    assert e is not None
    assert e.duration.count == 4
    assert merged.hypothesis(hid) == first.hypothesis(hid)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ('{"schema": "hypoprobe.snapshot/1", "created_', "not valid JSON"),
        ('{"schema": "someone-else/7", "created_at": 0}', "unsupported snapshot schema"),
        ('{"schema": "hypoprobe.snapshot/1"}', "corrupt"),
        ("[1, 2, 3]", "JSON object"),
    ],
)
def test_empty_or_corrupt_file_is_no_data(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)

    with pytest.raises(SourceError) as info:
        load_snapshot_files([path])

    assert info.value.exit_code == 4
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert problem in message
    assert "hypoprobe snapshot" in message  # what to do


def test_missing_file_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"

    with pytest.raises(SourceError, match="does not exist") as info:
        load_snapshot_files([path])

    assert info.value.exit_code == 3
    assert str(path) in str(info.value)


def test_no_file_at_all_is_a_usage_error() -> None:
    with pytest.raises(SourceError, match="no snapshot file") as info:
        load_snapshot_files([])

    assert info.value.exit_code == 2
