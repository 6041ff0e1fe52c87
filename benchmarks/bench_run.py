"""What ``hypoprobe run`` adds on top of the probes and middlewares: side by side, one run.

* Start-up: ``python -c pass`` bare, and with the bootstrap ``sitecustomize`` loading a
  TOML file (importing hypoprobe, prometheus_client, wrapt and the OpenTelemetry API
  before the application). Paid once per interpreter; gunicorn workers are forks.
* Per request: a WSGI app called directly, and through the class-level hook
  ``hypoprobe run`` puts on ``flask.Flask.__call__`` (a ``wrapt`` wrapper and a set lookup;
  the app already seen, so the hook only passes the call on). The hook is built on a
  stand-in class, not installed on Flask: it must not instrument other benchmarks' apps.

Run: ``pytest benchmarks/bench_run.py --benchmark-only``; the table is printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wrapt

from hypoprobe.run import _frameworks
from hypoprobe.run._launcher import BOOT_DIR

pytestmark = pytest.mark.benchmark(group="run")

CALLS = 1000
_RESULTS: dict[str, float] = {}
_FLASKAPP = Path(__file__).resolve().parent.parent / "tests" / "runapps" / "flaskapp"


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _RESULTS:
        return
    lines = ["", "hypoprobe run (min of the rounds):"]
    for name, seconds in _RESULTS.items():
        unit, scale = ("ms", 1e3) if name.startswith("start") else ("us", 1e6)
        lines.append(f"  {name:28s} {seconds * scale:9.2f} {unit}")
    if "start: bare" in _RESULTS and "start: bootstrap" in _RESULTS:
        added = _RESULTS["start: bootstrap"] - _RESULTS["start: bare"]
        lines.append(f"  {'start: added':28s} {added * 1e3:9.2f} ms")
    if "call: bare" in _RESULTS and "call: flask hook" in _RESULTS:
        added = _RESULTS["call: flask hook"] - _RESULTS["call: bare"]
        lines.append(f"  {'call: added':28s} {added * 1e6:9.2f} us")
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n".join(lines))


def _keep(benchmark: Any, name: str, per: int) -> None:
    stats = benchmark.stats
    if stats is not None:
        _RESULTS[name] = stats.stats.min / per


# ------------------------------------------------------------------------- start-up


def _start_env(bootstrap: bool, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOPROBE_")}
    env.pop("PYTHONPATH", None)
    if bootstrap:
        env["PYTHONPATH"] = os.pathsep.join([BOOT_DIR, str(_FLASKAPP)])
        env["HYPOPROBE_RUN_DIR"] = str(tmp_path)
        env["HYPOPROBE_CONFIG"] = str(_FLASKAPP / "perf.toml")
        env["HYPOPROBE_MULTIPROC_DIR"] = str(tmp_path)
    return env


@pytest.mark.parametrize("bootstrap", [False, True], ids=["bare", "bootstrap"])
def test_interpreter_start(benchmark: Any, tmp_path: Path, bootstrap: bool) -> None:
    env = _start_env(bootstrap, tmp_path)

    def start() -> None:
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)

    benchmark.pedantic(start, rounds=10, warmup_rounds=1)
    _keep(benchmark, f"start: {'bootstrap' if bootstrap else 'bare'}", 1)


# ----------------------------------------------------------------------- per request


def _start_response(status: str, headers: Any) -> None:
    pass


class _App:
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]


class _HookedApp:
    # What _frameworks puts on flask.Flask.__call__, on a stand-in class.
    __call__ = wrapt.FunctionWrapper(_App.__call__, _frameworks._flask_call)


def _calls(app: Callable[..., list[bytes]]) -> Callable[[], None]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}

    def run() -> None:
        for _ in range(CALLS):
            app(environ, _start_response)

    return run


def test_call_bare(benchmark: Any) -> None:
    benchmark.pedantic(_calls(_App()), rounds=200, warmup_rounds=5)
    _keep(benchmark, "call: bare", CALLS)


def test_call_through_the_flask_hook(benchmark: Any) -> None:
    app = _HookedApp()
    _frameworks._seen.add(app)  # served before: the hook only passes the call on
    assert app({}, _start_response) == [b"ok"]
    benchmark.pedantic(_calls(app), rounds=200, warmup_rounds=5)
    _keep(benchmark, "call: flask hook", CALLS)
