"""The JSON formats: ``hypoprobe.report/1`` and ``hypoprobe.comparison/1``.

Both are described by JSON Schema files next to this module (``report.schema.json``,
``comparison.schema.json``) and in ``docs/cli.md``. Keys are stable within a schema
version; new keys may be added, none removed or renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from .. import analysis
from ..analysis import ComparisonReport, Report
from ._common import UNSAFE_FOR_TERMINALS

__all__ = ["COMPARISON_SCHEMA", "REPORT_SCHEMA", "comparison", "report"]

REPORT_SCHEMA = "hypoprobe.report/1"
COMPARISON_SCHEMA = "hypoprobe.comparison/1"


_TIMES = frozenset({"created_at", "at", "start", "end"})


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity; a value that cannot be computed is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        # 12 significant digits: 0.8, not 0.7999999999999999 (float arithmetic's last
        # bits), and far more than any measured figure has.
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        # Times are Unix seconds: kept to the last digit.
        return {k: v if k in _TIMES else _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _dump(doc: dict[str, Any]) -> str:
    text = json.dumps(_finite(doc), indent=2, ensure_ascii=False, allow_nan=False)
    # json escapes C0 controls, not DEL, C1 or bidi overrides: escape those too (inside
    # strings, the only place they can be), so the document is safe to print on a terminal.
    return UNSAFE_FOR_TERMINALS.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def report(rep: Report) -> str:
    """The verdicts as a ``hypoprobe.report/1`` JSON document."""
    doc: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "source": rep.source,
        "created_at": rep.created_at,
        "method": {
            "share": "sum of probe seconds / sum of endpoint seconds over requests",
            "interval": "ratio estimator, delta-method (linearised) standard error",
            "confidence": 0.95,
            "min_requests": analysis.MIN_REQUESTS,
        },
        "verdicts": [v.to_dict() for v in rep.verdicts],
        "notes": list(rep.notes),
    }
    if rep.timeline:  # report --over-time
        doc["timeline"] = [dataclasses.asdict(p) for p in rep.timeline]
    return _dump(doc)


def comparison(rep: ComparisonReport) -> str:
    """Before/after as a ``hypoprobe.comparison/1`` JSON document."""
    return _dump(
        {
            "schema": COMPARISON_SCHEMA,
            "before_source": rep.before_source,
            "after_source": rep.after_source,
            "method": {
                "mean_test": "Welch's t-test, normal approximation, two-sided",
                "alpha": analysis.ALPHA,
                "min_requests": analysis.MIN_REQUESTS,
            },
            "comparisons": [c.to_dict() for c in rep.comparisons],
        }
    )
