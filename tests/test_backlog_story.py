"""``hypoprobe backlog`` and ``hypoprobe story``: ranked by impact, told with numbers.

The scenario: the largest share is not the largest impact. PERF-A's query is 90% of its
requests but serves two small customers; PERF-B's is a third of its endpoint's latency for
sixty paying customers; PERF-C names no customers; PERF-D names customers without values.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

import pytest

import hypoprobe
from hypoprobe import cli
from hypoprobe._cli.story import story
from hypoprobe.analysis._backlog import SECONDS, TOTAL, VALUE, backlog
from hypoprobe.model import Snapshot

EXPECTED = Path(__file__).parent / "expected"
HOUR = 3600.0


class _Owned(TypedDict):
    """What every hypothesis of the scenario says besides its own fields."""

    owner: str
    expires: str


def _fixed_window(snap: Snapshot, created_at: float = 2_000_000_000.0) -> Snapshot:
    """The snapshot as if taken at ``created_at``, an hour after its first customer."""
    customers = tuple(replace(c, first_at=created_at - HOUR) for c in snap.customers)
    return replace(snap, created_at=created_at, customers=customers)


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    from conftest import FakeClock

    previous = hypoprobe.configure()
    clock = FakeClock()
    hypoprobe.configure(clock=clock, customer_key="backlog-story-key-0001")
    ms = 1_000_000

    def probe(hid: str) -> Any:
        @hypoprobe.probe(hid, name="query")
        def query(ns: int) -> None:
            clock.advance(ns)

        return query

    common: _Owned = {"owner": "perf-team", "expires": "2031-01-01"}
    hypoprobe.hypothesis(
        "PERF-A",
        claim="the report query dominates GET /quarterly-reports",
        endpoint="GET /quarterly-reports",
        min_share=0.5,
        observed=hypoprobe.Observation(probe_seconds=0.9, endpoint_seconds=1.0),
        ticket="https://tracker.example/PERF-A",
        **common,
    )
    hypoprobe.hypothesis(
        "PERF-B",
        claim="the N+1 makes GET /inbox slow",
        endpoint="GET /inbox",
        min_share=0.3,
        slow_threshold=0.02,
        ticket="https://tracker.example/PERF-B",
        **common,
    )
    hypoprobe.hypothesis("PERF-C", claim="c", endpoint="GET /c", min_share=0.5, **common)
    hypoprobe.hypothesis("PERF-D", claim="d", endpoint="GET /d", min_share=0.5, **common)
    a, b, c, d = (probe(h) for h in ("PERF-A", "PERF-B", "PERF-C", "PERF-D"))

    def request(ep: str, fn: Any, probe_ns: int, other_ns: int, cust: Any = None) -> None:
        with hypoprobe.endpoint(ep):
            if cust is not None:
                hypoprobe.customer(*cust)
            fn(probe_ns)
            clock.advance(other_ns)

    def traffic(b_probe_ms: int) -> None:
        for i in range(100):
            request("GET /quarterly-reports", a, 90 * ms, 10 * ms, (f"small-{i % 2}", 5.0))
            cust = (f"team-{i % 60}", 100.0)
            request("GET /inbox", b, b_probe_ms * ms if i % 2 else 2 * ms, 25 * ms, cust)
            request("GET /c", c, 5 * ms, 5 * ms)
            request("GET /d", d, 6 * ms, 4 * ms, (f"d-{i % 7}", None))

    try:
        start = hypoprobe.snapshot()
        traffic(b_probe_ms=15)
        before = hypoprobe.snapshot()
        traffic(b_probe_ms=1)  # the fix: the N+1 batched
        full = hypoprobe.snapshot()
        after = full.minus(before)
    finally:
        hypoprobe.configure(clock=previous.clock, customer_key=previous.customer_key)
    ids = {"PERF-A", "PERF-B", "PERF-C", "PERF-D"}

    def keep(s: Snapshot) -> Snapshot:  # only this scenario's hypotheses
        return replace(
            s,
            hypotheses=tuple(h for h in s.hypotheses if h.id in ids),
            customers=tuple(c for c in s.customers if c.hypothesis in ids),
        )

    over_time = [
        replace(keep(snap), created_at=2_000_000_000.0 + HOUR * i)
        for i, snap in enumerate((start, before, full))
    ]
    return {
        "before": _fixed_window(keep(before)),
        "after": _fixed_window(keep(after)),
        "over_time": over_time,
    }


def test_backlog_ranks_by_value_weighted_saving_not_by_share(scenario: dict[str, Any]) -> None:
    rows = backlog(scenario["before"])
    assert [r.hypothesis for r in rows] == ["PERF-B", "PERF-A", "PERF-D", "PERF-C"]
    by_id = {r.hypothesis: r for r in rows}
    assert by_id["PERF-A"].share is not None
    assert by_id["PERF-B"].share is not None
    assert by_id["PERF-A"].share > by_id["PERF-B"].share  # the largest share ranks second
    assert (by_id["PERF-A"].customers_affected, by_id["PERF-B"].customers_affected) == (2, 30)
    assert by_id["PERF-B"].value_affected == 3000.0
    assert [r.ranked_by for r in rows] == [VALUE, VALUE, SECONDS, TOTAL]
    # Probe seconds per day over an hour's window: 50 requests x 15 ms + 50 x 2 ms, x 24.
    assert by_id["PERF-B"].saving_seconds_per_day == pytest.approx((0.75 + 0.1) * 24)
    assert by_id["PERF-B"].value_saving_per_day == pytest.approx((0.75 + 0.1) * 100 * 24)
    assert [r.rank for r in rows] == [1, 2, 3, 4]


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_backlog_command_in_every_format(
    scenario: dict[str, Any], fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snap.json"
    path.write_text(scenario["before"].to_json())
    assert cli.main(["backlog", "--snapshot", str(path), "--format", fmt]) == 0
    out = capsys.readouterr().out
    order = [out.index(h) for h in ("PERF-B", "PERF-A", "PERF-D", "PERF-C")]
    assert order == sorted(order)
    if fmt == "json":
        doc = json.loads(out)
        assert doc["schema"] == "hypoprobe.backlog/1"
        assert doc["rows"][0]["customers_affected"] == 30
    else:
        assert "No customers named for PERF-C" in out
        assert "No customer values for PERF-D" in out


def test_backlog_of_an_empty_source_is_no_data(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(Snapshot(created_at=1.0, source="empty").to_json())
    assert cli.main(["backlog", "--snapshot", str(path)]) == 4


def test_story_matches_the_expected_markdown(scenario: dict[str, Any]) -> None:
    text = story(scenario["before"], "PERF-B", after=scenario["after"])
    expected = EXPECTED / "story-PERF-B.md"
    assert text == expected.read_text(encoding="utf-8")


def test_story_over_time_shows_the_share_per_window(scenario: dict[str, Any]) -> None:
    text = story(scenario["before"], "PERF-B", over_time=scenario["over_time"])
    table = text[text.index("| window |") :].split("\n\n")[0].splitlines()
    assert table == [
        "| window | requests | share | requests affected |",
        "|---|---|---|---|",
        "| 2033-05-18 03:33 UTC → 2033-05-18 04:33 UTC | 100 | 25.4% | 50.0% |",
        "| 2033-05-18 04:33 UTC → 2033-05-18 05:33 UTC | 100 | 5.7% | 0% |",
    ]


def test_story_of_a_hypothesis_without_customers_says_how_to_get_them(
    scenario: dict[str, Any],
) -> None:
    text = story(scenario["before"], "PERF-C")
    assert "No request named its customer" in text
    assert "hypoprobe.customer(account_id, value)" in text


def test_story_command_with_after(
    scenario: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(scenario["before"].to_json())
    after.write_text(scenario["after"].to_json())
    argv = ["story", "PERF-B", "--snapshot", str(before), "--after", str(after)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == (EXPECTED / "story-PERF-B.md").read_text(encoding="utf-8")
    assert cli.main(["story", "NOPE-1", "--snapshot", str(before)]) == 4
