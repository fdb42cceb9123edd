"""The verdict's test: is one optimizer's mean regret lower than another's, beyond seed noise?

What the verdict claims. "A is less sensitive than B" means A's *mean regret* over the grid
(``max over cells - mean over cells`` of the per-cell mean accuracy, each optimizer against its
own best cell) is lower than B's. The statistic is ``D = regret_A - regret_B`` on the cells
both optimizers ran (matched by learning rate, and warmup where both vary it).

The test. A permutation test that exchanges the two optimizers' seeds *within each cell*:
under the null "in every shared cell, A's and B's seeds come from the same distribution" the
labels are exchangeable cell by cell, so every within-cell relabelling (C(n_A + n_B, n_A) per
cell, all cells crossed) is as likely as the observed one, whatever the noise looks like
(diverged seeds, ceilings, skew) and whatever the statistic. It is enumerated exactly when
there are at most ``MAX_EXACT`` relabellings, otherwise drawn at random (``draws`` of them,
seeded, p = (1 + b) / (1 + draws), which keeps the test exact). The p-value is two-sided,
``P(|D*| >= |D|)``; the verdict names the optimizer with the lower regret only when
``p <= ALPHA``. ``scipy.stats.permutation_test`` has no stratified (within-cell) permutation
type, and its ``samples`` type (paired swaps) is a strictly smaller group that cannot reach
small p-values with 2-3 seeds, hence the few lines of numpy here.

The interval. ``D ± h`` with ``h`` the ``1 - ALPHA`` quantile of ``|D*|`` (its
``floor(ALPHA * N) + 1``-th largest value): the test inverted under a shift model (the noise of
``D`` does not depend on the true difference). It excludes 0 exactly when the test rejects.

Assumptions and limits, measured by ``tests/studies/analysis/test_verdict_calibration.py`` through
``summarize`` (1,000 seeded studies per row, Monte Carlo error about ±1.4 points at 2 sd; two
optimizers x 4 learning rates, seed noise N(0, 1 point)):

- Calibration, the same true accuracy in every cell for both optimizers: false-claim rate
  4.1% / 5.1% / 4.6% with 2 / 3 / 5 seeds per cell on a Figure-6-like grid (90, 91, 90.5, 88),
  5.0% / 5.0% / 6.0% on a flat grid (the bound the tests hold: 6.7%, the 99% binomial
  quantile). The percentile bootstrap it replaces claims 13.2% / 7.2% / 4.1% on the first and
  7.9% / 1.7% / 0.8% on the second, and fails those tests (checked once by putting it back).
  With 20,000 flat-grid studies at 2 seeds the rate is 5.0% and P(p <= q) = q throughout.
- Power, B's mean regret 3 points higher spread over three cells (B = A - (0, 4, 4, 4)):
  50% / 73% / 95%, never the wrong direction. The same 3 points from one cell's collapse
  (B = A - (0, 0, 0, 12)): 16% / 52% / 97% (2,000 studies, ``regret_test`` directly): with few
  seeds a permutation test cannot tell one cell's collapse from a lucky split of its seeds.
- Smallest attainable p: 2 / prod_c C(n_A + n_B, n_A) (1 / ... when the counts differ). 4
  cells x 1 seed gives 1/8, so no test is possible with one seed on Figure 6's grid (2 seeds:
  1/648); the sentence says so and how many seeds per cell would give one. 6 or more cells
  with one seed can be tested.
- The null is "identical distributions per cell", stronger than "equal mean regret". With
  equal true regrets but different grids (one grid mirrored, shifted by 5 points, or Figure 6's
  RAdam row against its reverse) the permuted differences spread wider and the test is
  conservative: 0-2.1% false claims. A noisier optimizer at equal true means has a higher
  *measured* regret (the max over noisy cell means is biased upward), and the test names the
  quieter one more often than 5%: 6.6-7.6% at twice the seed noise, 10.8-13.4% on a flat
  grid (1,000 studies each).
- The interval covers the true difference in 94-96% of null studies and 97-100% of the
  alternatives above (conservative away from the null: permuting mixes the two grids).
- Each pair is tested at 5%; a study with m pairs can make at least one false claim with up to
  m x 5% probability under a global null (no multiplicity correction).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05  # two-sided level of the test; the interval is at 1 - ALPHA
MAX_EXACT = 20_000  # enumerate every relabelling up to this many, draw at random above
DEFAULT_DRAWS = 4_999  # random relabellings when there are more than MAX_EXACT
MAX_CELL_OPTIONS = 5_000  # list a cell's relabellings up to this many (C(14, 7) = 3432)
METHOD = "within-cell permutation test of seeds"
_TIE = 1e-9  # points: |D*| this close to |D| counts as "as extreme" (float sums differ)


def mean_regret(means: FloatArray) -> FloatArray:
    """Mean regret along the last axis: best cell minus the mean cell (percent points)."""
    return means.max(axis=-1) - means.mean(axis=-1)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RegretTest:
    """The test of ``regret_a - regret_b`` on matched cells (see the module docstring)."""

    regret_a: float
    regret_b: float
    diff: float  # regret_a - regret_b, points
    cells: int  # matched cells the test exchanges seeds in
    seeds_min: int  # fewest seeds of either optimizer in a cell
    seeds_max: int
    relabellings: int  # the exact count, or the random draws
    exact: bool
    min_p: float  # the smallest p-value this design can reach
    seeds_needed: int | None  # seeds per cell that would make a test possible (when not)
    p_value: float | None  # None when no test is possible
    ci: tuple[float, float] | None  # D ± h, None when no test is possible

    @property
    def possible(self) -> bool:
        return self.p_value is not None

    @property
    def rejects(self) -> bool:
        return self.p_value is not None and self.p_value <= ALPHA


def smallest_p(counts: Sequence[tuple[int, int]]) -> float:
    """The smallest p-value a within-cell permutation test can reach with these seed counts.

    The identity and (with equal counts in every cell) the global swap, which maps D to -D,
    are always at least as extreme as the data.
    """
    total = math.prod(math.comb(na + nb, na) for na, nb in counts)
    symmetric = all(na == nb for na, nb in counts)
    return (2.0 if symmetric else 1.0) / total


def seeds_needed(cells: int, *, alpha: float = ALPHA) -> int | None:
    """Seeds per cell (the same for both optimizers) from which a test can reject."""
    if cells < 2:
        return None
    for n in range(1, 50):
        if smallest_p([(n, n)] * cells) <= alpha:
            return n
    return None


def regret_test(
    a_cells: Sequence[FloatArray],
    b_cells: Sequence[FloatArray],
    *,
    draws: int = DEFAULT_DRAWS,
    rng_seed: int = 0,
    alpha: float = ALPHA,
    max_exact: int = MAX_EXACT,
) -> RegretTest:
    """Test ``regret(A) = regret(B)`` on matched cells: ``a_cells[i]`` and ``b_cells[i]`` are
    the final accuracies (percent) of A's and B's seeds in the same cell, each non-empty."""
    if len(a_cells) != len(b_cells):
        raise ValueError(f"Invalid cells: {len(a_cells)} for A, {len(b_cells)} for B")
    counts = [(len(a), len(b)) for a, b in zip(a_cells, b_cells, strict=True)]
    if any(na == 0 or nb == 0 for na, nb in counts):
        raise ValueError(f"Invalid cells: every matched cell needs seeds of both, got {counts}")
    mean_a = np.array([a.mean() for a in a_cells])
    mean_b = np.array([b.mean() for b in b_cells])
    regret_a, regret_b = float(mean_regret(mean_a)), float(mean_regret(mean_b))
    diff = regret_a - regret_b
    seeds = [n for pair in counts for n in pair]
    total = math.prod(math.comb(na + nb, na) for na, nb in counts)
    min_p = smallest_p(counts) if total <= max_exact else 1.0 / (draws + 1)
    untested = RegretTest(
        regret_a=regret_a,
        regret_b=regret_b,
        diff=diff,
        cells=len(counts),
        seeds_min=min(seeds),
        seeds_max=max(seeds),
        relabellings=total if total <= max_exact else draws,
        exact=total <= max_exact,
        min_p=min_p,
        seeds_needed=None,
        p_value=None,
        ci=None,
    )
    if len(counts) < 2:  # one cell: both regrets are 0
        return untested
    if min_p > alpha:  # no relabelling could ever be rare enough
        return replace(untested, seeds_needed=seeds_needed(len(counts), alpha=alpha))
    limit = max(max_exact, MAX_CELL_OPTIONS) if total <= max_exact else MAX_CELL_OPTIONS
    options = [_cell_options(a, b, limit) for a, b in zip(a_cells, b_cells, strict=True)]
    if total <= max_exact:
        grid = np.indices([len(o[0]) for o in options]).reshape(len(options), -1)  # (cells, N)
        extremes = np.abs(_relabelled_diff(options, grid))  # includes the identity
        b = int(np.count_nonzero(extremes >= abs(diff) - _TIE))
        p_value = b / total
    else:
        drawn = np.abs(_random_diff(a_cells, b_cells, options, draws=draws, rng_seed=rng_seed))
        b = int(np.count_nonzero(drawn >= abs(diff) - _TIE))
        p_value = (1 + b) / (draws + 1)
        extremes = np.concatenate([[abs(diff)], drawn])
    # h: the (floor(alpha * N) + 1)-th largest |D*|, so |D| > h exactly when p <= alpha.
    k = math.floor(alpha * extremes.size + 1e-9)
    half = float(-np.partition(-extremes, k)[k])
    return replace(untested, p_value=p_value, ci=(diff - half, diff + half))


def _cell_options(a: FloatArray, b: FloatArray, limit: int) -> tuple[FloatArray, FloatArray]:
    """Every relabelling of one cell: A's and B's means; the first is the identity."""
    na, nb = a.size, b.size
    if math.comb(na + nb, na) > limit:
        return np.zeros(0), np.zeros(0)  # drawn by permuting the seeds instead
    pooled = np.concatenate([a, b])
    subsets = np.array(list(itertools.combinations(range(na + nb), na)), dtype=np.int64)
    sums = pooled[subsets].sum(axis=1)
    return sums / na, (pooled.sum() - sums) / nb


def _relabelled_diff(
    options: Sequence[tuple[FloatArray, FloatArray]], picks: npt.NDArray[np.int64]
) -> FloatArray:
    """D for the relabellings ``picks`` (cells, M): one option index per cell each."""
    perm_a = np.stack([o[0][p] for o, p in zip(options, picks, strict=True)], axis=-1)
    perm_b = np.stack([o[1][p] for o, p in zip(options, picks, strict=True)], axis=-1)
    return mean_regret(perm_a) - mean_regret(perm_b)


def _random_diff(
    a_cells: Sequence[FloatArray],
    b_cells: Sequence[FloatArray],
    options: Sequence[tuple[FloatArray, FloatArray]],
    *,
    draws: int,
    rng_seed: int,
) -> FloatArray:
    """D for ``draws`` uniformly random within-cell relabellings (listed options or shuffles)."""
    rng = np.random.default_rng(rng_seed)
    cols_a: list[FloatArray] = []
    cols_b: list[FloatArray] = []
    for a, b, (opt_a, opt_b) in zip(a_cells, b_cells, options, strict=True):
        if opt_a.size:
            pick = rng.integers(0, opt_a.size, size=draws)
            cols_a.append(opt_a[pick])
            cols_b.append(opt_b[pick])
            continue
        pooled = np.concatenate([a, b])
        order = rng.permuted(np.tile(np.arange(pooled.size), (draws, 1)), axis=1)
        sums = pooled[order[:, : a.size]].sum(axis=1)
        cols_a.append(sums / a.size)
        cols_b.append((pooled.sum() - sums) / b.size)
    perm_a, perm_b = np.stack(cols_a, axis=1), np.stack(cols_b, axis=1)
    return mean_regret(perm_a) - mean_regret(perm_b)


def seeds_phrase(test: RegretTest) -> str:
    """``3 seeds per configuration`` (or ``2-3 seeds``) on ``4 configurations``."""
    low, high = test.seeds_min, test.seeds_max
    seeds = f"{low} seed" + ("s" if low != 1 else "") if low == high else f"{low}-{high} seeds"
    return f"{seeds} per configuration, {test.cells} configurations"


def describe(test: RegretTest) -> str:
    """The test's parenthesis in the verdict: method, seeds and p (or why there is none)."""
    if test.p_value is None:
        return f"{METHOD}; {seeds_phrase(test)}"
    how = "exact" if test.exact else f"{test.relabellings} random relabellings"
    return f"{METHOD}, {how}; {seeds_phrase(test)}; p = {_fmt_p(test.p_value)}"


def no_test_reason(test: RegretTest) -> str:
    """Why no test is possible, and what would make one possible."""
    if test.cells < 2:
        return "the two grids share fewer than two configurations, so there is no regret to test"
    one_seed = test.seeds_max == 1
    start = "with a single seed per configuration" if one_seed else f"with {seeds_phrase(test)}"
    text = (
        f"no test is possible {start}: no relabelling of the seeds can reach p <= {ALPHA:g} "
        f"(the smallest attainable p is {_fmt_p(test.min_p)})"
    )
    if test.seeds_needed is not None:
        text += f"; {test.seeds_needed} seeds per configuration would give one"
    return text


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"
