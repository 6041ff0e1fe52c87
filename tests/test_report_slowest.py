"""The report lists the single requests behind the aggregate: highest shares and slowest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema

import hypoprobe
import hypoprobe.render
from conftest import FakeClock
from hypoprobe import analysis
from hypoprobe.render import render_report


def _schema() -> dict[str, object]:
    path = Path(hypoprobe.render.__file__).with_name("report.schema.json")
    schema: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _traffic(clock: FakeClock, hid: str, endpoint: str) -> None:
    hypoprobe.hypothesis(hid, claim="the query dominates", endpoint=endpoint, min_share=0.5)
    query = hypoprobe.probe(hid, name="query")
    # 40 requests: the probe takes k ms of a (k + 10) ms request; request 39 is the outlier.
    for k in range(40):
        with hypoprobe.endpoint(endpoint):
            clock.advance_seconds(0.010)
            with query:
                clock.advance_seconds(0.001 * k if k < 39 else 0.5)


def test_every_format_lists_the_highest_share_and_slowest_requests(
    fake_clock: FakeClock, unique_id: Callable[..., str]
) -> None:
    hid, endpoint = unique_id("h"), unique_id("GET /slowest")
    before = hypoprobe.snapshot()
    _traffic(fake_clock, hid, endpoint)
    snap = hypoprobe.snapshot().minus(before)
    (verdict,) = analysis.report(snap, hypotheses=[hid]).verdicts

    kinds = [r.kind for r in verdict.slowest_requests]
    assert kinds[:1] == ["share"]
    assert "latency" in kinds
    top = verdict.slowest_requests[0]
    assert top.endpoint_seconds == 0.51
    assert round(top.share, 4) == round(0.5 / 0.51, 4)

    data = json.loads(render_report(analysis.report(snap, hypotheses=[hid]), "json"))
    rows = data["verdicts"][0]["slowest_requests"]
    assert rows[0]["kind"] == "share"
    assert rows[0]["endpoint_seconds"] == 0.51
    jsonschema.validate(data, _schema())

    rep = analysis.report(snap, hypotheses=[hid])
    assert "highest share: 98.0%" in render_report(rep, "table")
    assert "- highest share: 98.0%" in render_report(rep, "markdown")
    assert "<li>highest share: 98.0%" in render_report(rep, "html")
