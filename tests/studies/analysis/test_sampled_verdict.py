"""The sampled-study verdict under simulated nulls and alternatives (vectorised: seconds).

Each simulated study: two optimizers, each R random searches of N configurations over a log
lr range, the metric a response surface of log lr plus seed noise. Under the null both
optimizers share the surface; the test may claim a difference in at most 5% of studies plus
Monte Carlo error (the 99% binomial bound). Under an alternative one surface is 1.5 points
lower everywhere, and the test must find it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from studies.analysis.direction import running_best
from studies.analysis.sampled_verdict import (
    ALPHA,
    compare_searches,
    permutation_pvalues,
    repeats_needed,
    smallest_p,
)

STUDIES = 2000


def _searches(rng: np.random.Generator, m: int, r: int, n: int, shift: float) -> np.ndarray:
    """[m, r, n] random-search scores: a peaked surface over log10 lr in [-4, -1]."""
    log_lr = rng.uniform(-4, -1, size=(m, r, n))
    surface = 92.0 - 6.0 * (log_lr + 2.5) ** 2 - shift
    return surface + rng.normal(0.0, 1.0, size=(m, r, n))


def _stats(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    curves = running_best(scores, True)
    return curves[..., -1], curves.mean(axis=-1)  # best after N, area


def _false_claims(rng: np.random.Generator, r: int, n: int, shift: float) -> float:
    best_a, area_a = _stats(_searches(rng, STUDIES, r, n, 0.0))
    best_b, area_b = _stats(_searches(rng, STUDIES, r, n, shift))
    _, p_best = permutation_pvalues(best_a, best_b)
    _, p_area = permutation_pvalues(area_a, area_b)
    # the verdict's rule: the best found first, the area only after it rejects
    claims = (p_best <= ALPHA) | ((p_best <= ALPHA) & (p_area <= ALPHA))
    return float(claims.mean())


@pytest.mark.parametrize("repeats", [4, 5, 6])
def test_under_the_null_at_most_five_percent_false_claims(repeats: int) -> None:
    rng = np.random.default_rng(26 + repeats)
    rate = _false_claims(rng, repeats, 8, 0.0)
    bound = binom.ppf(0.99, STUDIES, ALPHA) / STUDIES  # 5% plus Monte Carlo error
    assert rate <= bound, f"{rate:.3f} false claims with {repeats} repeats (bound {bound:.3f})"


def test_a_real_difference_is_found() -> None:
    rng = np.random.default_rng(7)
    assert _false_claims(rng, 6, 8, 1.5) > 0.5  # power, not a false claim: B is worse


def test_the_smallest_p_decides_when_a_test_is_possible() -> None:
    assert smallest_p(3, 3) == pytest.approx(0.1)
    assert smallest_p(4, 4) == pytest.approx(2 / 70)
    assert repeats_needed() == 4


def test_the_sentence_says_how_many_repeats_would_allow_a_test() -> None:
    few = compare_searches(
        "radam",
        "sgd",
        best_a=np.array([91.0, 92.0]),
        best_b=np.array([88.0, 89.0]),
        area_a=np.array([90.0, 90.5]),
        area_b=np.array([87.0, 87.5]),
        k=8,
        higher_is_better=True,
    )
    assert few.p_best is None and few.claim is None
    assert "4 repeats per optimizer" in few.sentence and "2 repeats" in few.sentence


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_clear_difference_is_claimed_in_the_metrics_direction(higher_is_better: bool) -> None:
    high, low = np.array([91.0, 92.0, 91.5, 92.5, 91.8]), np.array([85.0, 86.0, 85.5, 84.0, 86.2])
    result = compare_searches(
        "radam",
        "sgd",
        best_a=high,
        best_b=low,
        area_a=high - 1,
        area_b=low - 1,
        k=8,
        higher_is_better=higher_is_better,
    )
    assert result.p_best is not None and result.p_best <= ALPHA
    assert result.claim == ("radam" if higher_is_better else "sgd")
    assert result.p_area is not None and "sooner" in result.sentence
