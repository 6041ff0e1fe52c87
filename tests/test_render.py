"""Every output format: stored expected text for the table and Markdown, the JSON schemas,
and the HTML page (self-contained, with its plots).

The expected files in tests/expected/ are rewritten with ``HYPOPROBE_UPDATE_EXPECTED=1``;
review the diff before committing them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

import hypoprobe
import scenarios
from hypoprobe import analysis, render
from hypoprobe.analysis import ComparisonReport, Report
from hypoprobe.model import Snapshot

EXPECTED = Path(__file__).parent / "expected"
UPDATE = os.environ.get("HYPOPROBE_UPDATE_EXPECTED") == "1"

#: Fixed ids, so the expected text is stable; no other test uses them.
GOLDEN = {
    "GOLDEN-SEED": ("seed_story", 1),
    "GOLDEN-DOMINANT": ("dominant_query", 1),
    "GOLDEN-NPLUS1": ("n_plus_one", 1),
    "GOLDEN-FEW": ("too_few", 1),
    "GOLDEN-SLOW": ("slow_segment", 1),
}


def _record(ids: dict[str, tuple[str, int]], source: str) -> Snapshot:
    """Replay each scenario under its id; return only that traffic, stamped for stability."""
    before = hypoprobe.snapshot()
    for hid, (name, seed) in ids.items():
        scenario = scenarios.ALL[name](seed)
        scenarios.run(scenario, hid)
    window = hypoprobe.snapshot().minus(before)
    # Probes other tests left without a hypothesis are not this window's business; the
    # slowest requests carry wall times, so the stored texts leave them out (they have
    # their own test in test_report_slowest.py).
    return dataclasses.replace(
        window, source=source, created_at=1_790_000_000.0, unregistered=(), slowest=()
    )


@pytest.fixture(scope="module")
def golden_report() -> Report:
    snap = _record(GOLDEN, "five golden scenarios")
    return analysis.report(snap, hypotheses=list(GOLDEN))


@pytest.fixture(scope="module")
def golden_comparison() -> ComparisonReport:
    hid = "GOLDEN-FIX"
    story = scenarios.seed_story(3)
    scenarios.register(story, hid, "GET /campaigns")
    fixed = [
        scenarios.Request(r.endpoint_ns - r.probe_ns + r.probe_ns // 5, (r.probe_ns // 5,))
        for r in scenarios.seed_story(4).requests
    ]
    with scenarios.scripted_clock() as clock:
        start = hypoprobe.snapshot()
        scenarios.replay(story.requests, hid, "GET /campaigns", clock, story.probe_name)
        middle = hypoprobe.snapshot()
        scenarios.replay(fixed, hid, "GET /campaigns", clock, story.probe_name)
        end = hypoprobe.snapshot()
    before = dataclasses.replace(middle.minus(start), source="before the fix")
    after = dataclasses.replace(end.minus(middle), source="after the fix")
    return analysis.compare(before, after, hypotheses=[hid])


def _check_expected(name: str, text: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), text.splitlines(), "expected", "got", lineterm=""
            )
        )
        pytest.fail(f"{name} differs from the stored expected output:\n{diff}")


def test_table_matches_the_expected_text(golden_report: Report) -> None:
    _check_expected("report.txt", render.render_report(golden_report, "table"))


def test_markdown_matches_the_expected_text(golden_report: Report) -> None:
    _check_expected("report.md", render.render_report(golden_report, "markdown"))


def test_comparison_table_and_markdown_match_the_expected_text(
    golden_comparison: ComparisonReport,
) -> None:
    _check_expected("compare.txt", render.render_comparison(golden_comparison, "table"))
    _check_expected("compare.md", render.render_comparison(golden_comparison, "markdown"))


def test_table_shows_every_verdict_and_its_sentence(golden_report: Report) -> None:
    text = render.render_report(golden_report, "table")
    for v in golden_report.verdicts:
        assert v.hypothesis in text
        assert v.verdict in text
    assert "DISPROVED: count_subscribers is" in text
    assert max(len(line) for line in text.splitlines()) < 160


def _schema(name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        resources.files("hypoprobe.render").joinpath(name).read_text(encoding="utf-8")
    )
    return doc


#: The verdict keys the issue fixes as the stable contract.
STABLE_KEYS = {
    "hypothesis",
    "endpoint",
    "claim",
    "requests",
    "requests_with_probe",
    "aggregate_share",
    "ci_low",
    "ci_high",
    "min_share",
    "verdict",
    "requests_needed",
    "anecdote_share",
    "anecdote_percentile",
    "slow_share",
    "slow_requests",
    "endpoint_p50",
    "endpoint_p95",
    "endpoint_p99",
    "probe_p95",
    "calls_per_request_mean",
    "calls_per_request_p95",
    "saving_seconds_per_request",
    "saving_share",
}


def test_json_report_validates_against_its_schema(golden_report: Report) -> None:
    doc = json.loads(render.render_report(golden_report, "json"))
    schema = _schema("report.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    assert doc["schema"] == render.REPORT_SCHEMA == "hypoprobe.report/1"
    assert len(doc["verdicts"]) == len(GOLDEN)
    for item, v in zip(doc["verdicts"], golden_report.verdicts, strict=True):
        assert set(item) >= STABLE_KEYS
        # 12 significant digits in JSON: float noise dropped, every measured digit kept.
        assert item["aggregate_share"] == pytest.approx(v.aggregate_share, rel=1e-11)
        assert item["verdict"] == v.verdict
        assert item["meaning"] == v.meaning
    required = set(schema["$defs"]["verdict"]["required"])  # type: ignore[index]
    assert required >= STABLE_KEYS


def test_json_schema_rejects_a_broken_report(golden_report: Report) -> None:
    doc = json.loads(render.render_report(golden_report, "json"))
    schema = _schema("report.schema.json")
    broken = json.loads(json.dumps(doc))
    broken["verdicts"][0]["verdict"] = "PROBABLY"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    del doc["verdicts"][0]["ci_low"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_json_comparison_validates_against_its_schema(
    golden_comparison: ComparisonReport,
) -> None:
    doc = json.loads(render.render_comparison(golden_comparison, "json"))
    schema = _schema("comparison.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    assert doc["schema"] == "hypoprobe.comparison/1"
    (c,) = doc["comparisons"]
    assert c["mean_change_significant"] is True
    assert c["endpoint_mean_change"] < 0


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _classes(page: _Page, tag: str) -> list[str]:
    return [a.get("class") or "" for t, a in page.tags if t == tag]


def test_html_is_self_contained_and_has_the_plots(golden_report: Report) -> None:
    text = render.render_report(golden_report, "html")
    page = _Page()
    page.feed(text)
    names = {t for t, _ in page.tags}
    # Nothing that a browser would fetch: no scripts, links, images, frames, URLs.
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}
    assert not any(
        k in ("src", "href", "xlink:href", "srcset") for _, attrs in page.tags for k in attrs
    )
    assert not re.search(r"https?:|url\(|@import|//[a-z]", text, re.IGNORECASE)

    svgs = _classes(page, "svg")
    n = len(golden_report.verdicts)
    assert svgs.count("plot share") == n
    assert svgs.count("plot latency") == n
    assert svgs.count("plot calls") == n
    lines = _classes(page, "line")
    with_anecdote = sum(1 for v in golden_report.verdicts if v.anecdote_share is not None)
    assert lines.count("claim") == n  # min_share on every share plot
    assert lines.count("anecdote") >= with_anecdote
    assert lines.count("threshold") == 1  # only GOLDEN-SLOW has a slow threshold
    rects = _classes(page, "rect")
    assert "bar-slow" in rects  # its slow requests are coloured apart
    assert rects.count("bar") > 3 * n
    for v in golden_report.verdicts:
        assert v.meaning.replace("&", "&amp;") in text


def test_html_comparison_is_self_contained(golden_comparison: ComparisonReport) -> None:
    text = render.render_comparison(golden_comparison, "html")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|url\(|@import|<script|<link", text, re.IGNORECASE)
    assert "significant" in text
    page = _Page()
    page.feed(text)
    # Before and after overlaid on one scale, one plot per endpoint.
    assert _classes(page, "svg") == ["plot latency-compare"]
    rects = _classes(page, "rect")
    assert rects.count("bar-before") > 5
    assert rects.count("bar-after") > 5


def test_markdown_escapes_table_cells(golden_report: Report) -> None:
    v = golden_report.verdicts[0]
    odd = dataclasses.replace(
        golden_report, verdicts=(dataclasses.replace(v, endpoint="GET /a|b"),)
    )
    text = render.render_report(odd, "markdown")
    table_rows = [line for line in text.splitlines() if line.startswith("| GOLDEN")]
    assert len(table_rows) == 1
    assert "GET /a\\|b" in table_rows[0]


def test_unknown_format_is_refused(golden_report: Report) -> None:
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        render.render_report(golden_report, "pdf")
