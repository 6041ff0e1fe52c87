"""The README's quick start, executed as written: a fresh virtual environment with
hypoprobe installed from this checkout, the environment activated, then each ``$`` command
of the quick start's console block; the output has the shape the README shows."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

pytestmark = pytest.mark.slow


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


def test_the_quick_start_commands_are_the_documented_ones() -> None:
    quick = _section(README.read_text(encoding="utf-8"), "Quick start")
    (setup,) = _blocks(quick, "sh")
    assert "make demo" in setup
    assert ". .venv/bin/activate" in setup
    assert ".venv/bin/" in quick  # the other way: prefix the commands
    assert "vary" in quick  # the sample output says its figures vary


def test_the_quick_start_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    quick = _section(README.read_text(encoding="utf-8"), "Quick start")
    # The quick start's own commands: the console block that runs the example (another
    # one shows `hypoprobe run` on an application of your own).
    (console,) = [b for b in _blocks(quick, "console") if "examples/quickstart.py" in b]
    commands = [line[2:] for line in console.splitlines() if line.startswith("$ ")]
    assert commands, "no $ commands in the quick start"
    (sample,) = _blocks(quick, "text")

    # `python3 -m venv .venv && .venv/bin/pip install -e .`, in a directory of its own:
    # the same steps as `make venv`'s first half, without touching this checkout's .venv.
    venv = tmp_path / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    pip = subprocess.run(
        [*install, "-e", str(ROOT)], capture_output=True, text=True, timeout=600, check=False
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr

    # `. .venv/bin/activate`: the environment's bin first on PATH, VIRTUAL_ENV set.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    work = tmp_path / "checkout"  # "from the repository's root", without writing into it
    shutil.copytree(ROOT / "examples", work / "examples")
    outputs = []
    for command in commands:
        done = subprocess.run(
            shlex.split(command),
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"$ {command}\n{done.stdout}{done.stderr}"
        outputs.append(done.stdout)

    report = next(out for c, out in zip(commands, outputs, strict=True) if "report" in c)
    sample_lines = sample.splitlines()
    got_lines = report.splitlines()
    # The header and the table's columns are exactly the README's; the numbers vary.
    assert got_lines[0].startswith("hypoprobe report: process ")
    assert got_lines[2].split() == sample_lines[2].split()  # widths follow the numbers
    assert got_lines[3].startswith("----------  ")
    assert got_lines[4].split()[:4] == sample_lines[4].split()[:4]  # PERF-123 GET /campaigns
    assert "DISPROVED" in got_lines[4]
    sentence = " ".join(report.split())
    assert "PERF-123 GET /campaigns: DISPROVED: count_subscribers is" in sentence
    assert "No request had a share as high as the 1.2 s of 1.5 s observation." in sentence
    html = work / "quickstart.html"
    if any("quickstart.html" in c for c in commands):
        assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
