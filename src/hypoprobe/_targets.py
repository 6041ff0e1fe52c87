"""Probe targets and their health: where each probe is attached, and whether it is.

Every probe belongs to a *target*: a function named in a TOML file (kind ``config``), or,
for a decorator, a ``with probe(...)`` block or a DB matcher, the probe site itself (kind
``code``, attached when it is created). A target is in one state:

* ``pending``: its module is not imported yet (a config target waits for the import);
* ``attached``: probed; ``reason`` starts with ``late:`` when the module was imported
  before the target was patched, so references taken earlier still call the original;
* ``failed``: it cannot be probed; ``reason`` says why (no such module, no attribute, ...);
* ``detached``: ``unload()`` put the original back.

The states of config targets are series of the storage (one integer slot each,
``hypoprobe_probe_target_state`` with labels hypothesis, target, kind, state and reason), so
every view that reads the storage — Prometheus, OpenTelemetry, snapshots, multi-process
files — sees them. Code targets are known to the process (``hypoprobe check`` lists them)
but not exported: they are attached by construction, and their probe's series are there. A
transition subtracts one from the old state's series and adds one to the new, in the
calling process; the value summed over processes is the number of processes in that state.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from . import _faults
from . import _metrics as m
from ._storage import STORAGE

__all__: list[str] = []

PENDING = "pending"
ATTACHED = "attached"
FAILED = "failed"
DETACHED = "detached"
STATES = (PENDING, ATTACHED, FAILED, DETACHED)

CONFIG = "config"
CODE = "code"

#: Longest reason kept as a label value: a reason is for people, one line.
MAX_REASON = 300

_lock = threading.RLock()


@dataclass
class Target:
    """One target and its current state (mutable, under the module lock)."""

    hypothesis_id: str
    target: str
    kind: str
    where: str = ""
    state: str = PENDING
    reason: str = ""
    #: The probe (site) name once attached: what the report's per-probe rows are called.
    probe: str | None = None


#: Every target of this process, by (hypothesis id, target).
TARGETS: dict[tuple[str, str], Target] = {}

#: Set while a config target creates its probe site, so the site is not a target of its own.
_claimed = threading.local()


def _clean(reason: str) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _add(t: Target, delta: int) -> None:
    if t.kind == CODE:
        # A code probe is attached from the moment its site exists, and its site's series
        # (exported at zero from the start) say so: no series of its own, no shard written.
        return
    try:
        labels = (t.hypothesis_id, t.target, t.kind, t.state, t.reason)
        offset = STORAGE.series(m.PROBE_TARGET.name, labels, ints=1).int_offset
        ints, _ = STORAGE.shard()
        ints[offset] += delta
    except Exception:
        _faults.record("target_state")


def declare(
    hypothesis_id: str,
    target: str,
    kind: str,
    *,
    where: str = "",
    state: str = PENDING,
    reason: str = "",
    probe: str | None = None,
) -> Target:
    """Create (or take over) the target and put it in ``state``."""
    with _lock:
        found = TARGETS.get((hypothesis_id, target))
        if found is None:
            found = Target(hypothesis_id, target, kind, where, state, _clean(reason), probe)
            TARGETS[(hypothesis_id, target)] = found
            _add(found, 1)
            return found
        found.where = where or found.where
        found.probe = probe or found.probe
        set_state(found, state, reason)
        return found


def set_state(t: Target, state: str, reason: str = "") -> None:
    """Move a target to ``state`` (with ``reason``); a no-op when nothing changes."""
    reason = _clean(reason)
    with _lock:
        if (t.state, t.reason) == (state, reason):
            return
        _add(t, -1)
        t.state, t.reason = state, reason
        _add(t, 1)


def site_created(hypothesis_id: str, name: str) -> None:
    """A probe site was created: unless a config target made it, it is a ``code`` target."""
    if getattr(_claimed, "active", False):
        return
    declare(hypothesis_id, name, CODE, state=ATTACHED, probe=name)


class claiming:
    """``with claiming():`` the sites created inside belong to a config target."""

    def __enter__(self) -> None:
        _claimed.active = True

    def __exit__(self, *exc: object) -> None:
        _claimed.active = False


def all_targets() -> list[Target]:
    with _lock:
        return list(TARGETS.values())


def _after_fork_in_child() -> None:
    # The child's storage starts from zero (the parent reports its own): the targets the
    # child inherited are in their states in this process too.
    global _lock
    _lock = threading.RLock()
    for t in list(TARGETS.values()):
        _add(t, 1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
