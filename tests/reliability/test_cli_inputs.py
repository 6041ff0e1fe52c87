"""The ``hypoprobe`` command against hostile input: every break found by the attack campaign
ends with a documented exit code and one line on stderr, never a traceback; and text from
the application or a snapshot reaches neither a Markdown renderer nor a terminal raw.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hypoprobe._cli._common import Progress
from hypoprobe.cli import EXIT_INTERNAL, EXIT_NO_DATA, EXIT_OK, EXIT_SOURCE, EXIT_USAGE
from readside import recorded_document, run_cli


def _write(tmp_path: Path, doc: Any, name: str = "snap.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


#: A corrupt document's text, or (the path of a value in a real document, what to put there).
_CORRUPT: dict[str, str | tuple[tuple[Any, ...], Any]] = {
    "nested 100,000 deep": '{"schema": "hypoprobe.snapshot/1", "a": '
    + "[" * 10**5
    + "]" * 10**5
    + "}",
    "a 5,000-digit integer": '{"schema": "hypoprobe.snapshot/1", "a": ' + "7" * 5000 + "}",
    "Infinity requests": (("moments", 0, "requests"), math.inf),
    "10**400 requests": (("moments", 0, "requests"), 10**400),
    "NaN probe seconds": (("moments", 0, "probe_seconds"), math.nan),
    "Infinity bucket count": (("endpoints", 0, "duration", "counts", 0, 1), math.inf),
    "created_at inf": (("created_at",), math.inf),
    "created_at NaN": (("created_at",), math.nan),
    "created_at 1e20": (("created_at",), 1e20),
    "NaN min_share": (("hypotheses", 0, "min_share"), math.nan),
    "a list for a name": (("endpoints", 0, "endpoint"), ["GET /"]),
}


@pytest.mark.parametrize("case", sorted(_CORRUPT))
@pytest.mark.parametrize("command", ["report", "compare"])
def test_corrupt_snapshots_exit_4_with_one_line(tmp_path: Path, case: str, command: str) -> None:
    spec = _CORRUPT[case]
    doc = spec if isinstance(spec, str) else _set(recorded_document(), *spec)
    path = _write(tmp_path, doc)
    good = _write(tmp_path, recorded_document(), "good.json")
    argv = ["report", "--snapshot", path] if command == "report" else ["compare", good, path]
    line = run_cli(*argv).assert_clean(EXIT_NO_DATA)
    assert "is not a usable snapshot" in line


@pytest.mark.parametrize("at", [1e20, math.inf, math.nan])
def test_a_slow_request_at_a_time_no_date_can_show_exits_4(tmp_path: Path, at: float) -> None:
    doc = recorded_document()
    doc["slowest"] = [
        {
            "hypothesis": "REL-READ",
            "endpoint": "GET /reliability",
            "kind": "latency",
            "endpoint_seconds": 1.0,
            "probe_seconds": 0.5,
            "calls": 2,
            "share": 0.5,
            "at": at,
            "trace_id": None,
        }
    ]
    run_cli("report", "--snapshot", _write(tmp_path, doc)).assert_clean(EXIT_NO_DATA)


def test_a_histogram_without_bounds_still_reports_in_every_format(tmp_path: Path) -> None:
    doc = recorded_document()
    only_inf = {"bounds": [], "counts": [[0, 600]], "sum": 30.0}
    doc["endpoints"][0]["duration"] = only_inf
    for r in doc["requests"]:
        r["calls"] = only_inf
    path = _write(tmp_path, doc)
    for fmt in ("table", "markdown", "json", "html"):
        run_cli("report", "--snapshot", path, "--format", fmt).assert_clean(EXIT_OK)
        run_cli("compare", path, path, "--format", fmt).assert_clean(EXIT_OK)


def test_a_snapshot_that_is_not_utf8_exits_4_not_3(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"schema": "hypoprobe.snapshot/1", "source": "caf\xe9"}')
    line = run_cli("report", "--snapshot", str(path)).assert_clean(EXIT_NO_DATA)
    assert "not UTF-8" in line


def test_a_missing_snapshot_still_exits_3(tmp_path: Path) -> None:
    run_cli("report", "--snapshot", str(tmp_path / "nope.json")).assert_clean(EXIT_SOURCE)


def test_snapshots_above_the_size_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, recorded_document())
    size = Path(path).stat().st_size
    monkeypatch.setenv("HYPOPROBE_MAX_SNAPSHOT_BYTES", str(size - 1))
    line = run_cli("report", "--snapshot", path).assert_clean(EXIT_NO_DATA)
    assert "HYPOPROBE_MAX_SNAPSHOT_BYTES" in line
    monkeypatch.setenv("HYPOPROBE_MAX_SNAPSHOT_BYTES", str(size))
    run_cli("report", "--snapshot", path).assert_clean(EXIT_OK)
    monkeypatch.setenv("HYPOPROBE_MAX_SNAPSHOT_BYTES", "lots")
    run_cli("report", "--snapshot", path).assert_clean(EXIT_USAGE)


def test_the_default_size_limit_is_64_mib(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("w") as f:  # sparse: 64 MiB + 1 of nothing, never parsed
        f.truncate(64 * 2**20 + 1)
    line = run_cli("report", "--snapshot", str(path)).assert_clean(EXIT_NO_DATA)
    assert "larger than 67,108,864 bytes" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--metrics-url", "http://[::1/x"],
        ["report", "--prometheus", "http://[::1/x", "--window", "1h"],
        ["snapshot", "--metrics-url", "127.0.0.1:99999"],
        ["compare", "--prometheus", "http://[::1", "--window", "1h", "--before", "now"],
    ],
    ids=" ".join,
)
def test_malformed_urls_exit_2_with_one_line(argv: list[str]) -> None:
    run_cli(*argv).assert_clean(EXIT_USAGE)


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--metrics-url", "http://127.0.0.1:9/metrics", "--window", "1e10"],
        ["snapshot", "--metrics-url", "http://127.0.0.1:9/metrics", "--window", "inf"],
        ["report", "--prometheus", "http://127.0.0.1:9", "--window", "1h", "--at", "inf"],
        ["report", "--prometheus", "http://127.0.0.1:9", "--window", "1h", "--at", "nan"],
        ["report", "--prometheus", "http://127.0.0.1:9", "--window", "1h", "--at", "1e20"],
        ["compare", "--prometheus", "http://127.0.0.1:9", "--window", "1h", "--before", "inf"],
        ["compare", "--prometheus", "http://127.0.0.1:9", "--window", "1h", "--before", "-1"],
        ["compare", "--prometheus", "http://127.0.0.1:9", "--window", "1h", "--after", "1e20"],
    ],
    ids=" ".join,
)
def test_windows_and_times_out_of_range_are_usage_errors(argv: list[str]) -> None:
    line = run_cli(*argv).assert_clean(EXIT_USAGE)
    assert "window" in line or "time" in line


def _subprocess(*argv: str, stdout: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hypoprobe", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_a_full_disk_on_stdout_exits_2_with_one_line(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, recorded_document())
    with open("/dev/full", "w") as full:
        done = _subprocess("report", "--snapshot", path, "--format", fmt, stdout=full)
    assert done.returncode == EXIT_USAGE, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("hypoprobe: cannot write the output: No space left on device")


def test_a_full_disk_for_snapshot_and_compare_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, recorded_document())
    for argv in (["compare", path, path], ["compare", path, path, "-o", "/dev/full"]):
        with open("/dev/full", "w") as full:
            done = _subprocess(*argv, stdout=full)
        assert done.returncode == EXIT_USAGE, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr


# -- escaping --------------------------------------------------------------------------

_HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\x1b]0;owned\x07\x1b[2J\x9b"


def _hostile_snapshot(tmp_path: Path) -> str:
    doc = recorded_document()
    doc["hypotheses"][0]["claim"] = f"claim {_HOSTILE} [link](javascript:alert(3)) | cell"
    doc["source"] = f"source {_HOSTILE}"
    return _write(tmp_path, doc)


def _no_terminal_controls(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\x9b\x7f"), repr(text[:400])


def test_markdown_shows_hostile_claims_as_text(tmp_path: Path) -> None:
    out = run_cli("report", "--snapshot", _hostile_snapshot(tmp_path), "--format", "markdown")
    out.assert_clean(EXIT_OK)
    _no_terminal_controls(out.out)
    assert "<script" not in out.out
    assert "<img" not in out.out
    assert "[link](javascript:" not in out.out
    assert "\\[link\\](javascript:" in out.out
    assert "&lt;script>alert(1)&lt;/script>" in out.out
    # Shown as an escape, whose backslash Markdown itself needs escaped: renders "\x1b".
    assert "\\\\x1b" in out.out


@pytest.mark.parametrize("fmt", ["table", "json", "html"])
def test_other_formats_carry_no_terminal_controls(tmp_path: Path, fmt: str) -> None:
    out = run_cli("report", "--snapshot", _hostile_snapshot(tmp_path), "--format", fmt)
    out.assert_clean(EXIT_OK)
    _no_terminal_controls(out.out)
    if fmt == "html":
        assert "<script>alert" not in out.out
        assert "<img src=x" not in out.out
    if fmt == "json":
        assert json.loads(out.out)["source"] == f"source {_HOSTILE}"


def test_compare_in_markdown_and_table_is_escaped_too(tmp_path: Path) -> None:
    path = _hostile_snapshot(tmp_path)
    for fmt in ("markdown", "table"):
        out = run_cli("compare", path, path, "--format", fmt)
        out.assert_clean(EXIT_OK)
        _no_terminal_controls(out.out)
        assert "<script" not in out.out or fmt == "table"


def test_error_messages_carry_no_terminal_controls(tmp_path: Path) -> None:
    path = _write(tmp_path, recorded_document())
    result = run_cli("report", "--snapshot", path, "--hypothesis", "X\x1b[2J\x07")
    line = result.assert_clean(EXIT_NO_DATA)
    _no_terminal_controls(result.err)
    assert "X\\x1b[2J\\x07" in line


# -- the last line of defence -------------------------------------------------------------


def test_a_bug_is_one_line_with_exit_1_and_a_traceback_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypoprobe import analysis

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(analysis, "report", broken)
    path = _write(tmp_path, recorded_document())
    result = run_cli("report", "--snapshot", path)
    assert result.code == EXIT_INTERNAL
    (line,) = result.err.splitlines()
    assert "internal error (ZeroDivisionError: a bug); please report it" in line
    monkeypatch.setenv("HYPOPROBE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_cli("report", "--snapshot", path)


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--snapshot", "a\x00b.json"],
        ["compare", "a\x00.json", "b.json"],
        ["report", "--snapshot", "{good}", "-o", "out\x00.txt"],
        ["snapshot", "--at", "\r\n0"],
        ["report", "--nope", "x\ry\x1b[2J"],
    ],
    ids=repr,
)
def test_paths_and_arguments_with_control_characters_end_in_one_line(
    tmp_path: Path, argv: list[str]
) -> None:
    good = _write(tmp_path, recorded_document())
    result = run_cli(*(a.replace("{good}", good) for a in argv))
    result.assert_clean(EXIT_USAGE)
    _no_terminal_controls(result.err)
    assert "\r" not in result.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_shows_control_characters_as_escapes() -> None:
    tty = _Terminal()
    with Progress(tty, delay=0.0) as progress:
        progress("scraped http://\x1b]0;owned\x07/metrics\r\nx")
        deadline = time.monotonic() + 5
        while "scraped" not in tty.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    # Progress' own line control (\r, ESC [K) frames the status; the status itself is inert.
    (status, *_) = [part for part in tty.getvalue().split("\r\x1b[K") if "scraped" in part]
    assert "scraped http://\\x1b]0;owned\\x07/metrics x" in status
    _no_terminal_controls(status)


def test_an_id_too_long_for_a_path_is_an_id(tmp_path: Path) -> None:
    # compare takes --hypothesis values that name files as the files; a 300-character id
    # made the check itself raise (ENAMETOOLONG).
    path = _write(tmp_path, recorded_document())
    run_cli("compare", "--hypothesis", "a" * 300).assert_clean(EXIT_USAGE)
    run_cli("compare", "--hypothesis", "a" * 300, path, path).assert_clean(EXIT_NO_DATA)


def test_warnings_carry_no_terminal_controls_either(tmp_path: Path) -> None:
    result = run_cli("rules", "--hypothesis", "X\x1b[2J", "-o", str(tmp_path / "rules.yml"))
    result.assert_clean(EXIT_OK)
    _no_terminal_controls(result.err)
    assert "X\\x1b[2J" in result.err


def test_check_of_a_config_without_targets_prints_an_empty_table(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = run_cli("check", "--config", str(empty))
    result.assert_clean(EXIT_OK)
    assert "0 targets" in result.out
