"""The survey's findings as a table, Markdown, JSON (``hypoprobe.survey/1``) or HTML, and
the ``[[hypothesis]]`` TOML proposed from its top candidates.

Example::

    from hypoprobe.analysis._survey import survey_of
    from hypoprobe.render._survey import render_survey

    print(render_survey(survey_of(hypoprobe.snapshot()), "markdown"))
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from ..analysis._survey import Candidate, Survey

__all__ = ["SURVEY_SCHEMA", "SURVEY_SCHEMA_ID", "propose", "render_survey"]

SURVEY_SCHEMA_ID = "hypoprobe.survey/1"
#: The JSON Schema of the ``json`` format.
SURVEY_SCHEMA = Path(__file__).with_name("survey.schema.json")
FORMATS = ("table", "markdown", "json", "html")


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.1%}"


def _interval(c: Candidate) -> str:
    if c.ci_low is None or c.ci_high is None:
        return "?"
    return f"{c.ci_low:.1%}-{c.ci_high:.1%}"


def _calls(c: Candidate) -> str:
    text = f"{c.calls_per_request_mean:.1f}"
    return f"{text} N+1" if c.n_plus_one else text


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(s: Survey) -> str:
    lines = [f"Survey of {s.source}: candidates by total time per endpoint", ""]
    for ep in s.endpoints:
        lines.append(f"{ep.endpoint}  ({ep.requests} surveyed requests)")
        lines.append(
            f"  {'#':>2}  {'kind':<8} {'share':>7} {'95% interval':>14} {'calls/req':>11} "
            f"{'slow share':>10} {'customers':>10}  probe"
        )
        for i, c in enumerate(ep.candidates, 1):
            lines.append(
                f"  {i:>2}  {c.kind:<8} {_pct(c.share):>7} {_interval(c):>14} "
                f"{_calls(c):>11} {_pct(c.slow_share):>10} {_who(c):>10}  {_short(c.probe, 90)}"
            )
        lines.append("")
    lines.append(
        "share: the candidate's time / the endpoint's time over surveyed requests (95% "
        "interval); N+1: called many times per request, a varying number of times; "
        "customers: affected (their slow requests ran it) / seen, where requests name one."
    )
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(s: Survey) -> str:
    out = [f"## Survey: where the time goes\n\nSource: {s.source}\n"]
    for ep in s.endpoints:
        out.append(f"### `{_md_cell(ep.endpoint)}` ({ep.requests} surveyed requests)\n")
        out.append(
            "| # | kind | probe | share | 95% interval | calls/request | slow share | customers |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for i, c in enumerate(ep.candidates, 1):
            out.append(
                f"| {i} | {c.kind} | `{_md_cell(c.probe)}` | {_pct(c.share)} | "
                f"{_interval(c)} | {_calls(c)} | {_pct(c.slow_share)} | {_who(c)} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


def _customers(c: Candidate) -> dict[str, Any] | None:
    i = c.customers
    if i is None:
        return None
    return {
        "seen": i.seen,
        "affected": i.affected,
        "seen_value": i.seen_value,
        "affected_value": i.affected_value,
    }


def _who(c: Candidate) -> str:
    """Customers affected (slow requests that ran it) of those seen, or "-"."""
    i = c.customers
    return "-" if i is None else f"{i.affected}/{i.seen}"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def as_dict(s: Survey) -> dict[str, Any]:
    """The ``hypoprobe.survey/1`` document."""
    return {
        "schema": SURVEY_SCHEMA_ID,
        "source": s.source,
        "created_at": s.created_at,
        "endpoints": [
            {
                "endpoint": ep.endpoint,
                "requests": ep.requests,
                "endpoint_seconds": ep.endpoint_seconds,
                "candidates": [
                    {
                        "probe": c.probe,
                        "kind": c.kind,
                        "share": _num(c.share) or 0.0,
                        "ci_low": _num(c.ci_low) if c.ci_low is not None else 0.0,
                        "ci_high": _num(c.ci_high) if c.ci_high is not None else 1.0,
                        "interval_known": c.ci_low is not None,
                        "total_seconds": c.total_seconds,
                        "requests": c.requests,
                        "requests_with_probe": c.requests_with_probe,
                        "calls_per_request_mean": c.calls_per_request_mean,
                        "calls_per_calling_request": c.calls_per_calling_request,
                        "n_plus_one": c.n_plus_one,
                        "slow_share": _num(c.slow_share),
                        "slow_requests": c.slow_requests,
                        "overflow": c.overflow,
                        "customers": _customers(c),
                    }
                    for c in ep.candidates
                ],
            }
            for ep in s.endpoints
        ],
    }


def _html(s: Survey) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hypoprobe survey</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "code{font-size:90%}.bar{background:#4a7;height:10px;display:inline-block}</style>",
        f"</head><body><h1>Survey: where the time goes</h1><p>Source: {e(s.source)}</p>",
    ]
    for ep in s.endpoints:
        parts.append(f"<h2>{e(ep.endpoint)} <small>({ep.requests} surveyed requests)</small></h2>")
        parts.append(
            "<table><tr><th>#</th><th>kind</th><th>probe</th><th>share</th>"
            "<th>95% interval</th><th>calls/request</th><th>slow share</th>"
            "<th>customers</th></tr>"
        )
        for i, c in enumerate(ep.candidates, 1):
            width = round(200 * (c.share or 0.0))
            parts.append(
                f"<tr><td>{i}</td><td>{e(c.kind)}</td><td><code>{e(c.probe)}</code></td>"
                f"<td><span class='bar' style='width:{width}px'></span> {_pct(c.share)}</td>"
                f"<td>{_interval(c)}</td><td>{e(_calls(c))}</td><td>{_pct(c.slow_share)}</td>"
                f"<td>{_who(c)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def render_survey(s: Survey, fmt: str = "table") -> str:
    """The survey in ``fmt``: ``table``, ``markdown``, ``json`` or ``html``."""
    if fmt == "table":
        return _table(s)
    if fmt == "markdown":
        return _markdown(s)
    if fmt == "json":
        return json.dumps(as_dict(s), indent=2) + "\n"
    if fmt == "html":
        return _html(s)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- propose

#: What a placeholder of a fingerprint stands for in the statement itself: a quoted
#: string, a number, a placeholder of any paramstyle, a (possibly negative) literal.
_VALUE = r"(?:'(?:[^']|'')*'|\$\w*\$.*?\$\w*\$|[-\w.$%():?]+?)"
_WORD = re.compile(r"\s+|IN \(\.\.\.\)|\?|\w+|[^\w\s]", re.IGNORECASE)


def statement_pattern(fp: str) -> str:
    """A regular expression matching the statements whose fingerprint is ``fp``.

    Example::

        assert re.search(statement_pattern("SELECT * FROM t WHERE id = ?"),
                         "select *  from t where id = 42", re.IGNORECASE)
    """
    whole = "… #" not in fp
    if not whole:  # cut by the fingerprint's length bound: match the kept prefix
        fp = fp.rpartition("… #")[0]
    pieces = []
    for m in _WORD.finditer(fp):
        tok = m.group(0)
        if tok.isspace():
            continue
        if tok == "?":
            pieces.append(_VALUE)
        elif tok.upper() == "IN (...)":
            pieces.append(r"IN\s*\(.*?\)")
        else:
            pieces.append(re.escape(tok))
    return r"^\s*" + r"\s*".join(pieces) + (r"\s*;?\s*$" if whole else "")


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def propose(
    s: Survey,
    top: int = 3,
    min_share: float = 0.05,
    expires_days: int = 30,
    today: _dt.date | None = None,
) -> str:
    """``[[hypothesis]]`` TOML for the top candidates of each endpoint (share >= min_share).

    Each claims the candidate takes at least its measured share, rounded down to 5%
    (at least 5%); owner and ticket are left to fill in, the expiry is ``expires_days``
    from today.
    """
    day = (today or _dt.date.today()) + _dt.timedelta(days=expires_days)
    out = [
        "# Hypotheses proposed by `hypoprobe survey --propose` from measured shares.",
        "# Fill in owner and ticket, rename the ids to your tickets, then `hypoprobe run",
        "# --config` this file (or hypoprobe.load()) to judge them.",
        "",
    ]
    n = 0
    # A function target may stand in one [[hypothesis]] only (load() refuses a second):
    # the first endpoint to propose it, by the survey's order, keeps it.
    targets: dict[str, str] = {}
    for ep in s.endpoints:
        chosen = [
            c
            for c in ep.candidates
            if not c.overflow and c.share is not None and c.share >= min_share
        ][:top]
        for c in chosen:
            if c.kind != "sql":
                if c.probe in targets:
                    out += [f"# {c.probe} on {ep.endpoint}: proposed for {targets[c.probe]}", ""]
                    continue
                targets[c.probe] = ep.endpoint
            n += 1
            share = c.share or 0.0
            claim_share = max(0.05, math.floor(share * 20) / 20)
            measured = f"{share:.0%}" + (
                f" (95% interval {c.ci_low:.0%}-{c.ci_high:.0%})"
                if c.ci_low is not None and c.ci_high is not None
                else ""
            )
            what = "the statement" if c.kind == "sql" else "the function"
            calls = f", {c.calls_per_request_mean:.1f} calls per request" + (
                " (N+1)" if c.n_plus_one else ""
            )
            claim = f"{what} {c.probe} takes at least {claim_share:.0%} of {ep.endpoint}"
            out += [
                "[[hypothesis]]",
                f'id = "PROPOSED-{n}"',
                f"claim = {_toml_str(claim)}",
                f"# survey: {measured} over {c.requests} requests{calls}",
                f"endpoint = {_toml_str(ep.endpoint)}",
                f"min_share = {claim_share:.2f}",
            ]
            if c.kind == "sql":
                out.append(f"sql = [{_toml_str(statement_pattern(c.probe))}]")
            else:
                out.append(f"probes = [{_toml_str(c.probe)}]")
            out += ['owner = ""', 'ticket = ""', f"expires = {day.isoformat()}", ""]
    if n == 0:
        out.append(f"# No candidate reached a share of {min_share:.0%}: nothing to propose.")
    return "\n".join(out) + "\n"
