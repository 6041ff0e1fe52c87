"""Verdicts and the before/after comparison, through hypoprobe's analysis and renderers.

The terminal gets the table; Markdown, JSON and HTML go to files in the output folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .. import analysis, render
from ..snapshot import Snapshot

__all__ = ["Outcome", "compare", "report"]

_FILES = (("markdown", "md"), ("json", "json"), ("html", "html"))


@dataclass(frozen=True)
class Outcome:
    """One verdict, as the demo and its tests need it."""

    hypothesis: str
    endpoint: str
    verdict: str  # CONFIRMED, DISPROVED or INCONCLUSIVE
    share: float | None
    requests: int
    requests_needed: int | None = None
    saving_seconds_per_request: float | None = None
    endpoint_mean: float | None = None
    meaning: str = ""


def report(
    window: Snapshot, ids: Sequence[str], out_dir: Path, stream: TextIO
) -> tuple[list[Outcome], list[Path]]:
    """Print the verdicts on ``ids`` as a table; write them as Markdown, JSON and HTML."""
    rep = analysis.report(window, hypotheses=list(ids))
    stream.write(render.render_report(rep, "table"))
    written = []
    for fmt, ext in _FILES:
        path = out_dir / f"report.{ext}"
        path.write_text(render.render_report(rep, fmt), encoding="utf-8")
        written.append(path)
    outcomes = [
        Outcome(
            v.hypothesis,
            v.endpoint,
            v.verdict,
            v.aggregate_share,
            v.requests,
            v.requests_needed,
            v.saving_seconds_per_request,
            v.endpoint_mean,
            v.meaning,
        )
        for v in rep.verdicts
    ]
    return outcomes, written


def compare(
    before: Snapshot, after: Snapshot, ids: Sequence[str], out_dir: Path, stream: TextIO
) -> tuple[dict[str, tuple[float | None, float | None]], list[Path]]:
    """Print the before/after comparison of ``ids``; write it as Markdown, JSON and HTML.

    Returns each hypothesis' endpoint mean latency before and after, and the files written.
    """
    rep = analysis.compare(before, after, hypotheses=list(ids))
    stream.write(render.render_comparison(rep, "table"))
    written = []
    for fmt, ext in _FILES:
        path = out_dir / f"compare.{ext}"
        path.write_text(render.render_comparison(rep, fmt), encoding="utf-8")
        written.append(path)
    means = {c.hypothesis: (c.endpoint_mean_before, c.endpoint_mean_after) for c in rep.comparisons}
    return means, written
