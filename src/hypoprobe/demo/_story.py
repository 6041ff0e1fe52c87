"""The demo's four steps: one slow request, load under hypotheses, verdicts, fix and compare."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import hypoprobe

from .. import analysis
from ..model import Snapshot
from . import _report
from ._progress import ProgressBar
from ._server import serve_app

__all__ = ["DatabaseUnavailable", "DemoOptions", "DemoResult", "run_demo"]

#: Wall-time cap of each load phase: on a slow machine the demo sends fewer requests
#: rather than overrun its time budget (2 minutes by default).
PHASE_SECONDS = 45.0


class DatabaseUnavailable(Exception):
    """The demo's database could not be opened or built; the message says which and why."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``hypoprobe demo`` was asked to do (its command-line options).

    Example::

        options = DemoOptions(requests=300, seed=7, out=Path("/tmp/demo"))
    """

    requests: int = 2000
    seed: int = 1
    out: Path = Path("hypoprobe-out")
    database_url: str | None = None
    keep_running: bool = False
    #: The hypotheses file; None: the campaigns app's own ``hypotheses.toml``.
    hypotheses: Path | None = None
    phase_seconds: float = PHASE_SECONDS


@dataclass
class DemoResult:
    """What a run found: the anecdote, the verdicts, the files written.

    Example::

        result = run_demo(DemoOptions(requests=300), sys.stdout)
        assert result.verdicts()["PERF-415"] == "CONFIRMED"
    """

    anecdote_share: float | None = None
    verdicts_before: list[analysis.Verdict] = field(default_factory=list)
    requests_before: int = 0
    requests_after: int = 0
    files: list[Path] = field(default_factory=list)
    #: The hypotheses in backlog order (most value-weighted time saved per day first).
    backlog: list[str] = field(default_factory=list)

    def verdicts(self) -> dict[str, str]:
        """Hypothesis id -> verdict."""
        return {v.hypothesis: v.verdict for v in self.verdicts_before}


def _say(stream: TextIO, text: str = "") -> None:
    stream.write(text + "\n")
    stream.flush()


def _say_wrapped(stream: TextIO, text: str, first: str, rest: str) -> None:
    """One paragraph, wrapped to 96 columns: terminal tables are wide enough already."""
    _say(stream, textwrap.fill(text, 96, initial_indent=first, subsequent_indent=rest))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
        return body


def _enterprise_account(base_url: str) -> int:
    """The first enterprise account the app lists (all three have ~10^5 subscribers)."""
    accounts = json.loads(_get(base_url + "/api/accounts"))
    enterprise = [a for a in accounts if a["plan"] == "enterprise"] or accounts
    return int(enterprise[0]["id"])


def _window(start: Snapshot, requests: int, timeout: float = 5.0) -> Snapshot:
    """What was recorded since ``start``, once ``requests`` requests have been recorded.

    A WSGI request ends when the server closes the response, which may be just after the
    client has read it: wait (bounded) for the server's side to catch up.
    """
    deadline = time.monotonic() + timeout
    while True:
        window = hypoprobe.snapshot().minus(start)
        if sum(e.duration.count for e in window.endpoints) >= requests:
            return window
        if time.monotonic() >= deadline:
            return window
        time.sleep(0.01)


def _profile_once(url: str) -> Snapshot:
    """What one request recorded."""
    before = hypoprobe.snapshot()
    _get(url)
    return _window(before, 1)


@dataclass(frozen=True)
class Ticket:
    """The anecdote a hypothesis was filed with (its ``observed`` in the TOML file)."""

    hypothesis: str
    probe_seconds: float
    endpoint_seconds: float

    @property
    def share(self) -> float:
        return self.probe_seconds / self.endpoint_seconds


def filed_anecdotes(path: Path) -> dict[str, Ticket]:
    """Hypothesis id -> the observation it was filed with, read from the TOML (not loaded:
    loading registers the hypotheses, which Step 2 does in the story's order).

    Example::

        filed_anecdotes(HYPOTHESES)["PERF-412"].share  # 0.806 (29 ms of 36 ms)
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out = {}
    for h in data.get("hypothesis", []):
        seen = h.get("observed") or {}
        probe, endpoint = seen.get("probe_seconds"), seen.get("endpoint_seconds")
        if probe is not None and endpoint:
            out[h["id"]] = Ticket(h["id"], float(probe), float(endpoint))
    return out


#: How far (in share) this run's profile may be from the ticket's and still "agree".
AGREES = 0.15


def _anecdote_lines(probe: str, share: float, ticket: Ticket | None) -> list[str]:
    """What Step 1 concludes from one profiled request, beside the ticket's own anecdote.

    The words follow what was measured: one request is a noisy witness, and a run whose
    profile disagrees with the ticket says so instead of repeating the ticket's story.
    """
    said = f'"The {probe} query took {share:.0%} of this request."'
    if ticket is None:
        lines = [said]
    else:
        filed = (
            f"{ticket.hypothesis} was filed on {ticket.probe_seconds * 1000:.0f} ms of "
            f"{ticket.endpoint_seconds * 1000:.0f} ms ({ticket.share:.0%})"
        )
        if abs(share - ticket.share) <= AGREES:
            lines = [said, f"The ticket agrees: {filed}."]
        else:
            lines = [
                said,
                f"The ticket does not quite: {filed}. One request is a noisy witness; the "
                "verdicts below use the ticket's figures for the anecdote.",
            ]
    if share >= 0.5:
        lines.append("Tempting: add the index now. Disciplined: state a hypothesis, then measure.")
    else:
        lines.append(
            "Not even the anecdote repeats. Disciplined: state a hypothesis, then measure."
        )
    return lines


def _step1_anecdote(
    base_url: str, stream: TextIO, tickets: dict[str, Ticket] | None = None
) -> float | None:
    _say(stream, "Step 1 - the anecdote: one slow request, profiled once")
    account = _enterprise_account(base_url)
    path = f"/accounts/{account}/campaigns"
    _profile_once(base_url + path)  # warm caches: the ticket's profile was of a warm server

    def took(snap: Snapshot) -> float:
        return sum(e.duration.sum for e in snap.endpoints)

    # The fastest of five: a busy machine's hiccups (another process on the CPU between
    # the app and its database) only ever add time, and would make the anecdote theirs.
    one = min((_profile_once(base_url + path) for _ in range(5)), key=took)
    endpoint = next((e for e in one.endpoints if e.duration.count), None)
    if endpoint is None:
        _say(stream, "  (no endpoint scope recorded: is hypoprobe disabled?)\n")
        return None
    total = endpoint.duration.sum
    _say(stream, f"  GET {path}  (an enterprise account)  took {total * 1000:.1f} ms")
    probes = sorted(
        (p for p in one.probes if p.endpoint == endpoint.endpoint and p.duration.count),
        key=lambda p: -p.duration.sum,
    )
    for p in probes:
        share = p.duration.sum / total if total else 0.0
        _say(
            stream,
            f"    {p.probe:<26} {p.hypothesis:<9} {p.duration.count:>3} call(s) "
            f"{p.duration.sum * 1000:7.1f} ms  {share:4.0%} of the request",
        )
    if not probes or not total:
        return None
    top = probes[0]
    top_share = top.duration.sum / total
    for line in _anecdote_lines(top.probe, top_share, (tickets or {}).get(top.hypothesis)):
        _say_wrapped(stream, line, "  ", "  ")
    _say(stream)
    return top_share


#: Snapshots taken during a load phase, for the report's share over time.
MARKS = 8


def _load(
    base_url: str, options: DemoOptions, label: str, stream: TextIO
) -> tuple[Snapshot, int, list[Snapshot]]:
    """The phase's window, its request count, and cumulative snapshots along the way."""
    # Imported here so that `python -m hypoprobe.demo.loadgen` does not find the module
    # already imported by this package (runpy warns about that).
    from . import loadgen

    start = hypoprobe.snapshot()
    bar = ProgressBar(label, stream)
    marks = [start]
    every = max(1, options.requests // MARKS)
    due = [every]

    def progress(done: int, total: int) -> None:
        bar(done, total)
        if done >= due[0] and done < total:
            due[0] += every
            marks.append(hypoprobe.snapshot())

    result = loadgen.run(
        base_url,
        requests=options.requests,
        seed=options.seed,
        max_seconds=options.phase_seconds,
        progress=progress,
    )
    bar.close()
    if result.stopped_by == "time":
        _say(stream, f"  (stopped at the {options.phase_seconds:g} s cap of a load phase)")
    if result.errors:
        _say(stream, f"  {result.errors} request(s) failed")
    # + 1: the load generator's own look at the accounts.
    window = _window(start, result.requests + 1)
    marks.append(hypoprobe.snapshot())
    return window, result.requests, marks


def _backlog_step(before: Snapshot, ids: list[str], out: Path, stream: TextIO) -> list[str]:
    """Rank the hypotheses by what they cost customers; write the backlog and a story."""
    from .._cli import backlog as backlog_cli
    from .._cli import story as story_cli
    from ..analysis._backlog import backlog

    rows = backlog(before, ids)
    _say(stream, "Step 3b - the backlog: for whom, how many, how much")
    for line in backlog_cli.render(rows, "table", before.source).splitlines()[2:]:
        _say(stream, f"  {line}" if line else "")
    (out / "backlog.md").write_text(
        backlog_cli.render(rows, "markdown", before.source), encoding="utf-8"
    )
    (out / "backlog.json").write_text(
        backlog_cli.render(rows, "json", before.source), encoding="utf-8"
    )
    (out / "story-PERF-412.md").write_text(story_cli.story(before, "PERF-412"), encoding="utf-8")
    _say(stream)
    return [r.hypothesis for r in rows]


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.1f} ms"


def _close_the_story(
    hyps: Sequence[hypoprobe.Hypothesis],
    verdicts: Sequence[analysis.Verdict],
    comparisons: Sequence[analysis.Comparison],
    stream: TextIO,
) -> None:
    """What the verdicts and the fix mean for each ticket, in one line each."""
    _say(stream, "The story, closed:")
    # A date expiry means "through that day": the probes stop at the next midnight, UTC.
    expiry = {h.id: h.expires.date().isoformat() if h.expires else None for h in hyps}
    means = {c.hypothesis: (c.endpoint_mean_before, c.endpoint_mean_after) for c in comparisons}
    for o in verdicts:
        line = f"  {o.hypothesis} {o.verdict}: "
        if o.verdict == "INCONCLUSIVE":
            more = f"about {o.requests_needed:,} more" if o.requests_needed else "more"
            line += f"{o.requests} requests so far, {more} needed; keep collecting."
        else:
            line += (
                f"its code costs {_ms(o.saving_seconds_per_request)} of the endpoint's "
                f"{_ms(o.endpoint_mean)} per request."
            )
            before, after = means.get(o.hypothesis, (None, None))
            if o.verdict == "CONFIRMED" and before is not None and after is not None:
                line += f" The fix saved {_ms(before - after)} ({_ms(before)} -> {_ms(after)})."
        _say_wrapped(stream, line, "", " " * 4)
        if o.verdict != "INCONCLUSIVE":
            when = expiry.get(o.hypothesis)
            until = f"; from {when} they pass straight through anyway" if when else ""
            settled = f"Settled: write it on the ticket and remove its probes{until}."
            _say_wrapped(stream, settled, " " * 4, " " * 4)
    _say(stream)


#: The demo's hypotheses must stay valid at least this long after a run starts.
VALID_AHEAD = _dt.timedelta(days=90)
_EXPIRES_LINE = re.compile(r"^(\s*expires\s*=\s*)(\d{4}-\d{2}-\d{2})(.*)$", re.MULTILINE)


def current_hypotheses(path: Path, out: Path, today: _dt.date | None = None) -> Path:
    """The hypotheses file to load: ``path``, or a copy in ``out`` with expiries moved on.

    The shipped hypotheses carry a real expiry, as a team's would; past it their probes
    record nothing and the demo would have no story. A run close to (or after) the shipped
    dates loads a copy whose expiry is VALID_AHEAD from today.

    Example::

        path = current_hypotheses(HYPOTHESES, Path("hypoprobe-out"))
    """
    day = today or _dt.date.today()
    floor = day + VALID_AHEAD
    text = path.read_text(encoding="utf-8")
    if all(_dt.date.fromisoformat(m.group(2)) >= floor for m in _EXPIRES_LINE.finditer(text)):
        return path
    copy = out / "hypotheses.toml"
    copy.write_text(
        _EXPIRES_LINE.sub(
            lambda m: (
                m.group(1) + max(_dt.date.fromisoformat(m.group(2)), floor).isoformat() + m.group(3)
            ),
            text,
        ),
        encoding="utf-8",
    )
    return copy


def run_demo(options: DemoOptions, stream: TextIO) -> DemoResult:
    """Run the whole story, printing to ``stream``; return what it found.

    Example::

        result = run_demo(DemoOptions(requests=300, out=Path("/tmp/demo")), sys.stdout)
        print(result.verdicts())  # {'PERF-412': 'DISPROVED', 'PERF-415': 'CONFIRMED', ...}
    """
    # Imported here, not at the top: ``hypoprobe demo``'s options must parse (and the rest
    # of the CLI work) without the demo's extra installed; only running it needs Flask.
    from .app import HYPOTHESES, create_app, set_fixes

    result = DemoResult()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    hypotheses = current_hypotheses(options.hypotheses or HYPOTHESES, out)
    started = time.monotonic()
    try:
        app = create_app(options.database_url)
    except ImportError:
        raise
    except Exception as exc:  # sqlite3.Error, psycopg.Error, OSError: say which database
        url = options.database_url or "the default SQLite file"
        raise DatabaseUnavailable(f"cannot open or build the database at {url}: {exc}") from exc
    db = app.extensions["campaigns_db"]
    where = db.url if db.kind == "postgresql" else str(db.path)
    built = " (built and seeded now)" if app.config["CAMPAIGNS_BUILT"] else ""
    _say(stream, f"hypoprobe demo: the campaigns app on {db.kind} at {where}{built}")
    try:
        with serve_app(app) as server:
            _say(stream, f"serving {server.url}/  (an in-process WSGI server)\n")
            result.anecdote_share = _step1_anecdote(server.url, stream, filed_anecdotes(hypotheses))

            _say(stream, f"Step 2 - hypotheses from {hypotheses}")
            hyps = hypoprobe.load(hypotheses)
            for h in hyps:
                seen = f", anecdote {h.observed_share:.0%}" if h.observed_share else ""
                _say(stream, f"  {h.id}  needs >= {h.min_share:.0%} of {h.endpoints[0]}{seen}")
                _say_wrapped(stream, h.claim, " " * 12, " " * 12)
            ids = [h.id for h in hyps]
            _say(stream, f"  load: {options.requests} requests, seed {options.seed}, no think time")
            before, result.requests_before, marks = _load(server.url, options, "before", stream)
            (out / "before.json").write_text(before.to_json(indent=1), encoding="utf-8")
            _say(stream)

            _say(stream, "Step 3 - verdicts, in aggregate")
            verdicts, files = _report.report(
                before, ids, out, stream, timeline=analysis.timeline(marks)
            )
            result.verdicts_before = verdicts
            result.files += [out / "before.json", *files]
            _say(stream)
            result.backlog = _backlog_step(before, ids, out, stream)
            result.files += [out / n for n in ("backlog.md", "backlog.json", "story-PERF-412.md")]

            _say(stream, "Step 4 - the fix the verdicts point at: batch the N+1, same load again")
            set_fixes(app, {"batch"})
            after, result.requests_after, _ = _load(server.url, options, "after ", stream)
            (out / "after.json").write_text(after.to_json(indent=1), encoding="utf-8")
            comparisons, files = _report.compare(before, after, ids, out, stream)
            result.files += [out / "after.json", *files]
            _say(stream)
            _close_the_story(hyps, verdicts, comparisons, stream)
            _say(stream, f"Reports written to {out}/:")
            for path in result.files:
                _say(stream, f"  {path}")
            _say(stream, f"Done in {time.monotonic() - started:.0f} s.")
            if options.keep_running:
                _say(stream, f"\nStill serving {server.url}/ and {server.url}/metrics;")
                _say(stream, "press Ctrl-C to stop.")
                with contextlib.suppress(KeyboardInterrupt):
                    threading.Event().wait()
    finally:
        set_fixes(app, ())
        db.close()
    return result
