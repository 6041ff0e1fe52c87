"""Faults counted inside a signal handler, on the thread whose fault count it interrupted.

Python runs a signal handler between two bytecodes of the main thread: if that thread was
counting a fault, a fault counted in the handler must not wait for what the interrupted
count holds (it would wait forever), and neither count may be lost.
"""

from __future__ import annotations

import pytest
from rel_helpers import run

pytestmark = pytest.mark.reliability

INTERRUPTED = """
import signal
from hypoprobe._core import _faults

def handler(signum, frame):
    _faults.record("in_handler")
    _faults.snapshot()  # a handler that collects must not wait either

signal.signal(signal.SIGUSR1, handler)
# Deterministic: the handler runs while this thread is inside the counting's critical
# section, exactly where an interrupted record() would be.
with _faults._lock:
    os.kill(os.getpid(), signal.SIGUSR1)
    for _ in range(1000):  # the handler runs at one of these bytecodes
        pass
report(faults=_faults.snapshot())
"""

STORM = """
import signal
from hypoprobe._core import _faults

ticks = 0

def handler(signum, frame):
    global ticks
    ticks += 1
    _faults.record("storm")

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
n = 0
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    _faults.record("storm")
    n += 1
    if n % 1000 == 0:
        _faults.snapshot()
signal.setitimer(signal.ITIMER_REAL, 0, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
report(n=n, ticks=ticks, faults=_faults.snapshot())
"""


def test_a_fault_counted_in_a_handler_that_interrupted_a_count_does_not_deadlock() -> None:
    out = run(None, INTERRUPTED, timeout=30)
    assert out["faults"] == {"in_handler": 1}
    assert out["errors"] == {"in_handler": 1}  # and the exposition's view agrees


def test_faults_counted_in_a_signal_storm_are_exact() -> None:
    out = run(None, STORM, timeout=30)
    assert out["ticks"] > 100, "the timer did not fire: the test proves nothing"
    # Every count once, the handler's and the interrupted loop's: none lost, none doubled.
    assert out["faults"] == {"storm": out["n"] + out["ticks"]}
