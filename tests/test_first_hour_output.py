"""Small things a first user reads: the demo's /metrics formats, series and labels worth
exporting, numbers in JSON and sentences, fault messages, and the demo's Step 1 words."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

import hypoprobe
import scenarios
from hypoprobe import analysis, render
from hypoprobe._core import _faults
from hypoprobe.analysis._meaning import meaning
from hypoprobe.analysis._text import pct, pct_range
from hypoprobe.demo._story import Ticket, _anecdote_lines, filed_anecdotes
from hypoprobe.demo.app import HYPOTHESES, _web
from hypoprobe.model import EndpointOutcome
from hypoprobe.prometheus import families

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture(scope="module")
def metrics_app() -> Flask:
    app = Flask("metrics-only")  # the demo's routes; /metrics needs no database
    _web.register(app)
    return app


def test_the_demo_metrics_serve_openmetrics_when_asked(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    asked = client.get("/metrics", headers={"Accept": OPENMETRICS}, buffered=True)
    assert asked.headers["Content-Type"].startswith("application/openmetrics-text")
    assert asked.text.endswith("# EOF\n")
    plain = client.get("/metrics", buffered=True)
    assert plain.headers["Content-Type"].startswith("text/plain")
    assert "# EOF" not in plain.text


def test_no_zero_request_series_and_a_readable_observed_share(
    unique_id: Callable[[str], str],
) -> None:
    hid, ep = unique_id("h"), unique_id("GET /x")
    hypoprobe.hypothesis(
        hid,
        claim="c",
        endpoint=ep,
        min_share=0.5,
        observed=hypoprobe.Observation(probe_seconds=0.029, endpoint_seconds=0.036),
    )
    snap = hypoprobe.snapshot()
    snap = dataclasses.replace(
        snap, outcomes=(EndpointOutcome(ep, "", "", 0), EndpointOutcome(ep, "2xx", "", 3))
    )
    fams = {f.name: f for f in families(snap)}
    requests = [
        s for s in fams["hypoprobe_endpoint_requests"].samples if s.labels["endpoint"] == ep
    ]
    assert [(s.labels["status"], s.value) for s in requests] == [("2xx", 3.0)]
    (info,) = [
        s for s in fams["hypoprobe_hypothesis_info"].samples if s.labels["hypothesis"] == hid
    ]
    assert info.labels["observed_share"] == "0.8056"  # 29 ms of 36 ms, not 0.80555555...


def test_json_numbers_lose_float_noise_but_no_precision() -> None:
    story = scenarios.seed_story(1, 300)
    hid = "FIRST-HOUR-JSON"
    scenarios.register(story, hid, "GET /json-noise")
    before = hypoprobe.snapshot()
    with scenarios.scripted_clock() as clock:
        scenarios.replay(story.requests, hid, "GET /json-noise", clock, story.probe_name)
    rep = analysis.report(hypoprobe.snapshot().minus(before), hypotheses=[hid])
    (v,) = rep.verdicts
    noisy = dataclasses.replace(v, anecdote_share=0.7999999999999999)
    doc = json.loads(render.render_report(dataclasses.replace(rep, verdicts=(noisy,)), "json"))
    assert doc["verdicts"][0]["anecdote_share"] == 0.8
    assert doc["created_at"] == rep.created_at  # a Unix time keeps its digits


def test_interval_ends_have_the_same_decimals() -> None:
    assert pct_range(0.007, 0.0079) == "0.70\u20130.79%"
    assert pct_range(0.143, 0.196) == "14.3\u201319.6%"
    assert pct(0.0099999) == "1.0%"


def _verdict_text(**changes: object) -> str:
    base: dict[str, object] = {
        "probes": ["a", "b"],
        "hypothesis": "H",
        "verdict": "CONFIRMED",
        "endpoint": "GET /x",
        "requests": 400,
        "min_share": 0.3,
        "aggregate_share": 0.55,
        "ci_low": 0.5,
        "ci_high": 0.6,
        "requests_needed": None,
        "anecdote_percentile": None,
        "slow_share": 0.7,
        "slow_requests": 1,
        "slow_threshold": 0.025,
        "calls_per_request_mean": 1.0,
    }
    base.update(changes)
    return meaning(base)


def test_sentences_agree_in_number() -> None:
    text = _verdict_text()
    assert "the 2 probes of H are 55.0%" in text
    assert "In the 1 slow request (over 25 ms)" in text
    assert "the 2 probes of H is" not in text
    assert "Among the 3 slow requests" in _verdict_text(slow_requests=3)
    assert "a is 55.0%" in _verdict_text(probes=["a"])
    few = _verdict_text(verdict="INCONCLUSIVE", requests=29, requests_needed=1)
    assert "only 29 requests so far" in few
    assert "about 1 more request would settle it" in few


def test_a_fault_outside_an_except_block_logs_no_stray_traceback(
    caplog: pytest.LogCaptureFixture, clean_faults: None
) -> None:
    with caplog.at_level(logging.WARNING, logger="hypoprobe"):
        _faults.record("integration_body_not_closed")
    (record,) = [r for r in caplog.records if "integration_body_not_closed" in r.getMessage()]
    assert not record.exc_info
    assert "NoneType" not in caplog.text
    assert "buffered=True" in record.getMessage()  # says how to close a test client's body


def test_step1_words_follow_what_was_measured() -> None:
    ticket = filed_anecdotes(HYPOTHESES)["PERF-412"]
    assert (ticket.probe_seconds, ticket.endpoint_seconds) == (0.029, 0.036)
    close = " ".join(_anecdote_lines("q", 0.84, ticket))
    assert "The ticket agrees: PERF-412 was filed on 29 ms of 36 ms (81%)" in close
    assert "Tempting" in close
    far = " ".join(_anecdote_lines("q", 0.49, ticket))
    assert "does not quite" in far
    assert "Tempting" not in far
    assert "49%" in far
    assert "Tempting" in " ".join(_anecdote_lines("q", 0.6, Ticket("X", 0.01, 0.1)))


def test_filed_anecdotes_skip_hypotheses_without_one(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text('[[hypothesis]]\nid = "A"\n[[hypothesis]]\nid = "B"\nobserved = {}\n')
    assert filed_anecdotes(path) == {}


def test_single_requests_without_trace_ids_say_how_to_find_them() -> None:
    from hypoprobe.model import SlowRequest
    from hypoprobe.render._common import NO_TRACE_HINT, slowest_lines

    story = scenarios.too_few(1)
    hid = "FIRST-HOUR-TRACE"
    scenarios.run(story, hid, "GET /trace-hint")
    (v,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    plain = SlowRequest(hid, "GET /trace-hint", "share", 0.036, 0.029, 1, 0.8, 1.79e9 + 0.25)
    lines = slowest_lines(dataclasses.replace(v, slowest_requests=(plain,)))
    assert lines == [
        "highest share: 80.0%, 29 ms of 36 ms (1 call), ended 14:13:20.250 UTC",
        NO_TRACE_HINT,
    ]
    traced = dataclasses.replace(plain, trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    lines = slowest_lines(dataclasses.replace(v, slowest_requests=(traced,)))
    assert lines[-1].endswith("trace 4bf92f3577b34da6a3ce929d0e0e4736")
    assert NO_TRACE_HINT not in lines
