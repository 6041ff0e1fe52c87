"""Snapshot files: JSON written by ``hypoprobe.snapshot().to_json()`` or ``hypoprobe snapshot``."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import SnapshotError
from ..snapshot import Snapshot
from ._errors import EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_USAGE, SourceError

__all__ = ["load_snapshot_file", "load_snapshot_files"]


def load_snapshot_file(path: str | Path) -> Snapshot:
    """Read one snapshot file; raise :class:`SourceError` if it is missing, empty or corrupt.

    Example::

        snap = load_snapshot_file("before.json")
        print(snap.source, len(snap.moments))
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(
            f"snapshot file {p} does not exist; check the path", EXIT_UNREACHABLE
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"cannot read snapshot file {p}: {exc}; check the path and its permissions",
            EXIT_UNREACHABLE,
        ) from None
    try:
        return Snapshot.from_json(text)
    except SnapshotError as exc:
        raise SourceError(
            f"{p} is not a usable snapshot ({exc}); write a fresh one with "
            "`hypoprobe snapshot --metrics-url URL -o FILE` or hypoprobe.snapshot().to_json()",
            EXIT_NO_DATA,
        ) from exc


def load_snapshot_files(paths: Sequence[str | Path]) -> Snapshot:
    """Read snapshot files (several processes or hosts) and merge them into one snapshot.

    Example::

        fleet = load_snapshot_files(["web-1.json", "web-2.json"])
        print(fleet.moments_for("PERF-123", "GET /campaigns").requests)
    """
    if not paths:
        raise SourceError("no snapshot file given: pass one or more FILE.json", EXIT_USAGE)
    snaps = _distinct([(str(p), load_snapshot_file(p)) for p in paths])
    if len(snaps) == 1:
        return snaps[0]
    return Snapshot.merge(snaps)


def _overlap(a: Snapshot, b: Snapshot) -> bool:
    """Whether the two snapshots' windows share time (None: since the process started)."""
    a_start = -math.inf if a.since is None else a.since
    b_start = -math.inf if b.since is None else b.since
    return a_start < b.created_at and b_start < a.created_at


def _distinct(named: list[tuple[str, Snapshot]]) -> list[Snapshot]:
    """Drop snapshots whose counters another file holds too: summing them double-counts.

    A snapshot names the processes it holds (``origins``: host, pid and start time) and,
    for a window (``later.minus(earlier)``), when the window started (``since``). Windows
    of one process that do not overlap add up. Two snapshots of the same processes since
    their start are the same counters at two times: the newer holds the older, so the
    newer is kept, with a warning. Any other overlap cannot be summed: an error.
    """
    kept: list[tuple[str, Snapshot]] = []
    for name, snap in named:
        mine = set(snap.origins)
        clash = next(
            ((n, s) for n, s in kept if mine and mine & set(s.origins) and _overlap(snap, s)),
            None,
        )
        if clash is None:
            kept.append((name, snap))
            continue
        other_name, other = clash
        if mine != set(other.origins) or snap.since is not None or other.since is not None:
            raise SourceError(
                f"{name} and {other_name} hold counters of the same processes "
                f"({', '.join(sorted(mine & set(other.origins)))}) over overlapping times: "
                "summing them would count those requests twice; pass files of distinct "
                "processes or windows that do not overlap",
                EXIT_USAGE,
            )
        newer = (name, snap) if snap.created_at >= other.created_at else clash
        older_name = other_name if newer[0] == name else name
        print(
            f"hypoprobe: warning: {name} and {other_name} are snapshots of the same "
            f"process ({', '.join(sorted(mine))}); using the newer, {newer[0]}, and "
            f"ignoring {older_name} (summing both would count its requests twice)",
            file=sys.stderr,
        )
        kept[kept.index(clash)] = newer
    return [s for _, s in kept]
