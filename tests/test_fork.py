"""Fork: a child starts from zero, so a pre-fork server never reports the parent's counts twice."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe._core import _faults, _hypothesis, _plan, _storage
from hypoprobe.model import Snapshot

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")

CHILD_TIMEOUT = 10.0


def _in_child(work: Callable[[], str], out_path: Path) -> Snapshot:
    """Run ``work`` in a forked child; return the snapshot JSON it wrote to ``out_path``.

    A file rather than a pipe: a snapshot can be larger than a pipe's buffer, and a child
    blocked on a full pipe would look like a hang.
    """
    # Inherited by the child, even if it hangs inside fork's own handlers: on a timeout the
    # parent asks it for every thread's stack (on stderr) before killing it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    pid = os.fork()
    if pid:
        faulthandler.unregister(signal.SIGUSR1)
    else:  # the child: never return into pytest
        code = 1
        try:
            try:
                text = work()
                code = 0
            except BaseException:
                text = traceback.format_exc()  # the parent's failure message
            out_path.write_text(text)
        finally:
            os._exit(code)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGUSR1)
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung (a lock held across fork?)")
        time.sleep(0.01)
    text = out_path.read_text() if out_path.exists() else "(no output)"
    assert os.waitstatus_to_exitcode(status) == 0, text
    return Snapshot.from_json(text)


def _calls(snap: Snapshot, hid: str, endpoint: str) -> int:
    return sum(
        p.duration.count for p in snap.probes if (p.hypothesis, p.endpoint) == (hid, endpoint)
    )


def test_child_starts_from_zero_and_parent_keeps_its_counts(
    registered_hypothesis: Callable[..., tuple[str, str]], fake_clock: FakeClock, tmp_path: Path
) -> None:
    hid, ep = registered_hypothesis()

    @hypoprobe.probe(hid, name="q")
    def query() -> None:
        fake_clock.advance(1_000_000)

    def request(calls: int) -> None:
        with hypoprobe.endpoint(ep):
            for _ in range(calls):
                query()

    for _ in range(5):
        request(2)
    before = hypoprobe.snapshot()
    assert before.moments_for(hid, ep).requests == 5

    def child() -> str:
        zero = hypoprobe.snapshot()
        assert _calls(zero, hid, ep) == 0
        assert zero.moments_for(hid, ep).requests == 0
        assert not zero.internal_errors
        request(3)  # the probes and scopes made before fork keep working
        return hypoprobe.snapshot().to_json()

    child_snap = _in_child(child, tmp_path / "child.json")
    mo = child_snap.moments_for(hid, ep)
    assert mo.requests == 1
    assert mo.probe_seconds == pytest.approx(0.003)
    assert _calls(child_snap, hid, ep) == 3
    assert child_snap.hypothesis(hid) is not None  # the registry is inherited

    after = hypoprobe.snapshot()
    assert after.moments_for(hid, ep) == before.moments_for(hid, ep)
    assert _calls(after, hid, ep) == 10


def test_fork_while_another_thread_records_does_not_hang(
    unique_id: Callable[..., str], tmp_path: Path
) -> None:
    hid, ep = unique_id(), unique_id("spin")
    stop = threading.Event()

    @hypoprobe.probe(hid, name="busy")
    def busy() -> None:
        pass

    def spin() -> None:
        while not stop.is_set():
            with hypoprobe.endpoint(ep):
                busy()
            hypoprobe.snapshot()  # takes the storage lock often

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.05)

        def child() -> str:
            busy()
            return hypoprobe.snapshot().to_json()

        for i in range(3):
            child_snap = _in_child(child, tmp_path / f"child{i}.json")
            assert _calls(child_snap, hid, "<none>") == 1
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize(
    "lock_of",
    [
        pytest.param(lambda: _plan._lock, id="plan"),
        pytest.param(lambda: _hypothesis.REGISTRY._lock, id="registry"),
        pytest.param(lambda: _storage.STORAGE._lock, id="storage"),
        pytest.param(lambda: _faults._lock, id="faults"),
    ],
)
def test_a_lock_held_by_another_thread_at_fork_does_not_hang_the_child(
    unique_id: Callable[..., str], tmp_path: Path, lock_of: Callable[[], Any]
) -> None:
    # Deterministic version of the race above: another thread holds one of hypoprobe's
    # locks exactly when the process forks (a background exporter collecting, say).
    lock = lock_of()
    held, release = threading.Event(), threading.Event()

    @hypoprobe.probe(unique_id(), name="holder")
    def record_once() -> None:
        pass

    def holder() -> None:
        # Recording first gives this thread a shard: at fork, the child discards the thread
        # and its shard's finalizer runs inside fork itself, before any at-fork handler.
        record_once()
        with lock:
            held.set()
            release.wait(CHILD_TIMEOUT)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    hid, ep = unique_id(), unique_id("ep")

    def child() -> str:
        hypoprobe.hypothesis(hid, claim="registered in the child", endpoint=ep, min_share=0.5)
        with hypoprobe.endpoint(ep), hypoprobe.probe(hid, name="new-in-child"):
            pass
        _faults.record("forked_child_test")
        return hypoprobe.snapshot().to_json()

    try:
        child_snap = _in_child(child, tmp_path / "child.json")
    finally:
        release.set()
        thread.join()
    assert child_snap.moments_for(hid, ep).requests == 1
