"""Renderers: verdicts and comparisons as a terminal table, Markdown, JSON or HTML.

Each format is a module with ``report(Report) -> str`` and
``comparison(ComparisonReport) -> str``; :data:`FORMATS` maps a format name to it, so a new
format is one module and one entry.

Example::

    from hypoprobe import analysis, render

    rep = analysis.report(hypoprobe.snapshot())
    print(render.render_report(rep, "markdown"))
"""

from __future__ import annotations

from types import ModuleType

from ..analysis import ComparisonReport, Report
from . import _html, _json, _markdown, _table
from ._common import printable
from ._json import COMPARISON_SCHEMA, REPORT_SCHEMA

__all__ = [
    "COMPARISON_SCHEMA",
    "FORMATS",
    "REPORT_SCHEMA",
    "render_comparison",
    "render_report",
]

#: Format name -> renderer module; ``table`` is the CLI's default.
FORMATS: dict[str, ModuleType] = {
    "table": _table,
    "markdown": _markdown,
    "json": _json,
    "html": _html,
}


def _module(fmt: str) -> ModuleType:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


def _safe(text: str, fmt: str) -> str:
    # HTML escaping leaves terminal controls (ESC, BEL, C1) in place, and the page is often
    # written to a terminal first; the other formats escape them themselves.
    return printable(text) if fmt == "html" else text


def render_report(rep: Report, fmt: str = "table") -> str:
    """Render verdicts in ``fmt`` (``table``, ``markdown``, ``json`` or ``html``).

    Example::

        text = render_report(analysis.report(snapshot), "json")
    """
    text: str = _module(fmt).report(rep)
    return _safe(text, fmt)


def render_comparison(rep: ComparisonReport, fmt: str = "table") -> str:
    """Render a before/after comparison in ``fmt``.

    Example::

        text = render_comparison(analysis.compare(before, after), "markdown")
    """
    text: str = _module(fmt).comparison(rep)
    return _safe(text, fmt)
