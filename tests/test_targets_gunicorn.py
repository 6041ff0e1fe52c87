"""A pre-fork server probed only from a TOML file: a failed target shows in the host's scrape.

gunicorn (2 workers, multi-process mode, no ``preload_app``) serves a plain WSGI app that
never imports hypoprobe's probes itself; ``HYPOPROBE_CONFIG`` names the file. The file is
loaded when hypoprobe is imported in each worker — before gunicorn has put the app's
directory on ``sys.path`` and imported it — so every target starts ``pending``; when the
app is imported one target attaches and one (an attribute typo) fails. Any worker's
``/metrics`` reports the whole host: the failed target in both workers, and the report
reads UNMEASURED for its hypothesis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypoprobe.cli import main
from servers import free_port

pytestmark = pytest.mark.real_server

APP = """\
import time

import hypoprobe.prometheus  # the collector; the probes come from HYPOPROBE_CONFIG
import prometheus_client
from hypoprobe.integrations.wsgi import HypoprobeMiddleware

import models


def inner(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        body = prometheus_client.generate_latest()
    else:
        models.query(0.002)
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


app = HypoprobeMiddleware(inner, name=lambda environ: "GET " + environ["PATH_INFO"])
"""

MODELS = """\
import time


def query(seconds):
    time.sleep(seconds)
"""

CONFIG = """\
[[hypothesis]]
id = "GUNI-1"
claim = "the query dominates GET /explore"
endpoint = "GET /explore"
min_share = 0.5
probes = ["models:query"]

[[hypothesis]]
id = "GUNI-2"
claim = "the followers count dominates GET /explore"
endpoint = "GET /explore"
min_share = 0.5
probes = ["models:folowers_count"]
"""


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        body: bytes = resp.read()
        return body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    pytest.importorskip("gunicorn", reason="gunicorn is in the test extras")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "wsgi.py").write_text(APP)
    (app_dir / "models.py").write_text(MODELS)
    (tmp_path / "perf.toml").write_text(CONFIG)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HYPOPROBE_CONFIG": str(tmp_path / "perf.toml"),
        "HYPOPROBE_MULTIPROC_DIR": str(multiproc),
    }
    env.pop("PYTHONPATH", None)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--no-control-socket",
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "--chdir",
                str(app_dir),
                "wsgi:app",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            try:
                _get(port, "/explore")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not serve:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_the_failed_target_is_in_the_hosts_scrape_and_the_verdict_is_unmeasured(
    server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both workers must have imported the app (each imports it on its own): keep asking
    # until two workers answered the state.
    line = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _ in range(40):
            _get(server, "/explore")
        text = _get(server, "/metrics").decode()
        failed = [
            ln
            for ln in text.splitlines()
            if ln.startswith("hypoprobe_probe_target_state{") and 'state="failed"' in ln
        ]
        if failed and failed[0].endswith(" 2.0"):
            line = failed[0]
            break
        time.sleep(0.2)
    assert 'hypothesis="GUNI-2"' in line, text
    assert 'target="models:folowers_count"' in line
    assert "reason=\"module models has no attribute 'folowers_count'\"" in line
    attached = [
        ln for ln in text.splitlines() if 'target="models:query"' in ln and "attached" in ln
    ]
    assert attached, text
    assert attached[0].endswith(" 2.0"), text

    code = main(
        ["report", "--metrics-url", f"http://127.0.0.1:{server}/metrics", "--format", "json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    verdicts = {v["hypothesis"]: v for v in json.loads(out)["verdicts"]}
    assert verdicts["GUNI-2"]["verdict"] == "UNMEASURED"
    assert verdicts["GUNI-2"]["reason"].startswith("none of GUNI-2's probes ran in ")
    assert (
        "target models:folowers_count failed: module models has no attribute"
        in (verdicts["GUNI-2"]["reason"])
    )
    assert verdicts["GUNI-1"]["verdict"] != "UNMEASURED"
