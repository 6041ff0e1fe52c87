"""``hypoprobe run``: real servers, probed only from the outside.

The applications in ``tests/runapps/`` never import hypoprobe. Each test starts
``python -m hypoprobe run --config perf.toml -- SERVER ...``, drives the application
over HTTP, scrapes the launcher's ``/metrics`` and asks ``hypoprobe report`` for the
verdicts the applications were designed to give.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import eventually
from servers import (
    PrometheusServer,
    free_port,
    need_component,
    pid_running,
    require_prometheus,
    start_prometheus,
)

pytestmark = pytest.mark.slow

APPS = Path(__file__).parent / "runapps"
SUMMARY = re.compile(
    r"hypoprobe run: (\d+) hypothes[ie]s, (\d+) targets? attached, (\d+) pending, (\d+) failed; "
    r"/metrics on (http://127\.0\.0\.1:\d+/metrics)"
)


def _need(module: str) -> None:
    """Skip without ``module`` locally; under CI=true (the test extra installs it) fail."""
    need_component(module, importlib.util.find_spec(module) is not None)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOPROBE_")}
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp)  # the launcher's run directory goes here: checked empty after
    env["RUNAPP_DB"] = str(tmp_path / "app.db")
    env.pop("PYTHONPATH", None)
    return env


class Launched:
    """One ``hypoprobe run`` process; stopped by its pid, whatever happens."""

    def __init__(
        self,
        tmp_path: Path,
        cwd: Path,
        args: Sequence[str],
        command: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        launcher: Sequence[str] = (sys.executable, "-m", "hypoprobe"),
    ) -> None:
        self.tmp_path = tmp_path
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.stdout = tmp_path / "stdout.txt"
        self.stderr = tmp_path / "stderr.txt"
        argv = [
            *launcher,
            "run",
            "--metrics-port",
            str(self.metrics_port),
            *args,
            "--",
            *command,
        ]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env or _env(tmp_path), stdout=out, stderr=err
            )

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")

    def out(self) -> str:
        return self.stdout.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"hypoprobe run exited with {self.proc.returncode}:\n{self.err()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError) as exc:
                last = exc
            time.sleep(0.1)
        pytest.fail(f"{url} not up after {timeout}s ({last}):\n{self.err()}")

    def wait_summary(self, timeout: float = 60) -> re.Match[str]:
        return eventually(lambda: SUMMARY.search(self.err()), timeout, 0.1, self.err)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"hypoprobe run did not stop on signal {sig}:\n{self.err()}")

    def __enter__(self) -> Launched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: str = resp.read().decode()
    return body


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(_get(url)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def _settled(
    url: str,
    expected: int,
    name: str = "hypoprobe_endpoint_duration_seconds_count",
    timeout: float = 30,
    **labels: str,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The launcher's samples once ``name`` counts ``expected`` (never more).

    A request's scope ends as its worker finishes the response, a moment after the client
    has read it: waiting for the count, not for a fixed time, keeps the exact comparisons
    exact on a busy machine.
    """
    end = time.monotonic() + timeout
    while True:
        samples = _samples(url)
        got = _value(samples, name, **labels)
        assert got <= expected, f"{name}{labels}: {got} counted for {expected} sent"
        if got == expected:
            return samples
        if time.monotonic() > end:
            pytest.fail(f"{name}{labels}: {got} counted for {expected} after {timeout}s")
        time.sleep(0.05)


def _report(*source: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "hypoprobe", "report", *source, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _verdicts(url: str, *source: str) -> dict[tuple[str, str], str]:
    data = _report(*(source or ("--metrics-url", url)))
    return {(v["hypothesis"], v["endpoint"]): v["verdict"] for v in data["verdicts"]}


def _scrape_with(prom: PrometheusServer, endpoint: str, requests: int) -> float:
    """The timestamp of the newest committed scrape once it counts ``requests``."""
    expr = f'sum(hypoprobe_endpoint_duration_seconds_count{{endpoint="{endpoint}"}})'
    after = time.time()
    end = time.monotonic() + 30
    while True:
        prom.wait_for_scrape_after(after, "app")
        (series,) = prom.query('timestamp(up{job="app"})')
        at = float(series["value"][1])
        got = prom.query_value(expr, at)
        if got == requests:
            return at
        assert got is None or got < requests, f"Prometheus counts {got} of {requests}"
        assert time.monotonic() < end, f"no scrape with {requests} requests (last {got})"
        after = at + 0.001


def _left_behind(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "tmp").iterdir())


# ------------------------------------------------------------------ Flask + gunicorn


def test_flask_sqlalchemy_under_gunicorn_two_workers_one_killed(tmp_path: Path) -> None:
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "app:app",
    ]
    cwd = APPS / "flaskapp"
    with Launched(tmp_path, cwd, ["--config", "perf.toml"], command) as run:
        run.wait_http(f"{base}/pid")
        found = run.wait_summary()
        assert found.groups()[:4] == ("3", "3", "0", "0"), run.err()
        assert found.group(5) == run.url

        ok = 0
        pids = set()
        for i in range(40):
            _get(f"{base}/feed/{i % 5}")
            ok += 1
        for _ in range(10):
            pids.add(int(_get(f"{base}/pid")))
        # Every request recorded before the kill: its recorded requests must survive it.
        _settled(run.url, 40, endpoint="GET /feed/{account}")
        _settled(run.url, 11, endpoint="GET /pid")  # the wait_http request too
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)  # its recorded requests must survive it
        end = time.monotonic() + 20
        while ok < 80 and time.monotonic() < end:
            try:
                _get(f"{base}/feed/{ok % 5}")
                ok += 1
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)  # the master is replacing the worker
        assert ok == 80

        feed = "GET /feed/{account}"
        samples = _settled(run.url, ok, endpoint=feed)
        assert _value(samples, "hypoprobe_endpoint_duration_seconds_count", endpoint=feed) == ok
        # `from queries import load_followers` in app.py bound the probed function.
        assert (
            _value(
                samples,
                "hypoprobe_probe_duration_seconds_count",
                hypothesis="PERF-1",
                endpoint=feed,
            )
            == ok
        )
        assert (
            _value(
                samples,
                "hypoprobe_probe_duration_seconds_count",
                hypothesis="PERF-3",
                endpoint=feed,
                probe="SELECT name FROM followers WHERE account = ?",
            )
            == ok
        )
        assert _verdicts(run.url) == {
            ("PERF-1", feed): "CONFIRMED",
            ("PERF-2", feed): "DISPROVED",
            ("PERF-3", feed): "DISPROVED",
        }
        # OpenMetrics when the scraper asks for it, as Prometheus does.
        request = urllib.request.Request(
            run.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            assert resp.read().decode().rstrip().endswith("# EOF")

        code = run.stop(signal.SIGTERM)
        assert code == 0, run.err()
    assert not any(pid_running(p) for p in pids)
    assert _left_behind(tmp_path) == []
    assert sorted(p.name for p in cwd.iterdir() if p.name.startswith("hypoprobe")) == []


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.parametrize("console", [False, True], ids=["python-m", "console-script"])
def test_gunicorn_chdir_from_elsewhere_targets_attach_when_the_app_loads(
    tmp_path: Path, console: bool
) -> None:
    # The one command, from another working directory: the app's directory is on
    # sys.path only once gunicorn loads the app (--chdir), so at bootstrap every target's
    # module is unknown: pending, then attached in each worker when the app is imported.
    app = tmp_path / "app"
    shutil.copytree(APPS / "flaskapp", app, ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "conf" / "perf.toml"
    config.parent.mkdir()
    shutil.move(app / "perf.toml", config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = _files(app)
    env = _env(tmp_path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # so that "nothing beside the app" is checkable
    args: list[str] = []
    launcher: tuple[str, ...] = (sys.executable, "-m", "hypoprobe")
    if console:  # the installed script: sys.path[0] is its bin directory, not the cwd
        launcher = (str(Path(sys.executable).with_name("hypoprobe")),)
        env["HYPOPROBE_CONFIG"] = str(config)
    else:
        args = ["--config", str(config)]
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [sys.executable, "-m", "gunicorn", "--no-control-socket", "-w", "2"]
    command += ["-b", f"127.0.0.1:{app_port}", "--chdir", str(app), "app:app"]
    feed = "GET /feed/{account}"
    with Launched(tmp_path, elsewhere, args, command, env=env, launcher=launcher) as run:
        run.wait_http(f"{base}/pid", timeout=60)
        found = run.wait_summary(timeout=60)
        assert found.groups()[:4] == ("3", "3", "0", "0"), run.err()
        for i in range(30):
            _get(f"{base}/feed/{i % 5}")
        samples = _settled(run.url, 30, endpoint=feed)
        states = {
            (dict(labels)["target"], dict(labels)["state"]): v
            for (name, labels), v in samples.items()
            if name == "hypoprobe_probe_target_state" and v > 0
        }
        for target in ("queries:load_followers", "queries:format_names"):
            # Attached in both workers; pending only where the app is never imported (the
            # launcher, gunicorn's master), failed nowhere.
            assert states.get((target, "attached")) == 2, states
            assert (target, "failed") not in states, states
        report = _report("--metrics-url", run.url)
        got = {(v["hypothesis"], v["endpoint"]): v["verdict"] for v in report["verdicts"]}
        assert got == {
            ("PERF-1", feed): "CONFIRMED",
            ("PERF-2", feed): "DISPROVED",
            ("PERF-3", feed): "DISPROVED",
        }
        # ... and the report does not warn of targets "pending" that every worker attached.
        warnings = [w for v in report["verdicts"] for w in v.get("warnings", [])]
        assert not [w for w in warnings if "pending" in w], warnings
        assert run.stop() == 0, run.err()
    err = run.err()
    # No misleading line from an import-time load that could not see the app yet.
    assert "not loaded" not in err, err
    assert "no module named" not in err, err
    assert _files(app) == before  # nothing written beside the application
    assert _files(elsewhere) == []
    assert _left_behind(tmp_path) == []


# ------------------------------------------------------------------ FastAPI + uvicorn


@pytest.mark.parametrize("workers", [1, 2])
def test_fastapi_under_uvicorn_sigint_passes_through(tmp_path: Path, workers: int) -> None:
    # --workers 2: uvicorn spawns new interpreters, which bootstrap themselves.
    _need("uvicorn")
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(app_port),
        "--workers",
        str(workers),
    ]
    with Launched(tmp_path, APPS / "fastapiapp", ["--config", "perf.toml"], command) as run:
        run.wait_http(f"{base}/plans/1")
        found = run.wait_summary()
        assert found.groups()[:4] == ("2", "2", "0", "0"), run.err()
        for i in range(39):
            assert json.loads(_get(f"{base}/plans/{i}"))["score"] == i * 2
        route = "GET /plans/{plan}"
        samples = _settled(run.url, 40, endpoint=route)
        assert _value(samples, "hypoprobe_endpoint_duration_seconds_count", endpoint=route) == 40
        assert (
            _value(
                samples,
                "hypoprobe_probe_duration_seconds_count",
                hypothesis="PERF-11",
                endpoint=route,
                probe="SELECT price FROM plans WHERE id = ?",
            )
            == 40
        )
        assert _verdicts(run.url) == {
            ("PERF-10", route): "CONFIRMED",
            ("PERF-11", route): "DISPROVED",
        }
        code = run.stop(signal.SIGINT)
        assert code == 0, run.err()
        assert "Shutting down" in run.err()  # uvicorn itself received the SIGINT
    assert _left_behind(tmp_path) == []


# -------------------------------------------------------- configuration and processes


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_bad_configuration_runs_the_command_unprobed(tmp_path: Path) -> None:
    with Launched(
        tmp_path,
        APPS,
        ["--config", "badconfig.toml"],
        _python("import sys; print('app ran'); sys.exit(3)"),
    ) as run:
        code = run.proc.wait(timeout=60)
    assert code == 3  # the command's own exit code
    assert "app ran" in run.out()
    err = run.err()
    assert "the configuration was not loaded" in err
    assert "badconfig.toml:5: unknown field 'min_shar'" in err
    assert "UNPROBED" in err
    assert _left_behind(tmp_path) == []


def test_strict_fails_fast_without_starting_the_command(tmp_path: Path) -> None:
    with Launched(
        tmp_path,
        APPS,
        ["--config", "badconfig.toml", "--strict"],
        _python("print('app ran')"),
    ) as run:
        code = run.proc.wait(timeout=60)
    assert code == 2
    assert "app ran" not in run.out()
    assert "badconfig.toml:5" in run.err()


def test_strict_from_the_environment(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["HYPOPROBE_STRICT"] = "1"
    env["HYPOPROBE_CONFIG"] = str(APPS / "badconfig.toml")
    with Launched(tmp_path, APPS, [], _python("print('app ran')"), env=env) as run:
        code = run.proc.wait(timeout=60)
    assert code == 2, run.err()
    assert "app ran" not in run.out()


def test_signals_are_forwarded_and_exit_codes_pass_through(tmp_path: Path) -> None:
    waits = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    config = ["--config", str(APPS / "flaskapp" / "perf.toml")]
    with Launched(tmp_path, APPS, config, _python(waits)) as run:
        _wait_for(lambda: "ready" in run.out(), run)
        assert run.stop(signal.SIGUSR1) == 7
    with Launched(tmp_path, APPS, config, _python(waits.replace("SIGUSR1", "SIGHUP"))) as run:
        _wait_for(lambda: "ready" in run.out(), run)
        assert run.stop(signal.SIGTERM) == 128 + signal.SIGTERM  # killed by the signal
    assert _left_behind(tmp_path) == []


def _wait_for(condition: Callable[[], object], run: Launched, timeout: float = 30) -> None:
    eventually(condition, timeout, explain=run.err)


def test_an_existing_sitecustomize_still_runs_and_probes_bind_early(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("print('their sitecustomize ran', flush=True)\n")
    env = _env(tmp_path)
    env["PYTHONPATH"] = str(theirs)
    # `from queries import format_names` must bind the probed function (a probe keeps
    # the function's name, so look for the wrapper wrapt leaves).
    check = (
        "from queries import format_names\n"
        "print('probed' if hasattr(format_names, '__wrapped__') else 'not probed')\n"
    )
    config = ["--config", "perf.toml"]
    with Launched(tmp_path, APPS / "flaskapp", config, _python(check), env=env) as run:
        assert run.proc.wait(timeout=60) == 0, run.err()
    out = run.out()
    assert "their sitecustomize ran" in out
    assert out.splitlines()[-1] == "probed", run.err()


def test_an_app_instrumented_by_hand_is_not_instrumented_twice(tmp_path: Path) -> None:
    script = (
        "from flask import Flask\n"
        "from hypoprobe.integrations.flask import instrument_app\n"
        "from hypoprobe.integrations.wsgi import HypoprobeMiddleware\n"
        "app = Flask('byhand')\n"
        "instrument_app(app)\n"
        "app.get('/')(lambda: 'ok')\n"
        "assert app.test_client().get('/').data == b'ok'\n"
        "layers, inner = 0, app.wsgi_app\n"
        "while isinstance(inner, HypoprobeMiddleware):\n"
        "    layers, inner = layers + 1, inner.app\n"
        "print('layers', layers)\n"
    )
    config = ["--config", str(APPS / "flaskapp" / "perf.toml")]
    with Launched(tmp_path, APPS, config, _python(script)) as run:
        assert run.proc.wait(timeout=60) == 0, run.err()
    assert "layers 1" in run.out(), run.err()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for args in (
        ["run", "--config", "perf.toml"],  # no command
        ["run", "--", "true"],  # no configuration
        ["run", "--config", "perf.toml", "--metrics-port", "http", "--", "true"],
        ["run", "--config", "perf.toml", "--multiproc-dir", str(tmp_path / "nope"), "--", "true"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "hypoprobe", *args],
            check=False,
            cwd=APPS / "flaskapp",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("hypoprobe: "), done.stderr


def test_a_missing_command_exits_127(tmp_path: Path) -> None:
    with Launched(
        tmp_path, APPS, ["--config", "flaskapp/perf.toml"], ["no-such-command-hypoprobe"]
    ) as run:
        assert run.proc.wait(timeout=60) == 127
    assert "command not found" in run.err()


def test_failed_and_pending_targets_are_in_the_summary(tmp_path: Path) -> None:
    config = tmp_path / "perf.toml"
    config.write_text(
        (APPS / "flaskapp" / "perf.toml").read_text()
        + '\n[[hypothesis]]\nid = "PERF-4"\nclaim = "c"\nendpoint = "GET /feed/{account}"\n'
        'min_share = 0.5\nprobes = ["queries:no_such_function"]\n'
    )
    app_port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{app_port}",
        "app:app",
    ]
    with Launched(tmp_path, APPS / "flaskapp", ["--config", str(config)], command) as run:
        found = run.wait_summary()
        assert found.groups()[:4] == ("4", "3", "0", "1"), run.err()
        assert re.search(
            rf"FAILED {re.escape(str(config))}:\d+: queries:no_such_function: .*no attribute",
            run.err(),
        ), run.err()
        assert run.stop() == 0


# ------------------------------------------------------------------- Django + gunicorn


def test_django_project_under_gunicorn(tmp_path: Path) -> None:
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "mysite.wsgi:application",
    ]
    with Launched(tmp_path, APPS / "djangoproj", ["--config", "perf.toml"], command) as run:
        run.wait_http(f"{base}/items/0/")  # Django has started once it served a request
        found = run.wait_summary()
        assert found.groups()[:4] == ("2", "2", "0", "0"), run.err()
        for i in range(1, 40):
            assert _get(f"{base}/items/{i}/") == "90"
        route = "GET /items/{item_id}/"
        samples = _settled(run.url, 40, endpoint=route)
        assert _value(samples, "hypoprobe_endpoint_duration_seconds_count", endpoint=route) == 40
        assert (
            _value(
                samples,
                "hypoprobe_probe_duration_seconds_count",
                hypothesis="PERF-31",
                endpoint=route,
                probe="SELECT price FROM items WHERE id = ?",
            )
            == 40
        )
        assert _verdicts(run.url) == {
            ("PERF-30", route): "CONFIRMED",
            ("PERF-31", route): "DISPROVED",
        }
        assert run.stop() == 0, run.err()
    assert _left_behind(tmp_path) == []


def test_options_from_the_environment_and_a_kept_multiproc_dir(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    env = _env(tmp_path)
    port = free_port()
    env["HYPOPROBE_CONFIG"] = "perf.toml"
    env["HYPOPROBE_METRICS_PORT"] = str(port)
    env["HYPOPROBE_METRICS_ADDRESS"] = "127.0.0.1"
    env["HYPOPROBE_MULTIPROC_DIR"] = str(keep)
    script = "from queries import format_names\nprint(format_names(['a', 'b']), flush=True)\n"
    done = subprocess.run(
        [sys.executable, "-m", "hypoprobe", "run", "--", sys.executable, "-c", script],
        cwd=APPS / "flaskapp",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a,b"
    found = SUMMARY.search(done.stderr)
    assert found, done.stderr
    assert found.group(5) == f"http://127.0.0.1:{port}/metrics"
    # The process recorded its probe call into the directory, which outlives the run.
    assert any(p.name.endswith(".hp") for p in keep.iterdir())
    assert _left_behind(tmp_path) == []


def test_a_real_prometheus_scrapes_the_launcher(tmp_path: Path) -> None:
    require_prometheus()
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "app:app",
    ]
    feed = "GET /feed/{account}"
    with Launched(tmp_path, APPS / "flaskapp", ["--config", "perf.toml"], command) as run:
        run.wait_http(f"{base}/pid")
        for i in range(5):  # every series exists before the window opens
            _get(f"{base}/feed/{i}")
        target = run.url.removeprefix("http://").removesuffix("/metrics")
        _settled(run.url, 5, endpoint=feed)
        with start_prometheus(tmp_path / "prom", {"app": [target]}) as prom:
            prom.wait_for_up("app")
            start = _scrape_with(prom, feed, 5)
            for i in range(60):
                _get(f"{base}/feed/{i % 5}")
            _settled(run.url, 65, endpoint=feed)
            end = _scrape_with(prom, feed, 65)
            # From one scrape to another: exactly the 60 requests, nothing extrapolated.
            window = ["--window", f"{end - start:.3f}", "--at", f"{end:.3f}"]
            data = _report("--prometheus", prom.url, *window)
            assert {v["requests"] for v in data["verdicts"]} == {60}
            assert _verdicts("", "--prometheus", prom.url, *window) == {
                ("PERF-1", feed): "CONFIRMED",
                ("PERF-2", feed): "DISPROVED",
                ("PERF-3", feed): "DISPROVED",
            }
        assert run.stop() == 0


# ------------------------------------------------------------------------ in-process


def test_the_summary_line_counts_states_and_lists_failures() -> None:
    from hypoprobe.run._launcher import summary
    from hypoprobe.run._states import TargetState

    targets = [
        TargetState("a:f", "perf.toml:6", "attached"),
        TargetState("a:g", "perf.toml:7", "attached"),
        TargetState("b:h", "perf.toml:13", "pending"),
        TargetState("a:typo", "perf.toml:8", "failed", "module a has no attribute 'typo'"),
    ]
    url = "http://127.0.0.1:9464/metrics"
    assert summary(4, targets, url) == [
        f"4 hypotheses, 2 targets attached, 1 pending, 1 failed; /metrics on {url}",
        "FAILED perf.toml:8: a:typo: module a has no attribute 'typo'",
    ]
    assert summary(1, targets[:1], url)[0].startswith("1 hypothesis, 1 target attached, 0 pending")


def test_the_commands_environment(tmp_path: Path) -> None:
    from hypoprobe.run._launcher import BOOT_DIR, child_environment

    base = {"PYTHONPATH": f"/srv/lib{os.pathsep}{BOOT_DIR}", "HYPOPROBE_CONFIG": "old.toml"}
    env = child_environment(
        base,
        config=tmp_path / "perf.toml",
        run_dir=tmp_path / "status",
        metrics_dir=tmp_path / "metrics",
        probed=True,
        strict=False,
    )
    path = env["PYTHONPATH"].split(os.pathsep)
    assert path == [BOOT_DIR, os.getcwd(), "/srv/lib"]
    assert (Path(BOOT_DIR) / "sitecustomize.py").is_file()
    assert sorted(p.name for p in Path(BOOT_DIR).iterdir() if p.suffix == ".py") == [
        "sitecustomize.py"
    ]  # the directory shadows nothing else
    assert env["HYPOPROBE_CONFIG"] == str(tmp_path / "perf.toml")
    assert env["HYPOPROBE_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    assert env["HYPOPROBE_STRICT"] == "0"
    unprobed = child_environment(
        base,
        config=tmp_path / "perf.toml",
        run_dir=tmp_path / "status",
        metrics_dir=tmp_path / "metrics",
        probed=False,
        strict=False,
    )
    assert unprobed["PYTHONPATH"] == "/srv/lib"
    assert "HYPOPROBE_CONFIG" not in unprobed
    assert "HYPOPROBE_RUN_DIR" not in unprobed


def test_celery_tasks_are_job_scopes(tmp_path: Path) -> None:
    _need("celery")
    command = [sys.executable, "tasks.py", "40"]
    with Launched(tmp_path, APPS / "celeryapp", ["--config", "perf.toml"], command) as run:
        _wait_for(lambda: "done" in run.out(), run, timeout=60)
        job = "job tasks.send_digest"
        samples = _settled(run.url, 40, endpoint=job)
        assert _value(samples, "hypoprobe_endpoint_duration_seconds_count", endpoint=job) == 40
        assert _verdicts(run.url) == {("PERF-40", job): "CONFIRMED", ("PERF-41", job): "DISPROVED"}
        assert run.stop() == 128 + signal.SIGTERM


def test_the_demo_app_under_gunicorn_gives_the_tutorials_verdicts(tmp_path: Path) -> None:
    # The demo app is instrumented by hand (instrument_app, in-code probes): hypoprobe run
    # must leave its Flask app alone and add the TOML's target.
    from hypoprobe.demo.app import HYPOTHESES

    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    env = _env(tmp_path)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'campaigns.sqlite'}"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "hypoprobe.demo.app:create_app()",
    ]
    with Launched(tmp_path, tmp_path, ["--config", str(HYPOTHESES)], command, env=env) as run:
        run.wait_http(f"{base}/", timeout=120)  # the first start builds the database
        found = run.wait_summary()
        assert found.groups()[:4] == ("3", "1", "0", "0"), run.err()
        load = subprocess.run(
            [
                *(sys.executable, "-m", "hypoprobe.demo.loadgen", base),
                *("--requests", "600", "--seed", "1"),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        sent = re.search(r"campaigns (\d+)", load.stdout + load.stderr)
        assert sent, load.stdout + load.stderr
        campaigns = "GET /accounts/{account_id}/campaigns"
        # Every request once: the hand-made instrumentation was not doubled (more than
        # were sent fails at once).
        _settled(run.url, int(sent.group(1)), endpoint=campaigns)
        verdicts = _verdicts(run.url)
        assert verdicts[("PERF-412", campaigns)] == "DISPROVED"
        assert verdicts[("PERF-415", campaigns)] == "CONFIRMED"
        assert run.stop() == 0
