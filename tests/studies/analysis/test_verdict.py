"""The permutation test and the expected max on small cases checked by brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from studies.analysis.expected_max import expected_max
from studies.analysis.verdict import regret_test, seeds_needed, smallest_p


def _brute_force_p(a_cells: list[np.ndarray], b_cells: list[np.ndarray]) -> float:
    """Every within-cell split of the pooled seeds, by itertools, the slow obvious way."""

    def regret(means: list[float]) -> float:
        return max(means) - sum(means) / len(means)

    observed = abs(regret([a.mean() for a in a_cells]) - regret([b.mean() for b in b_cells]))
    per_cell = []
    for a, b in zip(a_cells, b_cells, strict=True):
        pooled = np.concatenate([a, b])
        splits = []
        for chosen in itertools.combinations(range(pooled.size), a.size):
            rest = [i for i in range(pooled.size) if i not in chosen]
            splits.append((pooled[list(chosen)].mean(), pooled[rest].mean()))
        per_cell.append(splits)
    hits = total = 0
    for combo in itertools.product(*per_cell):
        d = regret([x for x, _ in combo]) - regret([y for _, y in combo])
        hits += abs(d) >= observed - 1e-9
        total += 1
    return hits / total


def test_exact_p_value_matches_brute_force_with_unequal_seed_counts() -> None:
    rng = np.random.default_rng(3)
    a = [rng.normal(90, 1, 2), rng.normal(88, 1, 3), rng.normal(85, 1, 2)]
    b = [rng.normal(90, 1, 2), rng.normal(86, 1, 2), rng.normal(80, 1, 3)]
    test = regret_test(a, b)
    assert test.exact and test.relabellings == 6 * 10 * 10
    assert test.p_value == pytest.approx(_brute_force_p(a, b))


def test_random_relabellings_estimate_the_exact_p_value() -> None:
    rng = np.random.default_rng(4)
    a = [rng.normal(m, 1, 3) for m in (90, 89, 88, 86)]
    b = [rng.normal(m, 1, 3) for m in (90, 88, 86, 84)]
    exact = regret_test(a, b, max_exact=10**6)
    drawn = regret_test(a, b, max_exact=1, draws=20_000)
    assert exact.exact and not drawn.exact
    assert exact.p_value is not None and drawn.p_value is not None
    assert abs(exact.p_value - drawn.p_value) < 4 * math.sqrt(0.25 / 20_000) + 1e-4


def test_the_interval_excludes_0_exactly_when_the_test_rejects() -> None:
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(300):
        shift = rng.uniform(0, 3, 4) * (np.arange(4) > 0)
        a = [rng.normal(90, 1, 2) for _ in range(4)]
        b = [rng.normal(90 - s, 1, 2) for s in shift]
        test = regret_test(a, b)
        assert test.ci is not None
        excludes = test.ci[0] > 0 or test.ci[1] < 0
        assert excludes == test.rejects
        assert test.ci[0] <= test.diff <= test.ci[1]
        seen.add(test.rejects)
    assert seen == {True, False}  # both branches exercised


def test_smallest_attainable_p_and_the_seeds_that_make_a_test_possible() -> None:
    assert smallest_p([(1, 1)] * 4) == pytest.approx(2 / 16)  # Figure 6 with one seed: no test
    assert smallest_p([(2, 2)] * 4) == pytest.approx(2 / 6**4)
    assert smallest_p([(2, 3)]) == pytest.approx(1 / 10)  # no global swap when counts differ
    assert seeds_needed(4) == 2
    assert seeds_needed(2) == 3
    assert seeds_needed(6) == 1  # 2 / 2^6 = 0.031
    assert seeds_needed(1) is None


def test_one_shared_cell_has_no_regret_to_test() -> None:
    test = regret_test([np.array([90.0, 91.0])], [np.array([80.0, 81.0])])
    assert test.p_value is None and test.cells == 1 and test.seeds_needed is None


def test_mismatched_cells_are_rejected() -> None:
    with pytest.raises(ValueError, match="Invalid cells"):
        regret_test([np.array([90.0])], [])
    with pytest.raises(ValueError, match="Invalid cells"):
        regret_test([np.array([90.0]), np.array([])], [np.array([90.0]), np.array([1.0])])


def test_expected_max_matches_every_subset_by_brute_force() -> None:
    values = [71.0, 90.5, 88.0, 88.0, 60.0, 91.2, 85.5]
    expected = [
        float(np.mean([max(c) for c in itertools.combinations(values, k)]))
        for k in range(1, len(values) + 1)
    ]
    assert expected_max(values) == pytest.approx(expected)


def test_expected_max_of_a_large_grid_does_not_overflow() -> None:
    values = np.random.default_rng(0).uniform(10, 90, 600).tolist()
    curve = expected_max(values)
    assert len(curve) == 600 and all(math.isfinite(v) for v in curve)
    assert curve[0] == pytest.approx(np.mean(values))
    assert curve[-1] == pytest.approx(max(values))
    assert all(x <= y + 1e-9 for x, y in itertools.pairwise(curve))  # more budget, no worse
    assert expected_max([]) == []
