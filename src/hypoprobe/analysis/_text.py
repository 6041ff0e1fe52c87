"""How numbers read in verdict sentences and tables: one place, so every format agrees."""

from __future__ import annotations

import math

__all__ = ["DASH", "MISSING", "count", "pct", "pct_claim", "pct_range", "seconds"]

#: Between the ends of a range, as in 6.5\u20137.8% (an en dash).
DASH = "\u2013"
#: A value that cannot be computed (no data).
MISSING = "-"


def pct(x: float | None) -> str:
    """A share as a percentage: ``0.071 -> '7.1%'``, ``0.003 -> '0.3%'``, ``0.0004 -> '0.04%'``."""
    if x is None:
        return MISSING
    v = x * 100
    if v == 0:
        return "0%"
    if abs(float(f"{v:.2g}")) >= 1:  # 0.99999 rounds to 1.0%, not "1%"
        return f"{v:.1f}%"
    return f"{v:.2g}%"


def pct_claim(x: float) -> str:
    """A claimed share as people state it: ``0.3 -> '30%'``, ``0.125 -> '12.5%'``."""
    return f"{round(x * 100, 2):g}%"


def pct_range(low: float | None, high: float | None) -> str:
    """An interval of shares: ``'6.5%'`` to ``'7.8%'`` joined by an en dash."""
    if low is None or high is None:
        return MISSING
    # Both ends with the same decimals: 0.70 to 0.79%, never 0.7 to 0.79%.
    places = max(_decimals(low), _decimals(high))
    return f"{low * 100:.{places}f}{DASH}{high * 100:.{places}f}%"


def _decimals(x: float) -> int:
    """The decimals :func:`pct` shows for ``x``: 1 from 1% up, two significant digits below."""
    v = abs(x * 100)
    if v >= 1 or v == 0:
        return 1
    return max(1, 1 - math.floor(math.log10(v)))


def seconds(x: float | None) -> str:
    """A duration with a readable unit and three significant digits: ``'1.2 s'``, ``'35 ms'``."""
    if x is None:
        return MISSING
    if x == 0:
        return "0 s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def count(n: float | None) -> str:
    """A request count with thousands separators: ``'12,400'``."""
    if n is None or not math.isfinite(n):
        return MISSING
    return f"{round(n):,}"
