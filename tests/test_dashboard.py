"""``hypoprobe dashboard``: the Grafana JSON's structure, and every expression parses.

Parsing is checked offline by promtool (each panel expression becomes a recording rule of
a throw-away rule file); the end-to-end test runs them all on a real Prometheus too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hypoprobe import Hypothesis, Observation
from hypoprobe._cli import dashboard as _dashboard
from hypoprobe._cli import rules as _rules
from hypoprobe.cli import main
from servers import require_promtool


def hypotheses() -> list[Hypothesis]:
    return [
        Hypothesis(
            id="PERF-1",
            claim="the subscriber count query dominates GET /campaigns",
            endpoints=("GET /campaigns",),
            min_share=0.5,
            observed=Observation(probe_seconds=1.2, endpoint_seconds=1.5),
            owner="perf-team",
            ticket="https://tickets.example.com/PERF-1",
        ),
        Hypothesis(
            id="PERF.2",
            claim='N+1 "quoted" lookups',
            endpoints=("GET /campaigns/{id}", "POST /a.b(c)*"),
            min_share=0.2,
        ),
    ]


def rows(doc: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    out: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for panel in doc["panels"]:
        if panel["type"] == "row":
            out.append((panel, []))
        else:
            out[-1][1].append(panel)
    return out


def test_a_row_per_hypothesis_with_its_panels() -> None:
    doc = _dashboard.build(hypotheses())
    got = rows(doc)
    assert [row["title"] for row, _ in got] == [
        "PERF-1: the subscriber count query dominates GET /campaigns",
        'PERF.2: N+1 "quoted" lookups',
    ]
    for _, panels in got:
        assert [p["type"] for p in panels] == [
            "timeseries",
            "heatmap",
            "timeseries",
            "timeseries",
            "table",
            "timeseries",  # customers affected
            "timeseries",  # saving per day
        ]
    share_panel = got[0][1][0]
    legends = {t["legendFormat"]: t["expr"] for t in share_panel["targets"]}
    assert legends["claim: min_share"] == "vector(0.5)"
    assert legends["anecdote: observed share"] == "vector(0.8)"
    assert share_panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    # no anecdote: no anecdote line
    second = {t["legendFormat"] for t in got[1][1][0]["targets"]}
    assert "anecdote: observed share" not in second
    assert "claim: min_share" in second
    assert got[0][1][1]["targets"][0]["format"] == "heatmap"
    info = got[0][1][4]["targets"][0]
    assert info["expr"] == 'hypoprobe_hypothesis_info{hypothesis="PERF-1"}'
    assert info["format"] == "table"


def test_endpoints_and_ids_are_escaped_for_promql() -> None:
    assert _dashboard.matcher("endpoint", ["GET /a"]) == 'endpoint="GET /a"'
    assert (
        _dashboard.matcher("endpoint", ["GET /campaigns/{id}", "POST /a.b(c)*"])
        == 'endpoint=~"GET /campaigns/\\\\{id\\\\}|POST /a\\\\.b\\\\(c\\\\)\\\\*"'
    )
    assert _dashboard.promql_string('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


def test_the_grid_has_no_overlaps_and_ids_are_unique() -> None:
    doc = _dashboard.build(hypotheses())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_without_hypotheses_one_row_repeats_over_the_variable() -> None:
    doc = _dashboard.build([])
    (row, panels) = rows(doc)[0]
    assert row["repeat"] == "hypothesis"
    assert len(rows(doc)) == 1
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["hypothesis"]["definition"] == (
        "label_values(hypoprobe_hypothesis_info, hypothesis)"
    )
    assert variables["datasource"]["type"] == "datasource"
    for panel in panels:
        for target in panel["targets"]:
            assert '"$hypothesis"' in target["expr"]
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("known", [True, False])
def test_every_expression_parses(tmp_path: Path, known: bool) -> None:
    doc = _dashboard.build(hypotheses() if known else [])
    exprs = [
        expr.replace("$__rate_interval", "1m").replace("$hypothesis", "PERF-1")
        for _, expr in _dashboard.expressions(doc)
    ]
    # + 5 per row: the customer panels (three counts, two savings per day).
    assert len(exprs) == (2 * 17 - 1 if known else 15)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "exprs.yml"
    path.write_text(_rules.to_yaml(rules) + "\n")
    done = subprocess.run(
        [require_promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_command_line_writes_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dash.json"
    assert main(["dashboard", "--title", "Fleet", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["title"] == "Fleet"
    assert doc["uid"] == "hypoprobe"
    assert main(["dashboard", "--import", "no_such_module_for_hypoprobe"]) == 2
    assert "no_such_module_for_hypoprobe" in capsys.readouterr().err
