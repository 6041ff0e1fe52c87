"""Verdicts and the before/after comparison, through hypoprobe's analysis and renderers.

The terminal gets the table; Markdown, JSON and HTML go to files in the output folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TextIO

from .. import analysis, render
from ..model import Snapshot

__all__ = ["compare", "report"]

_FILES = (("markdown", "md"), ("json", "json"), ("html", "html"))


def report(
    window: Snapshot,
    ids: Sequence[str],
    out_dir: Path,
    stream: TextIO,
    timeline: Sequence[analysis.SharePoint] = (),
) -> tuple[list[analysis.Verdict], list[Path]]:
    """Print the verdicts on ``ids`` as a table; write them as Markdown, JSON and HTML.

    ``timeline``: the share per interval of the load phase, plotted in the HTML page.
    """
    rep = replace(analysis.report(window, hypotheses=list(ids)), timeline=tuple(timeline))
    written = _shown_and_written(partial(render.render_report, rep), "report", out_dir, stream)
    return list(rep.verdicts), written


def compare(
    before: Snapshot, after: Snapshot, ids: Sequence[str], out_dir: Path, stream: TextIO
) -> tuple[list[analysis.Comparison], list[Path]]:
    """Print the before/after comparison of ``ids``; write it as Markdown, JSON and HTML."""
    rep = analysis.compare(before, after, hypotheses=list(ids))
    written = _shown_and_written(partial(render.render_comparison, rep), "compare", out_dir, stream)
    return list(rep.comparisons), written


def _shown_and_written(
    rendered: Callable[[str], str], name: str, out_dir: Path, stream: TextIO
) -> list[Path]:
    """The table on ``stream``; ``name.md``, ``.json`` and ``.html`` in ``out_dir``."""
    stream.write(rendered("table"))
    written = []
    for fmt, ext in _FILES:
        path = out_dir / f"{name}.{ext}"
        path.write_text(rendered(fmt), encoding="utf-8")
        written.append(path)
    return written
