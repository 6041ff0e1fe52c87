"""The ``hypoprobe`` command: sources, filters, formats, output files and exit codes.

In-process through ``hypoprobe.cli.main`` (the console script's function), plus one run of
each real entry point (``python -m hypoprobe`` and the ``hypoprobe`` script).
"""

from __future__ import annotations

import http.server
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hypoprobe
import scenarios
from hypoprobe._cli._common import Progress
from hypoprobe.cli import EXIT_NO_DATA, EXIT_OK, EXIT_SOURCE, EXIT_USAGE, main
from hypoprobe.model import Snapshot
from servers import free_port

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _one_clear_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def story(tmp_path: Path, unique_id: Callable[[str], str]) -> tuple[str, Path, Snapshot]:
    """The seed story recorded under a unique id, frozen into a snapshot file."""
    hid = unique_id("h")
    before = hypoprobe.snapshot()
    scenarios.run(scenarios.seed_story(2, 600), hid, unique_id("GET /campaigns"))
    snap = hypoprobe.snapshot().minus(before)
    path = tmp_path / "snapshot.json"
    path.write_text(snap.to_json())
    return hid, path, snap


def test_report_from_a_snapshot_file_prints_the_verdict(
    run: Run, story: tuple[str, Path, Snapshot]
) -> None:
    hid, path, _ = story
    code, out, err = run("report", "--snapshot", str(path), "--hypothesis", hid)
    assert code == EXIT_OK
    assert err == ""
    assert hid in out
    assert "DISPROVED: count_subscribers is" in out


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_every_format_writes_to_an_output_file(
    run: Run, story: tuple[str, Path, Snapshot], tmp_path: Path, fmt: str
) -> None:
    hid, path, _ = story
    target = tmp_path / f"report.{fmt}"
    code, out, _ = run(
        "report", "--snapshot", str(path), "--hypothesis", hid, "--format", fmt, "-o", str(target)
    )
    assert code == EXIT_OK
    assert out == ""
    text = target.read_text(encoding="utf-8")
    if fmt == "json":
        doc = json.loads(text)
        assert doc["schema"] == "hypoprobe.report/1"
        assert [v["verdict"] for v in doc["verdicts"]] == ["DISPROVED"]
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>")
        assert text.count("<svg") == 3
    else:
        assert "DISPROVED" in text


def test_several_snapshot_files_are_merged(
    run: Run, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    # Two "processes": the same hypothesis, half the traffic each.
    hid, ep = unique_id("h"), unique_id("GET /reports")
    story = scenarios.dominant_query(3, 200)
    scenarios.register(story, hid, ep)
    paths = []
    for i, part in enumerate((story.requests[:120], story.requests[120:])):
        before = hypoprobe.snapshot()
        with scenarios.scripted_clock() as clock:
            scenarios.replay(part, hid, ep, clock)
        paths.append(tmp_path / f"web-{i}.json")
        paths[-1].write_text(hypoprobe.snapshot().minus(before).to_json())
    code, out, _ = run("report", "--snapshot", *map(str, paths), "--format", "json")
    assert code == EXIT_OK
    (v,) = [v for v in json.loads(out)["verdicts"] if v["hypothesis"] == hid]
    assert v["requests"] == 200
    assert v["aggregate_share"] == pytest.approx(story.true_share, abs=1e-9)
    assert v["verdict"] == "CONFIRMED"


def test_endpoint_filter(run: Run, story: tuple[str, Path, Snapshot]) -> None:
    hid, path, snap = story
    (info,) = [h for h in snap.hypotheses if h.id == hid]
    code, out, _ = run("report", "--snapshot", str(path), "--endpoint", info.endpoints[0])
    assert code == EXIT_OK
    assert hid in out
    code, _, err = run("report", "--snapshot", str(path), "--endpoint", "GET /nowhere")
    assert code == EXIT_NO_DATA
    assert "GET /nowhere" in _one_clear_line(err)


def test_compare_two_snapshot_files(
    run: Run, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    hid, ep = unique_id("h"), unique_id("GET /campaigns")
    story = scenarios.seed_story(5, 800)
    scenarios.register(story, hid, ep)
    fixed = [
        scenarios.Request(r.endpoint_ns - r.probe_ns + r.probe_ns // 10, (r.probe_ns // 10,))
        for r in story.requests
    ]
    files = []
    for name, reqs in (("before", story.requests), ("after", fixed)):
        start = hypoprobe.snapshot()
        with scenarios.scripted_clock() as clock:
            scenarios.replay(reqs, hid, ep, clock)
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(hypoprobe.snapshot().minus(start).to_json())
    code, out, err = run("compare", *map(str, files), "--hypothesis", hid)
    assert (code, err) == (EXIT_OK, "")
    assert "  significant (Welch, p=" in out
    assert "faster" in out
    code, out, _ = run("compare", *map(str, files), "--hypothesis", hid, "--format", "json")
    (c,) = json.loads(out)["comparisons"]
    assert c["requests_before"] == c["requests_after"] == 800
    assert c["mean_change_significant"] is True


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["report"], "no source given: pass --snapshot FILE..., --metrics-url URL..."),
        (["report", "a.json"], "try `hypoprobe report --snapshot a.json`"),
        (["report", "--prometheus", "http://x", "--window", "-5s"], "must be positive"),
        (["report", "--over-time", "--snapshot", "a.json"], "--over-time needs two or more"),
        (["report", "--prometheus", "http://127.0.0.1:9"], "--prometheus needs --window"),
        (["report", "--prometheus", "http://x", "--window", "soon"], "is not a duration"),
        (["report", "--snapshot", "a.json", "--window", "1h"], "--window does not apply"),
        (["report", "--snapshot", "a.json", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["compare", "only-one.json"], "compare needs two snapshot files"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(run: Run, argv: list[str], needle: str) -> None:
    code, out, err = run(*argv)
    assert code == EXIT_USAGE
    assert out == ""
    assert needle in err
    assert "Traceback" not in err


def test_unwritable_output_is_a_usage_error(
    run: Run, story: tuple[str, Path, Snapshot], tmp_path: Path
) -> None:
    hid, path, _ = story
    target = tmp_path / "no-such-dir" / "report.md"
    code, _, err = run("report", "--snapshot", str(path), "--hypothesis", hid, "-o", str(target))
    assert code == EXIT_USAGE
    assert "cannot write" in _one_clear_line(err)


def test_bad_snapshot_files_and_unknown_hypotheses(
    run: Run, story: tuple[str, Path, Snapshot], tmp_path: Path
) -> None:
    _, path, _ = story
    code, _, err = run("report", "--snapshot", str(tmp_path / "missing.json"))
    assert code == EXIT_SOURCE
    assert "does not exist" in _one_clear_line(err)
    for name, text in (("empty.json", ""), ("corrupt.json", '{"schema": "hypoprobe.snap')):
        bad = tmp_path / name
        bad.write_text(text)
        code, _, err = run("report", "--snapshot", str(bad))
        assert code == EXIT_NO_DATA
        assert str(bad) in _one_clear_line(err)
    code, _, err = run("report", "--snapshot", str(path), "--hypothesis", "NOPE-9")
    assert code == EXIT_NO_DATA
    assert "unknown hypothesis NOPE-9" in _one_clear_line(err)


def test_a_window_without_requests_is_no_data(
    run: Run, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    hid = unique_id("h")
    hypoprobe.hypothesis(hid, claim="c", endpoint=unique_id("GET /idle"), min_share=0.5)
    path = tmp_path / "idle.json"
    path.write_text(hypoprobe.snapshot().to_json())
    code, _, err = run("report", "--snapshot", str(path), "--hypothesis", hid)
    assert code == EXIT_NO_DATA
    assert "no requests recorded" in _one_clear_line(err)


class _NotHypoprobe(http.server.BaseHTTPRequestHandler):
    """Some other service's /metrics; anything else is 404 (as a wrong Prometheus URL is)."""

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            body = b"# TYPE other_requests_total counter\nother_requests_total 7\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
        else:
            body = b"404 page not found\n"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_service() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotHypoprobe)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_network_sources_fail_with_distinct_codes(run: Run, other_service: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    code, _, err = run("report", "--metrics-url", closed)
    assert code == EXIT_SOURCE
    assert closed in _one_clear_line(err)

    code, _, err = run("report", "--metrics-url", f"{other_service}/metrics")
    assert code == EXIT_NO_DATA
    _one_clear_line(err)

    code, _, err = run("report", "--prometheus", other_service, "--window", "1h")
    assert code == EXIT_SOURCE
    _one_clear_line(err)

    code, _, err = run("snapshot", "--metrics-url", closed, "-o", "/dev/null")
    assert code == EXIT_SOURCE
    _one_clear_line(err)


def test_snapshot_command_freezes_a_live_process(
    run: Run, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    hid = unique_id("h")
    story = scenarios.n_plus_one(3, 150)
    target = tmp_path / "frozen.json"
    with scenarios.start_app(
        "n_plus_one", seed=3, n=150, hid=hid, endpoint="GET /orders", out=tmp_path / "w.json"
    ) as app:
        app.run_traffic()
        code, out, err = run("snapshot", "--metrics-url", app.metrics_url, "-o", str(target))
    assert (code, out, err) == (EXIT_OK, "", "")
    assert Snapshot.from_json(target.read_text()).hypothesis(hid) is not None
    code, out, _ = run("report", "--snapshot", str(target), "--format", "json")
    assert code == EXIT_OK
    (v,) = json.loads(out)["verdicts"]
    assert v["hypothesis"] == hid
    assert v["requests"] == 150
    assert v["aggregate_share"] == pytest.approx(story.true_share, abs=0.005)
    assert v["verdict"] == "CONFIRMED"
    assert v["calls_per_request_mean"] == pytest.approx(
        sum(len(r.calls_ns) for r in story.requests) / 150
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_only_on_a_terminal_and_cleans_up() -> None:
    tty = _Terminal()
    with Progress(tty, delay=0.0) as progress:
        progress("queried 3/7: moments")
        deadline = time.monotonic() + 5
        while "queried 3/7" not in tty.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    shown = tty.getvalue()
    assert "hypoprobe: queried 3/7: moments" in shown
    assert shown.endswith("\r\x1b[K")  # the line is erased when the source is done

    pipe = io.StringIO()
    with Progress(pipe, delay=0.0) as progress:
        progress("queried 1/7")
        time.sleep(0.05)
    assert pipe.getvalue() == ""


def test_entry_points_run_as_real_processes(story: tuple[str, Path, Snapshot]) -> None:
    hid, path, _ = story
    proc = subprocess.run(
        [sys.executable, "-m", "hypoprobe", "report", "--snapshot", str(path), "--hypothesis", hid],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "DISPROVED" in proc.stdout
    script = shutil.which("hypoprobe", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed with the package"
    proc = subprocess.run(
        [script, "report", "--snapshot", str(path), "--hypothesis", "NOPE-3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_NO_DATA
    assert proc.stdout == ""
    assert _one_clear_line(proc.stderr).startswith("hypoprobe: unknown hypothesis NOPE-3")


def test_help_lists_the_exit_codes(run: Run) -> None:
    code, out, _ = run("--help")
    assert code == EXIT_OK
    assert "exit codes: 0 ok, 2 usage, 3 source unreachable or failed, 4 no data" in out
    for command in ("report", "compare", "snapshot"):
        assert command in out


@pytest.mark.parametrize("at", ["build_parser", "join_option_values"])
def test_ctrl_c_while_parsing_is_one_line_and_exit_130(
    run: Run, monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    # A loaded machine can still be importing or parsing when the user gives up.
    import hypoprobe._cli._common
    import hypoprobe.cli

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    owner = hypoprobe.cli if at == "build_parser" else hypoprobe._cli._common
    monkeypatch.setattr(owner, at, interrupted)
    code, out, err = run("report", "--snapshot", "x.json")
    assert (code, out, err) == (130, "", "hypoprobe: interrupted\n")
