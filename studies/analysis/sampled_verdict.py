"""The verdict of a sampled study: does one optimizer tune better than another, beyond the
luck of the search?

The unit of replication is the whole search (a repeat: each optimizer's own sampler, seeded
per repeat), not a trial seed. Per repeat and optimizer two numbers: the best found after
``k`` configurations (``k`` = the budget, ``num_samples``) and the tuning-curve area (the
mean over k = 1..N of the best so far: how soon the search gets there). For a pair of
optimizers the statistic is the difference of their means over repeats, turned so that
positive means the first is better (``direction``).

The test. A two-sample permutation test over repeats: under the null "both optimizers'
searches give their statistic from the same distribution" the 2R repeat values are
exchangeable, so every split into R and R is as likely as the observed one. Every split is
listed up to ``MAX_EXACT``, else ``draws`` are drawn (seeded; p = (1 + b) / (1 + draws)).
Two-sided. The smallest p it can give is 2 / C(2R, R): 0.1 with 3 repeats, 0.029 with 4, so
a claim at 5% needs 4 repeats per optimizer; below that the sentence says so.

Two statistics, one error budget: the best found is tested first at ``ALPHA``; only when it
rejects is the area tested (at ``ALPHA`` too). This fixed sequence keeps the chance of any
false claim for a pair at ``ALPHA`` (the area can add a claim only after a true or false
first one). Calibrated in tests/studies/analysis/test_sampled_verdict.py under simulated
nulls (two optimizers' random searches of 8 configurations on one peaked surface over log lr,
seed noise 1 point; 2,000 studies per row, vectorised, about a second): false claims 0% /
2.7% / 4.1% / 4.7% / 5.0% with 3 / 4 / 5 / 6 / 8 repeats (the test holds them under the 99%
binomial bound of 5%); power against a surface 1.5 points lower everywhere 0% / 36% / 55% /
67% / 79%. As in the grid verdict, each pair is tested at 5% (no correction across pairs).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from pydantic import BaseModel, Field

from studies.analysis.direction import FloatArray, better_word, sign
from studies.analysis.labels import optimizer_label

ALPHA = 0.05
MAX_EXACT = 20_000  # splits listed exactly; more are drawn at random
DEFAULT_DRAWS = 9_999
METHOD = "two-sample permutation test over repeats, two-sided"


class SampledComparison(BaseModel):
    """Two optimizers' searches compared over repeats (``a`` against ``b``)."""

    a: str
    b: str
    k: int = Field(description="budget: configurations per search")
    repeats_a: int
    repeats_b: int
    best_a_pct: float | None = Field(description="mean over repeats of the best after k")
    best_b_pct: float | None
    area_a_pct: float | None = Field(description="mean over repeats of the tuning-curve area")
    area_b_pct: float | None
    p_best: float | None = Field(description="None: no test possible")
    p_area: float | None = Field(description="tested only when the best found differs")
    claim: str | None = Field(description="the better optimizer when the test rejects")
    sentence: str


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p a split of n_a and n_b repeats can give."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, (2 if n_a == n_b else 1) / math.comb(n_a + n_b, n_a))


def repeats_needed(alpha: float = ALPHA) -> int:
    """Repeats per optimizer for the test to be able to reject at ``alpha``."""
    r = 1
    while smallest_p(r, r) > alpha:
        r += 1
    return r


def _splits(n_a: int, n_b: int, draws: int, rng_seed: int) -> tuple[np.ndarray, bool]:
    """Boolean [S, n_a + n_b]: True marks the values relabelled as ``a``; exact or drawn."""
    n = n_a + n_b
    if math.comb(n, n_a) <= MAX_EXACT:
        masks = np.zeros((math.comb(n, n_a), n), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(n), n_a)):
            masks[row, list(chosen)] = True
        return masks, True
    rng = np.random.default_rng(rng_seed)
    base = np.arange(n) < n_a
    return rng.permuted(np.tile(base, (draws, 1)), axis=1), False


def permutation_pvalues(
    a: FloatArray, b: FloatArray, *, draws: int = DEFAULT_DRAWS, rng_seed: int = 0
) -> tuple[FloatArray, FloatArray]:
    """(mean(a) - mean(b), two-sided p) per row of ``a`` [M, n_a] and ``b`` [M, n_b]:
    vectorised over M studies (what the calibration test runs); no NaN allowed."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    n_a, n_b = a.shape[1], b.shape[1]
    masks, exact = _splits(n_a, n_b, draws, rng_seed)
    weights = np.where(masks, 1.0 / n_a, -1.0 / n_b)  # [S, n]
    values = np.concatenate([a, b], axis=1)  # [M, n]
    observed = a.mean(axis=1) - b.mean(axis=1)
    permuted = values @ weights.T  # [M, S]
    tol = 1e-9 * (1.0 + np.abs(observed))[:, None]
    extreme = (np.abs(permuted) >= np.abs(observed)[:, None] - tol).sum(axis=1)
    p = extreme / masks.shape[0] if exact else (1.0 + extreme) / (1.0 + masks.shape[0])
    return observed, np.minimum(p, 1.0)


def compare_searches(
    a: str,
    b: str,
    *,
    best_a: FloatArray,
    best_b: FloatArray,
    area_a: FloatArray,
    area_b: FloatArray,
    k: int,
    higher_is_better: bool,
    unit: str = "%",
    draws: int = DEFAULT_DRAWS,
    rng_seed: int = 0,
) -> SampledComparison:
    """Compare two optimizers' per-repeat best-after-k and area (NaN: a repeat without
    results, left out)."""
    s = sign(higher_is_better)
    best_a, best_b = best_a[np.isfinite(best_a)], best_b[np.isfinite(best_b)]
    area_a, area_b = area_a[np.isfinite(area_a)], area_b[np.isfinite(area_b)]
    la, lb = optimizer_label(a), optimizer_label(b)
    p_best = p_area = None
    claim: str | None = None
    possible = smallest_p(best_a.size, best_b.size) <= ALPHA
    if possible:
        diff, p = permutation_pvalues(
            s * best_a[None, :], s * best_b[None, :], draws=draws, rng_seed=rng_seed
        )
        p_best = float(p[0])
        if p_best <= ALPHA:
            claim = a if diff[0] > 0 else b
            if area_a.size and area_b.size:
                _, pa = permutation_pvalues(
                    s * area_a[None, :], s * area_b[None, :], draws=draws, rng_seed=rng_seed
                )
                p_area = float(pa[0])
    numbers = (
        f"best found after {k} configurations {_pct(best_a, unit)} ({la}) vs "
        f"{_pct(best_b, unit)} ({lb}), tuning-curve area {_pct(area_a, unit)} vs "
        f"{_pct(area_b, unit)}, mean over "
        f"{_repeats(best_a.size, best_b.size)}"
    )
    if not possible:
        need = repeats_needed()
        sentence = (
            f"{la} vs {lb}: {numbers}. No test: with {_repeats(best_a.size, best_b.size)} a "
            f"permutation test over repeats cannot reach p <= {ALPHA:g}; {need} repeats per "
            f"optimizer (search.repeats: {need}) would allow one."
        )
    elif claim is None:
        sentence = (
            f"{la} vs {lb}: cannot tell which tunes better: {numbers}; p = {_fmt_p(p_best)} "
            f"({METHOD})."
        )
    else:
        winner, loser = (la, lb) if claim == a else (lb, la)
        sentence = (
            f"{winner} tunes better than {loser}: its best found after {k} configurations is "
            f"{better_word(higher_is_better)}, p = {_fmt_p(p_best)} ({METHOD}); {numbers}."
        )
        if p_area is not None and p_area <= ALPHA:
            sentence += f" It also gets there sooner (tuning-curve area, p = {_fmt_p(p_area)})."
        elif p_area is not None:
            sentence += f" The tuning-curve areas do not differ clearly (p = {_fmt_p(p_area)})."
    return SampledComparison(
        a=a,
        b=b,
        k=k,
        repeats_a=int(best_a.size),
        repeats_b=int(best_b.size),
        best_a_pct=_mean(best_a),
        best_b_pct=_mean(best_b),
        area_a_pct=_mean(area_a),
        area_b_pct=_mean(area_b),
        p_best=p_best,
        p_area=p_area,
        claim=claim,
        sentence=sentence,
    )


def _mean(values: FloatArray) -> float | None:
    return float(values.mean()) if values.size else None


def _pct(values: FloatArray, unit: str) -> str:
    if not values.size:
        return "—"
    return f"{values.mean():.2f}{unit}" if unit == "%" else f"{values.mean():.4g} {unit}"


def _repeats(n_a: int, n_b: int) -> str:
    n = f"{n_a}" if n_a == n_b else f"{n_a} and {n_b}"
    return f"{n} repeat{'s' if max(n_a, n_b) != 1 else ''}"


def _fmt_p(p: float | None) -> str:
    return "—" if p is None else (f"{p:.3f}" if p >= 0.001 else "< 0.001")
