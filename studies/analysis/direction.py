"""Which way is better, in one place: the sampled-study analysis takes ``higher_is_better``
and asks these functions, so a metric to minimise (a loss) needs no second copy of it.

Every function turns a metric into "goodness" (higher is better) or back; accuracy, the only
metric a study reports today, is higher-is-better (``ACCURACY_HIGHER_IS_BETTER``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

ACCURACY_HIGHER_IS_BETTER = True


def sign(higher_is_better: bool) -> float:
    """+1 when higher is better, -1 when lower is: ``sign * value`` is higher-is-better."""
    return 1.0 if higher_is_better else -1.0


def best_index(values: FloatArray, higher_is_better: bool) -> int:
    """Index of the best finite value (NaN ignored); -1 when there is none."""
    goodness = sign(higher_is_better) * np.asarray(values, dtype=np.float64)
    if not np.isfinite(goodness).any():
        return -1
    return int(np.nanargmax(np.where(np.isfinite(goodness), goodness, np.nan)))


def running_best(values: FloatArray, higher_is_better: bool) -> FloatArray:
    """Best so far along the last axis (NaN, a sample without a result, is skipped; NaN until
    the first result)."""
    s = sign(higher_is_better)
    goodness = np.where(np.isfinite(values), s * values, -np.inf)
    best = np.maximum.accumulate(goodness, axis=-1)
    return np.where(np.isfinite(best), s * best, np.nan)


def better_word(higher_is_better: bool) -> str:
    return "higher" if higher_is_better else "lower"
