"""Survey mode: the demo app surveyed with no hypothesis finds its planted problems, shares
agree with the hypothesis-driven run and with the proposed hypotheses, sampling stays
unbiased, caps hold, and the JSON follows its schema.

A survey is process-wide and stays armed, so each scenario runs in a process of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import hypoprobe
from hypoprobe import _survey
from hypoprobe.errors import ConfigurationError
from hypoprobe.render._survey import SURVEY_SCHEMA

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).parent / "surveyscripts"
CAMPAIGNS = "GET /accounts/{account_id}/campaigns"
EXPORT = "GET /lists/{list_id}/export"
N_PLUS_ONE = "SELECT COALESCE(SUM(delivered), ?)"
MISSING_INDEX = "SELECT COUNT(*) FROM subscribers WHERE account_id = ? AND status = ?"


def _script(name: str, *args: object, timeout: float = 600) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _candidates(doc: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    for ep in doc["endpoints"]:
        if ep["endpoint"] == endpoint:
            return list(ep["candidates"])
    raise AssertionError(f"{endpoint} not surveyed: {[e['endpoint'] for e in doc['endpoints']]}")


def _find(cands: list[dict[str, Any]], start: str) -> dict[str, Any]:
    return next(c for c in cands if c["probe"].startswith(start))


def _overlap(a: dict[str, Any], low: float, high: float) -> bool:
    return bool(a["ci_low"] <= high and low <= a["ci_high"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("flask")
    out = tmp_path_factory.mktemp("survey-demo")
    _script("demo_survey.py", out, 600, 1.0)
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    result["out"] = out
    return result


def test_the_demo_surveyed_without_hypotheses_finds_its_planted_problems(
    demo: dict[str, Any],
) -> None:
    campaigns = _candidates(demo["a"], CAMPAIGNS)
    assert campaigns[0]["probe"].startswith(N_PLUS_ONE)  # the N+1 loop: most total time
    assert campaigns[0]["n_plus_one"]
    assert campaigns[0]["calls_per_request_mean"] > 5
    assert campaigns[1]["probe"] == MISSING_INDEX  # the missing index, next
    assert campaigns[1]["calls_per_request_mean"] == pytest.approx(1.0)
    export = [c["probe"] for c in _candidates(demo["a"], EXPORT)[:2]]
    assert "hypoprobe.demo.app._web:format_csv" in export  # the CSV export


def test_survey_shares_match_the_hypothesis_driven_run_on_the_same_requests(
    demo: dict[str, Any],
) -> None:
    verdicts = demo["verdicts_b"]
    campaigns = _candidates(demo["b"], CAMPAIGNS)
    index = _find(campaigns, MISSING_INDEX)
    v412 = verdicts["PERF-412"]  # probes the function around the statement
    assert _overlap(index, v412["ci_low"], v412["ci_high"])
    loop = _find(campaigns, N_PLUS_ONE)
    v415 = verdicts["PERF-415"]  # the function around the loop's statement: a bit more
    assert _overlap(loop, v415["ci_low"], v415["ci_high"]) or loop["share"] <= v415["share"]
    assert loop["share"] >= 0.6 * v415["share"]
    csv = _find(_candidates(demo["b"], EXPORT), "hypoprobe.demo.app._web:format_csv")
    assert csv["share"] == pytest.approx(verdicts["PERF-419"]["share"], abs=0.05)


def test_the_verdict_report_never_shows_a_survey_candidate(demo: dict[str, Any]) -> None:
    assert set(demo["verdicts_b"]) == {"PERF-412", "PERF-415", "PERF-419"}
    assert not any("SURVEY" in n for n in demo["notes_b"])


def test_the_proposed_hypotheses_load_and_give_the_survey_shares(demo: dict[str, Any]) -> None:
    text = (demo["out"] / "proposed.toml").read_text()
    assert 'owner = ""' in text
    assert 'ticket = ""' in text
    assert "expires = " in text
    verdicts = demo["verdicts_c"]
    proposed = {k: v for k, v in verdicts.items() if k.startswith("PROPOSED-")}
    assert len(proposed) >= 3
    checked = []
    for v in proposed.values():
        probe = v["claim"].split(" ", 2)[2].rsplit(" takes at least ", 1)[0]
        cands = _candidates(demo["c"], v["endpoint"])
        found = next(c for c in cands if c["probe"] == probe)
        if v["ci_low"] is None:
            continue  # too few requests for an interval
        # The survey's proxy and the hypothesis' own time the same driver calls once
        # (execute + fetches), each lookup outside the timing: the same share, loops too.
        slack = (v["ci_high"] - v["ci_low"] + found["ci_high"] - found["ci_low"]) / 2
        assert abs(found["share"] - v["share"]) <= max(0.02, slack), (probe, found, v)
        if found["kind"] == "sql":  # one timing of the driver's calls, recorded into both
            assert found["share"] == pytest.approx(v["share"], abs=0.001), (probe, found, v)
        checked.append(probe)
    assert MISSING_INDEX in checked
    assert len(checked) >= 2


def test_the_survey_json_follows_its_schema(demo: dict[str, Any]) -> None:
    schema = json.loads(SURVEY_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(demo["a"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": "hypoprobe.survey/1", "source": "x"}, schema)


def test_sampling_keeps_shares_within_their_intervals_and_caps_hold(tmp_path: Path) -> None:
    _script("sampling_and_caps.py", tmp_path, timeout=300)
    result = json.loads((tmp_path / "result.json").read_text())
    for run in result["sampling"]:
        assert run["ci_low"] <= run["true_share"] <= run["ci_high"], run
        # About rate * requests surveyed (4 standard deviations).
        n, rate = run["requests"], run["rate"]
        assert abs(run["surveyed"] - rate * n) <= 4 * (n * rate * (1 - rate)) ** 0.5
    caps = result["caps"]
    assert caps["candidates"] == caps["max_candidates"] + 1  # + (other statements)
    assert caps["overflow_calls"] == caps["statements"] - caps["max_candidates"]
    assert caps["overflow_probe"] == "(other statements)"
    assert caps["probe_seconds"] == pytest.approx(caps["statement_seconds"])
    threads = result["threads"]  # 8 threads x 200 requests, counted exactly
    assert threads["requests"] == 1600
    assert threads["calls"] == {"SELECT ?": 1.0, "SELECT ? + ?": 2.0}
    late = result["late"]  # made at its first call, yet over every surveyed request
    assert late["requests"] == 200
    assert late["share"] == pytest.approx(late["true_share"])
    assert late["calls_per_request_mean"] == pytest.approx(0.5)


def test_settings_are_validated_at_configuration_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="rate"):
        _survey._settings(0, (), 20, 0.5, True)
    with pytest.raises(ConfigurationError, match="module"):
        _survey._settings(1.0, ["not a module"], 20, 0.5, True)
    with pytest.raises(ConfigurationError, match="max_candidates"):
        _survey._settings(1.0, (), 0, 0.5, True)
    bad = tmp_path / "perf.toml"
    bad.write_text("[survey]\nrate = 2\n")
    with pytest.raises(ConfigurationError, match=r"perf.toml: \[survey\]"):
        _survey.parse_table(bad)
    bad.write_text("[survey]\nrat = 0.1\n")
    with pytest.raises(ConfigurationError, match="unknown field 'rat'"):
        _survey.parse_table(bad)
    good = tmp_path / "ok.toml"
    good.write_text('[survey]\nrate = 0.25\nmodules = ["myapp.views"]\n')
    assert _survey.parse_table(good) == _survey.Settings(rate=0.25, modules=("myapp.views",))


def test_candidate_ids_are_stable_and_reserved() -> None:
    a = _survey.candidate_id("sql", "GET /x", "SELECT ?")
    assert a == _survey.candidate_id("sql", "GET /x", "SELECT ?")
    assert a != _survey.candidate_id("sql", "GET /y", "SELECT ?")
    assert _survey.kind_of(a) == "sql"
    assert _survey.kind_of(_survey.candidate_id("function", "GET /x", "m:f")) == "function"
    assert _survey.kind_of("PERF-1") is None
    with pytest.raises(ConfigurationError, match="reserved for survey"):
        hypoprobe.hypothesis("SURVEY.sql.x", claim="c", endpoint="GET /x", min_share=0.1)


def test_run_takes_survey_without_a_config() -> None:
    import argparse

    from hypoprobe.cli import UsageError
    from hypoprobe.run import _options

    parser = argparse.ArgumentParser()
    _options.add_arguments(parser)
    env: dict[str, str] = {}
    opts = _options.parse(
        parser.parse_args(["--survey", "--survey-rate", "0.2", "--", "true"]), env
    )
    assert opts.config is None
    assert opts.survey == _survey.Settings(rate=0.2)
    opts = _options.parse(
        parser.parse_args(["--survey", "--survey-modules", "a.b,c", "--", "true"]), env
    )
    assert opts.survey is not None
    assert opts.survey.modules == ("a.b", "c")
    opts = _options.parse(
        parser.parse_args(["--survey", "--", "true"]),
        {"HYPOPROBE_SURVEY_MAX_CANDIDATES": "7", "HYPOPROBE_SURVEY_SLOW_THRESHOLD": "0.1"},
    )
    assert opts.survey == _survey.Settings(max_candidates=7, slow_threshold=0.1)
    with pytest.raises(UsageError, match="--survey"):
        _options.parse(parser.parse_args(["--", "true"]), env)
    with pytest.raises(UsageError, match="rate"):
        _options.parse(parser.parse_args(["--survey", "--survey-rate", "2", "--", "true"]), env)


def test_a_survey_table_in_the_toml_starts_the_survey(tmp_path: Path) -> None:
    config = tmp_path / "perf.toml"
    config.write_text('[survey]\nrate = 0.5\nmodules = ["json"]\nmax_candidates = 7\n')
    code = (
        "import hypoprobe, json, sys\n"
        "from hypoprobe import _survey\n"
        f"hypoprobe.load({str(config)!r})\n"
        "s = _survey.survey_settings()\n"
        "assert (s.rate, s.modules, s.max_candidates) == (0.5, ('json',), 7), s\n"
        "assert hasattr(json.dumps, '__hypoprobe_survey__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_hypoprobe_survey_formats_from_a_snapshot(
    demo: dict[str, Any], fmt: str, tmp_path: Path
) -> None:
    from hypoprobe import cli

    target = tmp_path / f"survey.{fmt}"
    args = ["survey", "--snapshot", str(demo["out"] / "a.json"), "--format", fmt]
    assert cli.main([*args, "-o", str(target)]) == 0
    text = target.read_text()
    assert "SELECT COUNT(*) FROM subscribers" in text
    if fmt == "json":
        assert json.loads(text)["schema"] == "hypoprobe.survey/1"
    if fmt == "html":
        assert text.startswith("<!doctype html>")
    if fmt == "markdown":
        assert "| # | kind | probe |" in text


def test_a_survey_alone_gives_no_verdict_and_no_survey_means_no_data(
    demo: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hypoprobe import cli

    # Phase A recorded survey candidates and no hypothesis: nothing to judge.
    assert cli.main(["report", "--snapshot", str(demo["out"] / "a.json")]) == 4
    assert "SURVEY" not in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    empty.write_text((demo["out"] / "a.json").read_text())
    doc = json.loads(empty.read_text())
    doc["moments"] = [m for m in doc["moments"] if not m["hypothesis"].startswith("SURVEY.")]
    empty.write_text(json.dumps(doc))
    assert cli.main(["survey", "--snapshot", str(empty)]) == 4
    assert "no survey data" in capsys.readouterr().err


def test_surveyed_functions_stay_transparent_and_a_fault_never_raises() -> None:
    _script("functions.py", timeout=120)


def test_caps_hold_through_sqlalchemy_and_the_survey_leaves_series_for_hypotheses() -> None:
    pytest.importorskip("sqlalchemy")
    _script("budget.py", timeout=120)


def test_an_unsurveyed_request_skips_the_survey_proxy_but_not_declared_matchers(
    tmp_path: Path,
) -> None:
    _script("unsurveyed.py", tmp_path, timeout=120)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["unsurveyed_cursor_is_declared_proxy"]  # the survey's layer handed it on
    assert result["surveyed_cursor_is_stacked"]
    assert result["unsurveyed_rows"] == result["surveyed_rows"] == [[0]]
    assert result["declared_calls"] == {"GET /u": 1, "GET /s": 1}
    assert result["survey_endpoints"] == ["GET /s"]


def test_each_candidate_names_its_customers_seen_and_affected(tmp_path: Path) -> None:
    _script("customers.py", tmp_path)
    doc = json.loads((tmp_path / "result.json").read_text())
    jsonschema.validate(doc, json.loads(SURVEY_SCHEMA.read_text()))
    cands = {c["probe"]: c for c in _candidates(doc, "GET /s")}
    slow = cands["SELECT tick(?) AS slow_report"]["customers"]
    # Every customer's requests were surveyed; only the three whose requests ran the slow
    # report (and were slow) are affected by it, worth 10 + 20 + 30.
    assert (slow["seen"], slow["affected"]) == (12, 3)
    assert slow["seen_value"] == pytest.approx(sum(10.0 * (a + 1) for a in range(12)))
    assert slow["affected_value"] == pytest.approx(60.0)
    cheap = cands["SELECT tick(?) AS cheap"]["customers"]
    assert (cheap["seen"], cheap["affected"]) == (12, 3)  # ran by all, slow for three
