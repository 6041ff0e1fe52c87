"""Snapshot files: JSON written by ``hypoprobe.snapshot().to_json()`` or ``hypoprobe snapshot``."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import SnapshotError
from ..render._common import printable
from ..snapshot import Snapshot
from ._errors import EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_USAGE, SourceError

__all__ = ["DEFAULT_MAX_SNAPSHOT_BYTES", "LIMIT_ENV", "load_snapshot_file", "load_snapshot_files"]

#: The largest snapshot file read by default. 2,000 latency histograms (the default
#: ``max_series``) with all 515 buckets filled by 9-digit counts write 18.5 MB; parsing JSON
#: costs up to ~25 times a file's size in memory, so this limit is what keeps a wrong or
#: hostile file from exhausting the machine (a 64 MiB file: at most ~1.7 GB).
DEFAULT_MAX_SNAPSHOT_BYTES = 64 * 2**20
#: The environment variable that raises (or lowers) the limit, in bytes.
LIMIT_ENV = "HYPOPROBE_MAX_SNAPSHOT_BYTES"


def max_snapshot_bytes() -> int:
    """The size limit of a snapshot file: ``$HYPOPROBE_MAX_SNAPSHOT_BYTES`` or 64 MiB."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_SNAPSHOT_BYTES
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise SourceError(f"{LIMIT_ENV}={text!r} is not a positive number of bytes", EXIT_USAGE)
    return limit


def load_snapshot_file(path: str | Path) -> Snapshot:
    """Read one snapshot file; raise :class:`SourceError` if it is missing, empty or corrupt.

    Example::

        snap = load_snapshot_file("before.json")
        print(snap.source, len(snap.moments))
    """
    p = Path(path)
    limit = max_snapshot_bytes()
    try:
        with p.open("rb") as f:
            # Read one byte more than the limit rather than trust stat(): /dev/stdin, FIFOs.
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise SourceError(
            f"snapshot file {p} does not exist; check the path", EXIT_UNREACHABLE
        ) from None
    except OSError as exc:
        raise SourceError(
            f"cannot read snapshot file {p}: {exc.strerror or exc}; check the path and its "
            "permissions",
            EXIT_UNREACHABLE,
        ) from None
    except ValueError as exc:  # a path no file can have ("embedded null byte")
        raise SourceError(f"{str(path)!r} is not a file path ({exc})", EXIT_USAGE) from None
    if len(raw) > limit:
        raise SourceError(
            f"{p} is larger than {limit:,} bytes, the most a snapshot file may be (parsing "
            f"takes up to ~25 times its size in memory); raise {LIMIT_ENV} if it really is "
            "a snapshot",
            EXIT_NO_DATA,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{p} is not a snapshot: it is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "write a fresh one with `hypoprobe snapshot --metrics-url URL -o FILE`",
            EXIT_NO_DATA,
        ) from None
    del raw
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
        warning = (
            f"{name} and {other_name} are snapshots of the same "
            f"process ({', '.join(sorted(mine))}); using the newer, {newer[0]}, and "
            f"ignoring {older_name} (summing both would count its requests twice)"
        )
        # Paths and origins are quoted as given: their control characters are shown.
        print(f"hypoprobe: warning: {printable(warning)}", file=sys.stderr)
        kept[kept.index(clash)] = newer
    return [s for _, s in kept]
