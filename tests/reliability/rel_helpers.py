"""Helpers of the reliability suite: fresh interpreters in multi-process mode, a small tmpfs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: Every child starts with this: a clock advancing exactly 1,000 ns per reading, so each
#: probe call records 1 us; ``report()`` prints the host's totals as one JSON line.
PRELUDE = """
import itertools, json, os, sys, threading, time
import hypoprobe

_ticks = itertools.count(0, 1000)
hypoprobe.configure(clock=lambda: next(_ticks))

@hypoprobe.probe("REL-1", name="work")
def work():
    pass

def totals():
    snap = hypoprobe.snapshot()
    calls = sum(p.duration.count for p in snap.probes if p.probe == "work")
    requests = sum(e.duration.count for e in snap.endpoints)
    return calls, requests, dict(snap.internal_errors)

def report(**extra):
    calls, requests, errors = totals()
    print(json.dumps({"calls": calls, "requests": requests, "errors": errors, **extra}),
          flush=True)
"""


def run(
    directory: Path | None,
    *parts: str,
    timeout: float = 60.0,
    expect_ok: bool = True,
) -> dict[str, Any]:
    """PRELUDE + parts (each dedented) in a new interpreter; its last JSON line, parsed.

    With ``directory``, in multi-process mode there (HYPOPROBE_MULTIPROC_DIR). A child that
    does not finish within ``timeout`` seconds is killed and fails the test as wedged.
    """
    env = dict(os.environ)
    env.pop("HYPOPROBE_MULTIPROC_DIR", None)
    if directory is not None:
        env["HYPOPROBE_MULTIPROC_DIR"] = str(directory)
    code = PRELUDE + "".join(textwrap.dedent(part) + "\n" for part in parts)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process was wedged for {timeout} s (deadlock?)") from exc
    if expect_ok:
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    lines = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    result["returncode"] = done.returncode
    return result


def shard_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("shard-"))


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` (root only; skipped with the reason otherwise)."""
    if not is_root():
        pytest.skip("needs root to mount a small tmpfs (CI runs the suite as root)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"cannot mount a tmpfs under CI: {mounted.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
