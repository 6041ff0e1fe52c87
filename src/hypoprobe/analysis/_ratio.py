"""The ratio estimator: aggregate share = Σp / Σe, with a 95% interval by linearisation.

For n requests with probe time ``p_i`` and endpoint time ``e_i`` the aggregate share is the
ratio of sums ``R = Σp / Σe``. Its standard error comes from the first-order Taylor
(delta-method) linearisation of the ratio: with residuals ``d_i = p_i - R e_i`` (which sum
to zero by construction),

    Var(R) ≈ Σ d_i² / (n (n - 1) ē²),   Σ d_i² = Σp² - 2R Σpe + R² Σe²,

so only the five exported sums and n are needed — no per-request data. The interval is
``R ± 1.96 · se`` clipped to [0, 1]. The method is documented in ``docs/verdicts.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..snapshot import Moments

__all__ = ["MIN_REQUESTS", "Z95", "RatioEstimate", "estimate", "requests_needed"]

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054

#: Below this many requests a verdict is always INCONCLUSIVE: the linearised interval is
#: a large-sample approximation, and with fewer requests its coverage is not trustworthy.
MIN_REQUESTS = 30


@dataclass(frozen=True)
class RatioEstimate:
    """Σp/Σe over ``n`` requests, its standard error and 95% interval (None without data)."""

    n: float
    share: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None


def estimate(mo: Moments) -> RatioEstimate:
    """The aggregate share of ``mo`` and its linearised 95% confidence interval.

    Example::

        est = estimate(snapshot.moments_for("PERF-123", "GET /campaigns"))
        print(est.share, est.ci_low, est.ci_high)
    """
    n = float(mo.requests)
    if n <= 0 or mo.endpoint_seconds <= 0:
        return RatioEstimate(max(n, 0.0), None, None, None, None)
    r = mo.probe_seconds / mo.endpoint_seconds
    if not math.isfinite(r):
        # Sums beyond float range (a corrupt or hostile source): no share can be stated.
        return RatioEstimate(n, None, None, None, None)
    if n < 2:
        return RatioEstimate(n, r, None, None, None)
    ss = (
        mo.probe_seconds_squared
        - 2 * r * mo.probe_endpoint_seconds_squared
        + r * r * mo.endpoint_seconds_squared
    )
    # Rounding in the float sums can push a tiny true value below zero.
    ss = max(0.0, ss)
    mean_e = mo.endpoint_seconds / n
    se = math.sqrt(ss / (n * (n - 1))) / mean_e
    if not math.isfinite(se):
        return RatioEstimate(n, r, None, None, None)
    return RatioEstimate(n, r, se, max(0.0, r - Z95 * se), min(1.0, r + Z95 * se))


def requests_needed(est: RatioEstimate, min_share: float) -> int | None:
    """About how many *more* requests would make the interval exclude ``min_share``.

    The interval's half-width shrinks as 1/√n, so ``n · (h / |R - min_share|)²`` requests
    in all would settle it if the share stays where it is. None when it cannot be
    estimated (no data, or the share sits exactly on ``min_share``).
    """
    n = est.n
    missing = max(0, math.ceil(MIN_REQUESTS - n))
    if est.share is None or est.se is None:
        return missing or None
    gap = abs(est.share - min_share)
    if gap == 0:
        return None
    half_width = Z95 * est.se
    ratio = half_width / gap
    total = n * ratio * ratio  # not ``** 2``, which raises OverflowError where this is inf
    if not math.isfinite(total):
        return None
    return max(missing, math.ceil(total - n), 1)
