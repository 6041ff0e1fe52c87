"""Requests that end inside a signal handler, on the thread they interrupted.

A signal handler runs between two bytecodes of whatever the main thread was doing, with the
main thread's context: if that was hypoprobe's end-of-request work holding a lock, a request
ending in the handler must not wait for that lock (it would wait forever).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_helpers import run

pytestmark = pytest.mark.reliability

SIGNAL_STORM = """
import signal
# Real time: requests of varied lengths keep making the slowest lists (a constant fake
# clock would let one float comparison reject them all, never taking the lock).
hypoprobe.configure(clock=time.perf_counter_ns, slowest_window_seconds=0.001,
                    slowest_requests=5, exemplars={exemplars})
hypoprobe.hypothesis("REL-1", claim="work dominates", endpoint=["GET /main", "GET /tick"],
                     min_share=0.5)
ticks = 0

def handler(signum, frame):
    global ticks
    ticks += 1
    with hypoprobe.endpoint("GET /tick"):
        work()

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
n = slowest = 0
deadline = time.monotonic() + 2.0
while time.monotonic() < deadline:
    with hypoprobe.endpoint("GET /main"):
        work()
    n += 1
    if n % 500 == 0:
        # collection takes the same lock, signals keep coming
        slowest = max(slowest, len(hypoprobe.snapshot().slowest))
signal.setitimer(signal.ITIMER_REAL, 0, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
report(n=n, ticks=ticks, slowest=slowest)
"""


@pytest.mark.parametrize("exemplars", [False, True])
def test_a_request_ending_in_a_signal_handler_never_deadlocks(
    tmp_path: Path, exemplars: bool
) -> None:
    out = run(None, SIGNAL_STORM.replace("{exemplars}", str(exemplars)), timeout=30)
    assert out["ticks"] > 100, "the timer did not fire: the test proves nothing"
    # Every probe call counted once, but for the rare handler that lands between the read
    # and the write of the very slot its own call adds to (``slot += 1`` is two steps in
    # Python): that one increment is lost. Measured: at most 1 in ~150,000 calls here.
    lost = out["n"] + out["ticks"] - out["calls"]
    assert 0 <= lost <= 5
    assert out["errors"] == {}
    assert out["slowest"] > 0, "no request made the slowest lists: the test proves nothing"
