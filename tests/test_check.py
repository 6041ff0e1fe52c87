"""``hypoprobe check --config F --import MODULE``: the preflight of a TOML file.

It loads the file as the server will (before the application), imports what the server
imports, settles what is still pending and prints one row per target; it exits 5 when a
target failed, 0 when all attached, 2 when the file itself is invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hypoprobe
from apps import AppFactory, app_factory, toml
from hypoprobe.cli import EXIT_UNMEASURED, EXIT_USAGE, main


@pytest.fixture
def make_app(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[AppFactory]:
    yield from app_factory(tmp_path, unique_id)
    hypoprobe.unload()


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines()[2:]:
        if not line.strip():
            break
        cells = [c for c in line.split("  ") if c.strip()]
        rows[cells[1].strip()] = [c.strip() for c in cells]
    return rows


def test_check_prints_every_target_and_fails_on_a_failed_one(
    make_app: AppFactory,
    unique_id: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    targets = [
        f"{pkg}.models:User.followers_count",
        f"{pkg}.modles:User.feed",
        f"{pkg}.models:Usr.feed",
        f"{pkg}.views:explore",  # never imported by the entry module below
    ]
    path = tmp_path / "perf.toml"
    path.write_text(toml(hid, "GET /explore", targets))

    code, out, err = _check(capsys, "--config", str(path), "--import", f"{pkg}.models")

    assert code == EXIT_UNMEASURED, err
    rows = _rows(out)
    assert rows[targets[0]][:3] == [hid, targets[0], "attached"]
    assert rows[targets[1]][2:4] == ["failed", f"no module named '{pkg}.modles'"]
    assert rows[targets[2]][2:4] == ["failed", f"module {pkg}.models has no attribute 'Usr'"]
    assert rows[targets[3]][2] == "failed"
    assert rows[targets[3]][3].startswith(
        f"{pkg}.views was never imported: not imported by {pkg}.models"
    )
    assert rows[targets[0]][-1] == f"{path}:7"
    assert "4 targets: 1 attached, 3 failed" in out


def test_check_exits_0_when_everything_attached_and_says_late(
    make_app: AppFactory,
    unique_id: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    path = tmp_path / "perf.toml"
    path.write_text(toml(hid, "GET /explore", [f"{pkg}.models:helper"]))
    code, out, err = _check(
        capsys, "--config", str(path), "--import", f"{pkg}.models", f"{pkg}.views"
    )
    assert code == 0, err
    assert "1 targets: 1 attached, 0 failed" in out


def test_check_of_an_invalid_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "perf.toml"
    path.write_text('[[hypothesis]]\nid = "X-1"\nclaim = "c')
    code, out, err = _check(capsys, "--config", str(path))
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith(f"hypoprobe: {path}:3: invalid TOML")
