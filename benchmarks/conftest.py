"""Overhead budgets, checked as ratios of *added* cost within one benchmark run.

Each case times LOOP calls of the same no-op function; "added cost" is the case's median
minus the bare call's median, per call. Absolute times vary with the machine; ratios
between cases measured side by side in one run are what the budgets constrain.
Run: ``make bench`` (or ``pytest benchmarks --benchmark-only``).
"""

from __future__ import annotations

from typing import Any

import pytest

from .budgets import BUDGETS, LOOP


def _added_costs(session: pytest.Session) -> dict[str, float]:
    bsession: Any = getattr(session.config, "_benchmarksession", None)
    if bsession is None or bsession.disabled:
        return {}
    medians = {}
    for bench in bsession.benchmarks:
        if bench.stats is None or bench.group != "overhead":
            continue
        medians[bench.name.split("[")[0].removeprefix("test_")] = bench.stats.median / LOOP
    bare = medians.get("bare_call")
    if bare is None:
        return {}
    return {name: (value - bare) * 1e9 for name, value in medians.items()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    added = _added_costs(session)
    if not added:
        return
    lines = ["", "Added cost per call (ns, median minus bare call, same run):"]
    lines += [f"  {name:32s} {ns:10.0f}" for name, ns in sorted(added.items(), key=lambda x: x[1])]
    lines.append("Budgets (ratio of added costs):")
    broken = False
    for case, ref, limit in BUDGETS:
        if case not in added or ref not in added or added[ref] <= 0:
            continue
        ratio = added[case] / added[ref]
        ok = ratio <= limit
        broken |= not ok
        lines.append(
            f"  {'ok    ' if ok else 'BROKEN'} {case} / {ref} = {ratio:.3f} (budget <= {limit:.3f})"
        )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n".join(lines))
    if broken and session.exitstatus == 0:
        session.exitstatus = 1
