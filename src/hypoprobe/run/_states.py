"""Target states for the summary line: the one adapter between ``hypoprobe run`` and ``_load``.

Target health states (pending / attached / failed / detached, and settling the
still-pending targets once the application has started) belong to the loader
(``_targets``, ``_load.settle_pending``): :func:`target_states` reads each function
target's state from it, and :func:`settle` settles the loader's pending targets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["TargetState", "hypothesis_count", "settle", "target_states"]

State = Literal["pending", "attached", "failed", "detached"]

_lock = threading.Lock()
_settled = False


@dataclass(frozen=True)
class TargetState:
    """One target of the configuration and how it stands in this process."""

    target: str
    where: str  # "file:line"
    state: State
    reason: str = ""


def settle() -> None:
    """The application has started: targets still pending are failed from now on."""
    global _settled
    from .. import _load

    with _lock:
        _settled = True
    _load.settle_pending()


def hypothesis_count() -> int:
    """Hypotheses of the loaded configuration files."""
    from .. import _load

    with _load._lock:
        return sum(len(loaded.hypotheses) for loaded in _load._LOADED.values())


def target_states() -> list[TargetState]:
    """Every function target and SQL matcher of the loaded files, with its state."""
    from .. import _load, _sqlconfig, _sqlhooks

    out: list[TargetState] = []
    with _load._lock:
        patches = [p for loaded in _load._LOADED.values() for p in loaded.patches]
    for patch in patches:
        t = patch.state
        if t is None:  # not loaded through load(): nothing is known about it
            out.append(TargetState(patch.target, patch.where, "pending"))
        else:
            out.append(TargetState(patch.target, patch.where, cast(State, t.state), t.reason))
    hooked = bool(_sqlhooks.HOOKED)
    for matcher in _sqlconfig.active():
        name = f"sql {matcher.pattern!r} ({matcher.hypothesis_id})"
        if hooked:
            out.append(TargetState(name, matcher.where, "attached"))
        elif _settled:
            reason = "the application imported no SQLAlchemy, sqlite3 or psycopg"
            out.append(TargetState(name, matcher.where, "failed", reason))
        else:
            out.append(TargetState(name, matcher.where, "pending"))
    return out
