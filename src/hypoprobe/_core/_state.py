"""The one owner of hypoprobe's mutable process state: one fork hook, one reset.

Every module that keeps state for the whole process (storage, hypotheses, plans, probe
targets, exemplars, slowest requests, faults, self cost, multi-process locks, OpenTelemetry
exports) declares it here once, at import, instead of registering a fork hook of its own:

* ``after_fork``: what a forked child must redo before anything else runs: fresh locks (a
  lock another thread held at fork stays held in the child), its own pid, threads that
  did not survive the fork;
* ``reset``: forget what this process recorded (counts, exemplars, slowest requests,
  fault counts) while declarations (hypotheses, probes, their series) stay valid.

A forked child runs, owner by owner in declaration order, its ``after_fork`` then its
``reset`` (so the storage is empty before the targets re-count their states into it, and a
fault an owner meets in the child is counted after the fault counts were cleared). Tests
run the resets alone through :func:`hypoprobe.testing.reset`.

Example::

    _state.owns("slowest", after_fork=_new_lock, reset=_forget_requests)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

__all__: list[str] = []


@dataclass(frozen=True)
class _Owner:
    name: str
    after_fork: Callable[[], None] | None
    reset: Callable[[], None] | None


_OWNERS: list[_Owner] = []


def owns(
    name: str,
    *,
    after_fork: Callable[[], None] | None = None,
    reset: Callable[[], None] | None = None,
) -> None:
    """Declare a module's process state: what a forked child redoes, what a reset forgets."""
    _OWNERS[:] = [o for o in _OWNERS if o.name != name]  # a re-imported module replaces itself
    _OWNERS.append(_Owner(name, after_fork, reset))


def _run(steps: list[tuple[str, Callable[[], None]]]) -> None:
    for name, step in steps:
        try:
            step()
        except Exception:  # one owner's fault must not leave the others undone
            from . import _faults

            _faults.record(f"state_{name}")


def reset() -> None:
    """Forget everything this process recorded; declarations stay."""
    _run([(o.name, o.reset) for o in list(_OWNERS) if o.reset is not None])


def after_fork_in_child() -> None:
    """The one fork hook: each owner's ``after_fork`` then its ``reset``, owner by owner."""
    _run([(o.name, step) for o in list(_OWNERS) for step in (o.after_fork, o.reset) if step])


def names() -> list[str]:
    """The owners declared so far, in order (for tests and docs/internals.md)."""
    return [o.name for o in _OWNERS]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork_in_child)
