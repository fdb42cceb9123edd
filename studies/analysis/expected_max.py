"""Expected best accuracy at a tuning budget (Dodge et al. 2019, "Show Your Work").

For a grid of N configurations with accuracies sorted ``v_(1) <= ... <= v_(N)``, the expected
best accuracy when k of them are drawn at random *without* replacement is

    E[max_k] = sum_j v_(j) C(j - 1, k - 1) / C(N, k),     k = 1..N,

the unbiased form of Tang et al. 2020 (Dodge et al.'s original draws with replacement, which
is biased upward for small grids). ``k = 1`` is the grid's mean, ``k = N`` its best: the curve
between them says how much tuning an optimizer needs to get close to its best, the number a
reader of a robustness study wants next to the regret. The weights are computed in log space
(``scipy.special.gammaln``) so an Optuna study with hundreds of cells does not overflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln


def expected_max(values: Sequence[float]) -> list[float]:
    """E[best of k drawn without replacement] for k = 1..len(values); [] for no values."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = v.size
    if n == 0:
        return []
    j = np.arange(1, n + 1)[None, :]  # rank of each value, ascending
    k = np.arange(1, n + 1)[:, None]  # budget
    valid = j >= k  # C(j - 1, k - 1) = 0 below the diagonal
    jj, kk = np.where(valid, j, k), k  # keep gammaln's arguments positive where masked
    log_w = (
        gammaln(jj)
        - gammaln(kk)
        - gammaln(jj - kk + 1)  # log C(j - 1, k - 1)
        - (gammaln(n + 1) - gammaln(kk + 1) - gammaln(n - kk + 1))  # log C(N, k)
    )
    weights = np.where(valid, np.exp(log_w), 0.0)
    return [float(x) for x in weights @ v]
