"""The budgets' estimator (interleave.ratio) on synthetic rounds whose true ratio is known.

Run with every benchmark (``make test`` runs benchmarks/ untimed): these tests time
nothing, they check the arithmetic that judges the timed budgets.
"""

from __future__ import annotations

import random
import statistics

import pytest

from .interleave import ratio


def _rounds(
    case: float, reference: float, noise: float, n: int = 1000, seed: int = 7
) -> dict[str, list[float]]:
    """Rounds whose cases cost ``case`` and ``reference`` more than bare, with
    Gaussian noise of ``noise`` on every timing and, as on a shared machine, a slow
    drift and occasional positive spikes."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {"bare": [], "case": [], "ref": []}
    for i in range(n):
        base = 100.0 + 10.0 * (i / n)  # the machine drifts across the run

        for name, added in (("bare", 0.0), ("case", case), ("ref", reference)):
            spike = rng.expovariate(1 / (2 * noise)) if rng.random() < 0.2 else 0.0
            times[name].append(base + added + rng.gauss(0.0, noise) + spike)
    return times


def test_the_ratio_is_not_biased_by_noise_as_large_as_the_reference() -> None:
    # Django-like rounds: the reference adds 4.5, noise of that size on every timing.
    times = _rounds(case=6.0, reference=4.5, noise=4.0)
    found = ratio(times, "case", "ref", "bare", per=1)
    assert found.median == pytest.approx(6.0 / 4.5, abs=0.1)
    assert found.low <= found.median <= found.high
    assert found.rounds == 1000  # no round is dropped
    # What the median of per-round ratios would have said on the same rounds: far too
    # low, which is why the budgets are not judged on it.
    naive = statistics.median(
        (c - b) / (r - b)
        for c, r, b in zip(times["case"], times["ref"], times["bare"], strict=True)
        if r - b > 0
    )
    assert naive < 6.0 / 4.5 - 0.1


def test_without_noise_the_ratio_is_exact_and_its_interval_closed() -> None:
    times = {"bare": [10.0] * 50, "case": [13.0] * 50, "ref": [12.0] * 50}
    found = ratio(times, "case", "ref", "bare", per=2)
    assert found.median == pytest.approx(1.5)
    assert found.low == pytest.approx(1.5)
    assert found.high == pytest.approx(1.5)
    assert found.case_added == pytest.approx(1.5)
    assert found.reference_added == pytest.approx(1.0)


def test_the_interval_narrows_with_more_rounds() -> None:
    few = ratio(_rounds(6.0, 4.5, 4.0, n=100), "case", "ref", "bare", per=1)
    many = ratio(_rounds(6.0, 4.5, 4.0, n=1600), "case", "ref", "bare", per=1)
    assert many.high - many.low < (few.high - few.low) / 2


def test_a_reference_no_dearer_than_bare_is_an_error() -> None:
    times = {"bare": [10.0, 11.0, 10.5], "case": [12.0, 13.0, 12.5], "ref": [10.0, 11.0, 10.5]}
    with pytest.raises(RuntimeError, match="not measurably dearer"):
        ratio(times, "case", "ref", "bare", per=1)


def test_a_known_excess_fails_only_above_its_ceiling() -> None:
    from .bench_budgets import _verdict
    from .budgets import Budget
    from .interleave import Ratio

    known = Budget("c", "r", 1.25, "known", known_over=(1.6, "why"))
    plain = Budget("c", "r", 1.25, "plain")

    def at(value: float) -> Ratio:
        return Ratio(value, value, value, 10, 1.0, 1.0)

    assert _verdict(known, at(1.2)).strip() == "ok"
    assert _verdict(known, at(1.4)).strip() == "OVER"
    assert _verdict(known, at(1.7)).strip() == "BROKEN"
    assert _verdict(plain, at(1.4)).strip() == "BROKEN"
