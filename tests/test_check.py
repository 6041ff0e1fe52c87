"""``hypoprobe check --config F --import MODULE``: the preflight of a TOML file.

It loads the file as the server will (before the application), imports what the server
imports, settles what is still pending and prints one row per target; it exits 5 when a
target failed, 0 when all attached, 2 when the file itself is invalid.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


# ------------------------------------------------ run's options, and the server's import path

WSGI = "import models\n\n\ndef app(environ, start_response):\n    return [models.query()]\n"
MODELS = "def query():\n    return b'ok'\n"
CHECKED = """\
[[hypothesis]]
id = "CHK-1"
claim = "the query dominates GET /"
endpoint = "GET /"
min_share = 0.5
probes = ["models:query", "models:qeury"]
"""


def _app_outside(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """An application directory, a config file elsewhere, and an environment without
    hypoprobe's variables or PYTHONPATH (the app is importable only from its directory)."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "wsgi.py").write_text(WSGI)
    (app / "models.py").write_text(MODELS)
    config = tmp_path / "perf.toml"
    config.write_text(CHECKED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOPROBE_")}
    env.pop("PYTHONPATH", None)
    return app, config, env


def _check_process(
    cwd: Path, env: dict[str, str], *argv: str, console: bool = False
) -> subprocess.CompletedProcess[str]:
    head = [str(Path(sys.executable).with_name("hypoprobe"))] if console else []
    return subprocess.run(
        [*(head or [sys.executable, "-m", "hypoprobe"]), "check", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _states(out: str) -> dict[str, str]:
    return {row[1]: row[2] for row in _rows(out).values()}


@pytest.mark.parametrize("console", [False, True], ids=["python-m", "console-script"])
def test_check_takes_the_config_from_the_environment_and_imports_from_chdir(
    tmp_path: Path, console: bool
) -> None:
    app, config, env = _app_outside(tmp_path)
    env["HYPOPROBE_CONFIG"] = str(config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _check_process(elsewhere, env, "--chdir", str(app), "--import", "wsgi", console=console)
    assert done.returncode == EXIT_UNMEASURED, done.stderr
    assert _states(done.stdout) == {"models:query": "attached", "models:qeury": "failed"}
    assert "2 targets: 1 attached, 1 failed" in done.stdout
    # The import-time load of HYPOPROBE_CONFIG (before --chdir) logged no false failure.
    assert "not loaded" not in done.stderr, done.stderr
    assert "no module named" not in done.stderr, done.stderr


def test_check_takes_run_s_command_line_and_imports_the_gunicorn_app(tmp_path: Path) -> None:
    # `hypoprobe run ... -- gunicorn ...` preflighted by changing `run` to `check`.
    app, config, env = _app_outside(tmp_path)
    command = ["--", sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0"]
    command += ["--chdir", str(app), "wsgi:app"]
    done = _check_process(tmp_path, env, "--config", str(config), "--metrics-port", "0", *command)
    assert done.returncode == EXIT_UNMEASURED, done.stderr
    assert _states(done.stdout) == {"models:query": "attached", "models:qeury": "failed"}
    # uvicorn's --app-dir, and a run option checked as run checks it.
    done = _check_process(
        tmp_path, env, "--config", str(config), "--", "uvicorn", "--app-dir", str(app), "wsgi:app"
    )
    assert _states(done.stdout) == {"models:query": "attached", "models:qeury": "failed"}
    bad = _check_process(tmp_path, env, "--config", str(config), "--metrics-port", "x", *command)
    assert bad.returncode == EXIT_USAGE
    assert "--metrics-port must be a port number" in bad.stderr


def test_check_without_the_app_s_directory_says_what_to_pass(tmp_path: Path) -> None:
    _, config, env = _app_outside(tmp_path)
    done = _check_process(tmp_path, env, "--config", str(config))
    assert done.returncode == EXIT_UNMEASURED, done.stderr
    assert _states(done.stdout) == {"models:query": "failed", "models:qeury": "failed"}
    assert _rows(done.stdout)["models:query"][3] == "no module named 'models'"
    missing = _check_process(tmp_path, {**env, "HYPOPROBE_CONFIG": ""})
    assert missing.returncode == EXIT_USAGE
    assert "check needs --config FILE (or HYPOPROBE_CONFIG)" in missing.stderr


def test_check_of_a_config_given_beside_another_hypoprobe_config(tmp_path: Path) -> None:
    # HYPOPROBE_CONFIG names another file probing the same function: only --config counts.
    app, config, env = _app_outside(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text(CHECKED.replace("CHK-1", "CHK-2"))
    env["HYPOPROBE_CONFIG"] = str(other)
    done = _check_process(tmp_path, env, "--config", str(config), "--chdir", str(app))
    assert done.returncode == EXIT_UNMEASURED, done.stderr
    rows = _rows(done.stdout)
    assert {r[0] for r in rows.values()} == {"CHK-1"}
