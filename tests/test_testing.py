"""hypoprobe.testing: a fake clock and a reset, backed by one owner of process state."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import hypoprobe
from hypoprobe import testing
from hypoprobe._core import _state

SRC = Path(hypoprobe.__file__).parent


def _declare(unique_id: Callable[..., str]) -> tuple[str, str, object]:
    hid, endpoint = unique_id(), f"GET /{unique_id('ep')}"
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, slow_threshold=0.2)
    return hid, endpoint, hypoprobe.probe(hid, name="query")


def _request(endpoint: str, probed: object, clock: testing.FakeClock) -> None:
    with hypoprobe.endpoint(endpoint):
        with probed:  # type: ignore[attr-defined]
            clock.advance_seconds(0.3)
        clock.advance_seconds(0.1)


def test_the_fake_clock_makes_durations_and_instants_exact(
    unique_id: Callable[..., str],
) -> None:
    hid, endpoint, probed = _declare(unique_id)
    with testing.fake_clock() as clock:
        _request(endpoint, probed, clock)
        snap = hypoprobe.snapshot()
    mo = snap.moments_for(hid, endpoint)
    assert (mo.requests, mo.probe_seconds, mo.endpoint_seconds) == (1, 0.3, 0.4)
    assert snap.created_at == testing.FakeClock.WALL_START + 0.4
    mine = [r for r in snap.slowest if r.hypothesis == hid]
    assert mine
    assert mine[0].at == testing.FakeClock.WALL_START + 0.4


def test_the_fake_clock_is_restored(unique_id: Callable[..., str]) -> None:
    before = hypoprobe.configure().clock
    with testing.fake_clock():
        assert hypoprobe.configure().clock is not before
    assert hypoprobe.configure().clock is before
    assert abs(hypoprobe.snapshot().created_at - __import__("time").time()) < 60


def test_reset_forgets_counts_and_keeps_declarations(unique_id: Callable[..., str]) -> None:
    hid, endpoint, probed = _declare(unique_id)
    with testing.fake_clock() as clock:
        _request(endpoint, probed, clock)
        assert hypoprobe.snapshot().moments_for(hid, endpoint).requests == 1
        testing.reset()
        snap = hypoprobe.snapshot()
        assert snap.moments_for(hid, endpoint).requests == 0
        assert all(e.duration.count == 0 for e in snap.endpoints)
        assert not snap.slowest
        assert not snap.internal_errors
        assert hid in {h.id for h in snap.hypotheses}
        _request(endpoint, probed, clock)  # the same probe records again, from zero
        assert hypoprobe.snapshot().moments_for(hid, endpoint).requests == 1


def test_reset_refuses_multi_process_mode(tmp_path: Path, restore_config: None) -> None:
    hypoprobe.configure(multiproc_dir=str(tmp_path))
    with pytest.raises(hypoprobe.ConfigurationError, match="multi-process"):
        testing.reset()


def test_one_fork_hook_for_all_process_state() -> None:
    calls = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "register_at_fork":
                calls.append(path.relative_to(SRC).as_posix())
    assert calls == ["_core/_state.py"]
    import hypoprobe.otel  # noqa: F401  (declares its state on import)

    assert {
        "storage",
        "hypotheses",
        "plan",
        "targets",
        "exemplars",
        "slowest",
        "faults",
        "selfcost",
        "multiproc",
        "otel",
    } <= set(_state.names())
    # The storage empties before the targets count their states into it again.
    assert _state.names().index("storage") < _state.names().index("targets")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_from_zero(unique_id: Callable[..., str]) -> None:
    hid, endpoint, probed = _declare(unique_id)
    with testing.fake_clock() as clock:
        _request(endpoint, probed, clock)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            snap = hypoprobe.snapshot()
            ok = snap.moments_for(hid, endpoint).requests == 0 and not snap.slowest
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert hypoprobe.snapshot().moments_for(hid, endpoint).requests == 1
    assert sys.modules["hypoprobe._core._state"] is _state
