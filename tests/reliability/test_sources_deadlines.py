"""Every network read has an overall deadline, and Ctrl-C does not wait for the requests in
flight. Against local servers on 127.0.0.1 that trickle a byte at a time or never answer.

The bounds asserted are liveness bounds, several times the deadline, not performance
figures: before the fix these reads took minutes (a trickle holds a per-read timeout
forever) or twice the timeout (a silent Prometheus, queries queued behind each other).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from readside import elapsed, serving, silent, trickle

from hypoprobe.sources import EXIT_UNREACHABLE, SourceError, query_prometheus, scrape_metrics

#: A /metrics body long enough to trickle for minutes at 4 bytes a second.
_BODY = b"# HELP hypoprobe_x x\n" * 200

#: Liveness bound past the deadline, for a busy machine (the old behaviour overshot by
#: minutes, or by several times the deadline).
_SLACK = 4.0


def _assert_deadline(
    seconds: float, result: object, deadline: float, slack: float = _SLACK
) -> None:
    assert isinstance(result, SourceError), result
    assert result.exit_code == EXIT_UNREACHABLE
    assert f"within {deadline:g} s" in str(result)
    assert seconds < deadline + slack, seconds


@pytest.mark.parametrize("headers_first", [False, True], ids=["in the headers", "in the body"])
def test_a_trickling_metrics_endpoint_is_cut_off_at_the_deadline(headers_first: bool) -> None:
    with serving(trickle(_BODY, headers_first=headers_first)) as server:
        took, result = elapsed(lambda: scrape_metrics([f"{server.url}/metrics"], timeout=1.0))
    _assert_deadline(took, result, 1.0)


def test_several_trickling_targets_share_one_deadline() -> None:
    with (
        serving(trickle(_BODY, headers_first=True)) as a,
        serving(trickle(_BODY, headers_first=False)) as b,
    ):
        took, result = elapsed(
            lambda: scrape_metrics([f"{a.url}/metrics", f"{b.url}/metrics"], timeout=1.0)
        )
    _assert_deadline(took, result, 1.0)


def test_a_silent_prometheus_is_cut_off_at_the_overall_timeout() -> None:
    # ~25 queries, 4 at a time, each with its own timeout: the first timed out after one
    # timeout, then the three others in flight were awaited, timing out too: twice the timeout.
    with serving(silent) as server:
        took, result = elapsed(lambda: query_prometheus(server.url, 60.0, timeout=3.0))
    _assert_deadline(took, result, 3.0, slack=2.0)


def test_a_trickling_prometheus_is_cut_off_at_the_overall_timeout() -> None:
    with serving(trickle(b'{"status": "success", "data": {}}' * 50, headers_first=True)) as s:
        took, result = elapsed(lambda: query_prometheus(s.url, 60.0, timeout=1.0))
    _assert_deadline(took, result, 1.0)


_INTERRUPTED = """
import sys
from hypoprobe.cli import main
print("started", flush=True)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("source", ["metrics", "prometheus"])
def test_ctrl_c_with_several_targets_stops_at_once(source: str) -> None:
    with serving(silent) as a, serving(silent) as b, serving(silent) as c:
        if source == "metrics":
            argv = ["report", "--metrics-url", f"{a.url}/metrics", f"{b.url}/metrics", c.url]
        else:
            argv = ["report", "--prometheus", a.url, "--window", "1h"]
        proc = subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTED, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "started\n"
            time.sleep(1.0)  # the requests are in flight (the silent servers hold them)
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert err.strip() == "hypoprobe: interrupted"
    # The CLI's timeouts are 10 s (scrape) and 30 s (Prometheus): Ctrl-C must not wait.
    assert took < 5.0, took
