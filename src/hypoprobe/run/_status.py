"""Per-process reports from the bootstrap to the launcher: small JSON files in the run directory.

Each Python process of the command writes ``<pid>.json`` (atomically: a temporary name,
then a rename) when it has loaded the configuration and again when its application has
started; the launcher reads them to print its summary. Files, not pipes, because the
processes are forked and exec'd by servers the launcher does not control.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._states import TargetState

__all__ = ["ENV_VAR", "Report", "read_all", "write"]

#: The launcher's report directory, set in the command's environment.
ENV_VAR = "HYPOPROBE_RUN_DIR"


@dataclass(frozen=True)
class Report:
    pid: int
    started: bool
    hypotheses: int
    targets: list[TargetState] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            pid=int(data["pid"]),
            started=bool(data["started"]),
            hypotheses=int(data["hypotheses"]),
            targets=[TargetState(**t) for t in data.get("targets", [])],
            error=data.get("error"),
        )


def write(directory: str, report: Report) -> None:
    """Write this process' report; never raises (the launcher then knows less, that is all)."""
    try:
        final = os.path.join(directory, f"{report.pid}.json")
        tmp = os.path.join(directory, f".{report.pid}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(report.to_json())
        os.replace(tmp, final)
    except Exception:
        pass


def read_all(directory: Path) -> list[Report]:
    """Every complete report in ``directory``, oldest first."""
    out: list[tuple[float, Report]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        try:
            data = json.loads(Path(entry.path).read_text(encoding="utf-8"))
            out.append((entry.stat().st_mtime, Report.from_dict(data)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return [r for _, r in sorted(out, key=lambda pair: pair[0])]
