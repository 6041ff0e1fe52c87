"""What a new user meets first on the command line: formats from the file name, short
messages, hints for the common slips, examples in every --help, snapshots over time."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

import hypoprobe
import scenarios
from hypoprobe import cli, render
from hypoprobe.cli import EXIT_OK, EXIT_SOURCE, main
from servers import free_port

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def over_time(tmp_path: Path, unique_id: Callable[[str], str]) -> tuple[str, list[Path]]:
    """One process's cumulative snapshots, a minute apart: what a cron job would write."""
    hid, ep = unique_id("h"), unique_id("GET /campaigns")
    story = scenarios.dominant_query(5, 300)
    scenarios.register(story, hid, ep)
    start = hypoprobe.snapshot()
    paths = []
    with scenarios.scripted_clock() as clock:
        for i in range(3):
            scenarios.replay(story.requests[i * 100 : (i + 1) * 100], hid, ep, clock)
            snap = dataclasses.replace(
                hypoprobe.snapshot().minus(start), source="web-1", created_at=1.79e9 + 60 * i
            )
            paths.append(tmp_path / f"t{i}.json")
            paths[-1].write_text(snap.to_json())
    return hid, paths


@pytest.mark.parametrize(
    ("name", "start"),
    [("report.html", "<!DOCTYPE html>"), ("r.md", "## hypoprobe report"), ("r.json", "{")],
)
def test_the_output_suffix_chooses_the_format(
    run: Run, over_time: tuple[str, list[Path]], tmp_path: Path, name: str, start: str
) -> None:
    hid, paths = over_time
    out = tmp_path / name
    code, _, err = run("report", "--snapshot", str(paths[-1]), "--hypothesis", hid, "-o", str(out))
    assert code == EXIT_OK, err
    assert out.read_text(encoding="utf-8").startswith(start)
    compared = tmp_path / f"compare-{name}"
    code, _, err = run(
        "compare", str(paths[1]), str(paths[2]), "--hypothesis", hid, "-o", str(compared)
    )
    assert code == EXIT_OK, err
    assert compared.read_text(encoding="utf-8").startswith(start.replace("report", "compare"))
    # --format still wins over the suffix.
    code, _, _ = run(
        "report", "--snapshot", str(paths[-1]), "--hypothesis", hid, "-o", str(out), "--format",
        "table",
    )  # fmt: skip
    assert out.read_text(encoding="utf-8").startswith("hypoprobe report:")


def test_snapshots_over_time_are_judged_on_the_newest_and_plotted(
    run: Run, over_time: tuple[str, list[Path]], tmp_path: Path
) -> None:
    hid, paths = over_time
    code, out, err = run(
        "report", "--over-time", "--snapshot", *map(str, reversed(paths)), "--hypothesis", hid,
        "--format", "json",
    )  # fmt: skip
    assert code == EXIT_OK, err
    doc = json.loads(out)
    (v,) = doc["verdicts"]
    assert v["requests"] == 300  # the newest holds all; a sum would say 600
    assert any("successive times" in n for n in doc["notes"])
    schema = json.loads(
        (Path(render.__file__).parent / "report.schema.json").read_text(encoding="utf-8")
    )
    jsonschema.validate(doc, schema)
    points = doc["timeline"]
    assert [p["requests"] for p in points] == [100, 100]  # two intervals of 100 requests
    assert [p["end"] for p in points] == [1.79e9 + 60, 1.79e9 + 120]
    page = tmp_path / "over-time.html"
    run(
        "report",
        "--over-time",
        "--snapshot",
        *map(str, paths),
        "--hypothesis",
        hid,
        "-o",
        str(page),
    )
    html = page.read_text(encoding="utf-8")
    assert 'class="plot timeline"' in html
    assert html.count('class="share-dot"') == 2  # two intervals between three snapshots


def test_summing_one_sources_files_says_so(run: Run, over_time: tuple[str, list[Path]]) -> None:
    hid, paths = over_time
    code, out, _ = run("report", "--snapshot", *map(str, paths), "--hypothesis", hid)
    assert code == EXIT_OK
    assert "pass --over-time" in out


def test_over_time_refuses_files_of_several_sources(
    run: Run, over_time: tuple[str, list[Path]], tmp_path: Path
) -> None:
    _, paths = over_time
    other = tmp_path / "other.json"
    other.write_text(paths[0].read_text().replace('"source": "web-1"', '"source": "web-2"'))
    code, _, err = run("report", "--over-time", "--snapshot", str(paths[1]), str(other))
    assert code == 2
    assert "from 2 sources" in err


def test_an_unreachable_prometheus_is_one_short_line(run: Run) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run("report", "--prometheus", url, "--window", "5m")
    assert code == EXIT_SOURCE
    line = err.strip()
    assert "\n" not in line
    assert line.startswith(f"hypoprobe: cannot reach {url}/api/v1/query:")
    assert "%" not in line  # no URL-encoded PromQL
    assert len(line) < 160


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_subcommand_help_has_examples(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    examples = text.split("examples:", 1)[1]
    assert f"hypoprobe {command}" in examples


def test_negative_values_are_joined_only_where_they_are_options() -> None:
    from hypoprobe._cli._common import join_option_values

    assert join_option_values(["report", "--window", "-5s"]) == ["report", "--window=-5s"]
    assert join_option_values(["report", "--", "--at", "-3"]) == ["report", "--", "--at", "-3"]
    run = ["run", "--config", "p.toml", "--", "tool", "--window", "-5s"]
    assert join_option_values(run) == run
