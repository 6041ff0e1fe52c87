"""Target states for the summary line: the one adapter between ``hypoprobe run`` and ``_load``.

ADAPTER: target health states (pending / attached / failed / detached, and settling the
still-pending targets once the application has started) belong to the loader. Until it
exposes them, :func:`target_states` derives them from what ``_load`` keeps today, and
:func:`settle` only marks this process as started. When the loader has its own states,
point these two functions at that API and nothing else in this package changes.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Literal

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
    """The application has started: targets still pending are reported failed from now on."""
    global _settled
    with _lock:
        _settled = True


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
        if patch.installed is not None:
            out.append(TargetState(patch.target, patch.where, "attached"))
            continue
        module = sys.modules.get(patch.module)
        if module is None:
            if _settled:
                reason = f"module {patch.module!r} was not imported when the application started"
                out.append(TargetState(patch.target, patch.where, "failed", reason))
            else:
                out.append(TargetState(patch.target, patch.where, "pending"))
            continue
        try:
            patch.resolve(module)
            reason = "not probed (see the log)"
        except Exception as exc:
            reason = str(exc)
        out.append(TargetState(patch.target, patch.where, "failed", reason))
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
