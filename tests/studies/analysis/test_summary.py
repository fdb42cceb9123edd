"""Summary numbers on hand-made trial records, with answers worked out by hand."""

from __future__ import annotations

import json
import math

import pytest

from studies.analysis.summarize import summarize
from studies.analysis.summary import StudySummary
from studies.analysis.tables import format_cells_csv, format_table
from studies.results import TrialRecord


def trial(
    optimizer: str,
    lr: float,
    seed: int,
    accs: list[float],
    *,
    status: str = "finished",
    warmup: str = "none",
    warmup_steps: int = 0,
) -> TrialRecord:
    return TrialRecord(
        trial_id=f"{optimizer}-{lr}-{warmup}{warmup_steps}-{seed}",
        optimizer=optimizer,
        lr=lr,
        warmup=warmup,
        warmup_steps=warmup_steps,
        seed=seed,
        status=status,  # type: ignore[arg-type]
        history={"test_acc": accs},
    )


def cell(summary: StudySummary, optimizer: str, lr: float, warmup: str = "none"):  # type: ignore[no-untyped-def]
    (found,) = [
        c for c in summary.cells if (c.optimizer, c.lr, c.warmup) == (optimizer, lr, warmup)
    ]
    return found


def by_name(summary: StudySummary, optimizer: str):  # type: ignore[no-untyped-def]
    (found,) = [o for o in summary.optimizers if o.optimizer == optimizer]
    return found


def test_regret_spread_and_share_within_one_point() -> None:
    # Final accuracies 90, 89.5, 80 (one seed each): best 90 at lr 0.1, worst 80, spread 10,
    # regret = mean(0, 0.5, 10) = 3.5, within 1 point: 90 and 89.5 -> 2 of 3.
    trials = [
        trial("adam", 0.1, 0, [0.5, 0.90]),
        trial("adam", 0.01, 0, [0.5, 0.895]),
        trial("adam", 0.001, 0, [0.5, 0.80]),
    ]
    adam = by_name(summarize(trials), "adam")
    assert adam.n_cells == 3
    assert adam.best_lr == 0.1
    assert adam.best_acc_pct == pytest.approx(90.0)
    assert adam.worst_acc_pct == pytest.approx(80.0)
    assert adam.spread_pct == pytest.approx(10.0)
    assert adam.mean_regret_pct == pytest.approx(3.5)
    assert adam.share_within_1pt == pytest.approx(2 / 3)


def test_cell_mean_std_over_seeds_and_best_accuracy() -> None:
    # Seeds end at 80 and 90 (mean 85, sample std sqrt(50) = 7.07); their best epochs are
    # 85 and 90 (mean 87.5). The curve is the per-epoch mean: (60+70)/2, (85+80)/2, (80+90)/2.
    trials = [trial("sgd", 0.1, 0, [0.6, 0.85, 0.8]), trial("sgd", 0.1, 1, [0.7, 0.8, 0.9])]
    c = cell(summarize(trials), "sgd", 0.1)
    assert c.n_seeds == 2 and c.seeds == [0, 1]
    assert c.final_acc_mean_pct == pytest.approx(85.0)
    assert c.final_acc_std_pct == pytest.approx(math.sqrt(50.0))
    assert c.best_acc_mean_pct == pytest.approx(87.5)
    assert c.curve_mean_pct == pytest.approx([65.0, 82.5, 85.0])
    assert c.curve_std_pct[0] == pytest.approx(math.sqrt(50.0))


def test_diverged_trials_count_with_the_accuracy_they_had() -> None:
    # A 3-epoch study. Seed 1 diverged after epoch 2 at 60% (its NaN epoch 3 is ignored),
    # seed 2 diverged after epoch 1 at 30%, seed 3 diverged before reporting anything (0).
    trials = [
        trial("adam", 0.1, 0, [0.5, 0.7, 0.9]),
        trial("adam", 0.1, 1, [0.5, 0.6, math.nan], status="diverged"),
        trial("adam", 0.1, 2, [0.3], status="diverged"),
        trial("adam", 0.1, 3, [], status="diverged"),
    ]
    c = cell(summarize(trials), "adam", 0.1)
    assert c.n_seeds == 4
    assert c.n_diverged == 3
    assert c.final_acc_mean_pct == pytest.approx((90 + 60 + 30 + 0) / 4)
    # The curve holds each diverged seed at its last accuracy for the epochs it missed.
    assert c.curve_mean_pct == pytest.approx([(50 + 50 + 30 + 0) / 4, 40.0, 45.0])


def test_a_cell_whose_seeds_all_diverged_early_is_a_flat_line_to_the_last_epoch() -> None:
    trials = [
        trial("sgd", 0.1, 0, [0.8, 0.85, 0.9]),
        trial("adam", 3.0, 0, [0.1], status="diverged"),
        trial("adam", 3.0, 1, [0.12], status="diverged"),
    ]
    c = cell(summarize(trials), "adam", 3.0)
    assert c.curve_mean_pct == pytest.approx([11.0, 11.0, 11.0])


def test_a_trial_that_diverged_before_any_evaluation_counts_at_the_given_floor() -> None:
    # Chance level on ten classes: 10%, for the final, the best and every epoch of the curve.
    trials = [trial("adam", 3.0, 0, [0.5, 0.6]), trial("adam", 3.0, 1, [], status="diverged")]
    c = cell(summarize(trials, no_accuracy_pct=10.0), "adam", 3.0)
    assert c.final_acc_mean_pct == pytest.approx((60 + 10) / 2)
    assert c.best_acc_mean_pct == pytest.approx((60 + 10) / 2)
    assert c.curve_mean_pct == pytest.approx([30.0, 35.0])


def test_partial_study_counts_done_trials_and_ignores_running_ones() -> None:
    trials = [
        trial("radam", 0.01, 0, [0.8, 0.9]),
        trial("radam", 0.1, 0, [0.8, 0.7]),
        trial("adam", 0.01, 0, [0.8, 0.85]),
        trial("adam", 0.1, 0, [0.1], status="running"),  # not final: not averaged
        trial("adam", 0.1, 1, [], status="failed"),  # a crash: counted as done, not averaged
    ]
    summary = summarize(trials, trials_total=8, status="running")
    assert summary.partial is True
    assert summary.trials_done == 4
    assert summary.trials_total == 8
    assert summary.trials_counted == 3
    assert summary.trials_failed == 1
    adam_01 = cell(summary, "adam", 0.1)
    assert adam_01.n_seeds == 0 and adam_01.final_acc_mean_pct is None
    assert adam_01.n_pending == 1 and adam_01.n_failed == 1
    assert by_name(summary, "adam").n_cells == 1  # only lr=0.01 has a counted seed
    assert summary.verdict.startswith("So far (4 of 8 trials done):")


def test_complete_study_is_not_partial_even_while_the_run_is_still_open() -> None:
    trials = [trial("adam", 0.01, 0, [0.8]), trial("adam", 0.1, 0, [0.7], status="diverged")]
    summary = summarize(trials, trials_total=2, status="running")
    assert summary.partial is False
    assert summary.trials_done == 2


def test_single_seed_gives_no_test_and_the_verdict_says_how_many_seeds_would() -> None:
    trials = [
        trial("radam", 0.1, 0, [0.9]),
        trial("radam", 0.01, 0, [0.89]),
        trial("adam", 0.1, 0, [0.2]),
        trial("adam", 0.01, 0, [0.88]),
    ]
    summary = summarize(trials)
    (comparison,) = summary.comparisons
    assert (comparison.a, comparison.b) == ("radam", "adam")
    assert comparison.diff_pct == pytest.approx(0.5 - 34.0)
    assert comparison.diff_ci_pct is None and comparison.p_value is None
    assert comparison.less_sensitive is None
    assert comparison.sentence.startswith("Cannot tell")
    # 2 cells x 1 seed: 4 relabellings, 2 as extreme as any data: p >= 1/2. 2 cells need 3
    # seeds each (2 / C(6, 3)^2 = 1/200; 2 seeds give 2 / 36 > 0.05).
    assert comparison.min_p_value == pytest.approx(0.5)
    assert comparison.seeds_needed == 3
    assert "no test is possible with a single seed per configuration" in comparison.sentence
    assert "3 seeds per configuration would give one" in comparison.sentence


def _grid(optimizer: str, cells: dict[float, list[float]]) -> list[TrialRecord]:
    return [
        trial(optimizer, lr, seed, [acc / 100])
        for lr, accs in cells.items()
        for seed, acc in enumerate(accs)
    ]


def test_verdict_names_the_less_sensitive_optimizer_when_the_test_rejects() -> None:
    # 4 cells x 2 seeds. RAdam 90 everywhere (regret 0); Adam 90 at lr 0.1, 80 at the others
    # (regret 7.5). Only A's own seeds in all three 80-cells, or B's in all three, are as
    # extreme: 2 x 6 (the 90-cell's relabellings) of 6^4 = 1296, p = 1/108.
    radam = {lr: [90.0, 90.0] for lr in (0.1, 0.03, 0.01, 0.003)}
    adam = {0.1: [90.0, 90.0], 0.03: [80.0, 80.0], 0.01: [80.0, 80.0], 0.003: [80.0, 80.0]}
    summary = summarize(_grid("radam", radam) + _grid("adam", adam))
    (comparison,) = summary.comparisons
    assert comparison.exact and comparison.relabellings == 6**4
    assert comparison.p_value == pytest.approx(1 / 108)
    assert comparison.diff_pct == pytest.approx(-7.5)
    assert comparison.less_sensitive == "radam"
    assert comparison.diff_ci_pct is not None and comparison.diff_ci_pct[1] < 0
    assert comparison.sentence.startswith(
        "RAdam is less sensitive to the learning rate than Adam on this grid: mean regret 0.0 "
        "against 7.5 points, difference 7.5"
    )
    assert (
        "(within-cell permutation test of seeds, exact; 2 seeds per configuration, "
        "4 configurations; p = 0.0093)."
    ) in comparison.sentence
    assert summary.verdict == comparison.sentence


def test_a_difference_within_seed_noise_cannot_be_told_and_the_interval_includes_0() -> None:
    rows = {0.1: [90.0, 89.0, 91.0], 0.01: [88.0, 87.5, 89.0], 0.001: [85.0, 86.0, 84.0]}
    shifted = {
        lr: [a + d for a, d in zip(accs, (0.6, -0.4, 0.1), strict=True)]
        for lr, accs in rows.items()
    }
    summary = summarize(_grid("radam", rows) + _grid("adamw", shifted))
    (comparison,) = summary.comparisons
    assert comparison.less_sensitive is None
    assert comparison.p_value is not None and comparison.p_value > 0.05
    assert comparison.diff_ci_pct is not None
    assert comparison.diff_ci_pct[0] <= 0 <= comparison.diff_ci_pct[1]
    assert comparison.sentence.startswith("Cannot tell RAdam and AdamW apart")
    assert (
        "includes 0" in comparison.sentence and "3 seeds per configuration" in comparison.sentence
    )


def test_every_pair_is_compared_radams_first() -> None:
    trials = []
    for seed, noise in enumerate((0.0, 0.2, -0.2)):
        for lr, radam_acc, adam_acc in ((0.1, 90.0, 50.0), (0.01, 90.0, 90.0), (0.001, 89.7, 80.0)):
            trials.append(trial("radam", lr, seed, [(radam_acc + noise) / 100]))
            trials.append(trial("adam", lr, seed, [(adam_acc + noise) / 100]))
            trials.append(trial("adamw", lr, seed, [(radam_acc - noise) / 100]))
    summary = summarize(trials)
    assert [(c.a, c.b) for c in summary.comparisons] == [
        ("radam", "adam"),
        ("radam", "adamw"),
        ("adam", "adamw"),
    ]
    first, second, third = summary.comparisons
    assert first.less_sensitive == "radam" and third.less_sensitive == "adamw"
    assert second.less_sensitive is None  # the same grid up to noise
    assert summary.verdict.startswith(first.sentence)


def test_unequal_seed_counts_and_many_relabellings_use_random_draws_reproducibly() -> None:
    # 5 seeds in 4 cells: 252^4 relabellings, so the test draws them (seeded).
    radam = {lr: [90.0 + 0.3 * s for s in range(5)] for lr in (0.1, 0.03, 0.01, 0.003)}
    adam = {lr: [90.0 - 3 * i + 0.2 * s for s in range(5)] for i, lr in enumerate(radam)}
    adam[0.1] = adam[0.1][:3]  # two of its seeds failed
    trials = _grid("radam", radam) + _grid("adam", adam)
    a, b = summarize(trials), summarize(trials)
    (first,) = a.comparisons
    assert not first.exact and first.relabellings == a.test_draws
    assert first.seeds_min == 3 and first.seeds_max == 5
    assert "3-5 seeds per configuration" in first.sentence
    assert first.p_value == b.comparisons[0].p_value
    assert first.p_value is not None and first.p_value == pytest.approx(1 / (a.test_draws + 1))
    assert first.less_sensitive == "radam"
    assert summarize(trials, rng_seed=1).comparisons[0].less_sensitive == "radam"


def test_a_warmup_study_compares_radam_with_each_warmup_setting_by_learning_rate() -> None:
    # Figure 7: RAdam without warmup against AdamW with each warmup length, cells matched by lr.
    lrs = (0.1, 0.03, 0.01, 0.003)
    trials = _grid("radam", {lr: [90.0, 90.2] for lr in lrs})
    for steps, accs in ((100, (60.0, 85.0, 88.0, 89.0)), (1000, (90.1, 90.0, 89.9, 90.1))):
        trials += [
            trial(
                "adamw", lr, seed, [(acc + 0.2 * seed) / 100], warmup="linear", warmup_steps=steps
            )
            for lr, acc in zip(lrs, accs, strict=True)
            for seed in range(2)
        ]
    summary = summarize(trials)
    short, long_ = summary.comparisons
    assert (short.a_warmup, short.b_warmup) == ("no warmup", "linear warmup (100 steps)")
    assert (long_.a_warmup, long_.b_warmup) == ("no warmup", "linear warmup (1000 steps)")
    assert short.cells == long_.cells == 4
    assert short.less_sensitive == "radam"
    assert short.sentence.startswith(
        "RAdam without warmup is less sensitive to the learning rate than AdamW with linear "
        "warmup (100 steps) on this grid"
    )
    assert long_.less_sensitive is None


def test_grids_with_no_shared_configuration_cannot_be_compared() -> None:
    trials = _grid("radam", {0.1: [90.0, 91.0], 0.01: [89.0, 88.0]})
    trials += _grid("sgd", {0.5: [90.0, 91.0], 0.05: [80.0, 81.0]})
    (comparison,) = summarize(trials).comparisons
    assert comparison.cells == 0 and comparison.less_sensitive is None
    assert comparison.regret_a_pct == pytest.approx(90.5 - 89.5)  # over its own grid
    assert comparison.regret_b_pct == pytest.approx(90.5 - 85.5)
    assert "share no configuration" in comparison.sentence


def test_expected_max_over_k_configurations_per_optimizer_and_warmup_setting() -> None:
    # Final accuracies 80, 90, 85: k=1 the mean 85; k=2 the pairs' maxima 85, 90, 90 -> 88.33;
    # k=3 the best, 90.
    trials = [
        trial("adam", 0.1, 0, [0.80]),
        trial("adam", 0.01, 0, [0.90]),
        trial("adam", 0.001, 0, [0.85]),
        trial("adam", 0.1, 0, [0.70], warmup="linear", warmup_steps=100),
        trial("adam", 0.01, 0, [0.60], warmup="linear", warmup_steps=100),
    ]
    adam = by_name(summarize(trials[:3]), "adam")
    assert adam.expected_max_pct == pytest.approx([85.0, 265 / 3, 90.0])
    assert adam.expected_max_by_warmup == []  # one warmup setting: the grid is the curve
    warm = by_name(summarize(trials), "adam")
    assert len(warm.expected_max_pct) == 5
    assert warm.expected_max_pct[0] == pytest.approx(77.0)
    assert warm.expected_max_pct[-1] == pytest.approx(90.0)
    none, linear = warm.expected_max_by_warmup
    assert none.label == "no warmup" and none.expected_max_pct == pytest.approx(
        [85.0, 265 / 3, 90.0]
    )
    assert linear.label == "linear warmup (100 steps)"
    assert linear.expected_max_pct == pytest.approx([65.0, 70.0])
    assert "E[best] k=1/N" in format_table(summarize(trials[:3]))
    assert "85.0/90.0" in format_table(summarize(trials[:3]))


def test_warmup_table_over_learning_rate_and_warmup_length() -> None:
    trials = [
        trial("adam", 0.1, 0, [0.3]),
        trial("adam", 0.01, 0, [0.8]),
        trial("adam", 0.1, 0, [0.85], warmup="linear", warmup_steps=100),
        trial("adam", 0.01, 0, [0.88], warmup="linear", warmup_steps=100),
        trial("adam", 0.1, 0, [0.86], warmup="linear", warmup_steps=1000),
        trial("radam", 0.1, 0, [0.87]),
        trial("radam", 0.01, 0, [0.89]),
    ]
    summary = summarize(trials)
    assert summary.varies_warmup
    radam, adam = summary.warmup_tables
    assert radam.optimizer == "radam" and adam.optimizer == "adam"
    assert adam.lrs == [0.01, 0.1]
    assert adam.labels == [
        "no warmup",
        "linear warmup (100 steps)",
        "linear warmup (1000 steps)",
    ]
    rounded = [[None if v is None else round(v, 6) for v in row] for row in adam.acc_pct]
    assert rounded == [[80.0, 30.0], [88.0, 85.0], [None, 86.0]]
    assert radam.acc_pct[0] == pytest.approx([89.0, 87.0])
    # Adam's grid is lr x warmup: best 88 (lr 0.01, 100 steps) over five cells.
    best = by_name(summary, "adam")
    assert (best.best_lr, best.best_warmup, best.best_warmup_steps) == (0.01, "linear", 100)
    assert best.mean_regret_pct == pytest.approx(88 - (30 + 80 + 85 + 88 + 86) / 5)
    assert "learning rate" in summary.comparisons[0].sentence
    table = format_table(summary)
    assert "Adam, linear 1000" in table and "88.0 (0.01, linear 100)" in table


def test_a_table_too_wide_for_the_terminal_puts_the_optimizers_under_the_grid() -> None:
    lrs = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]
    trials = [trial("adamw", lr, 0, [0.8], warmup="linear", warmup_steps=1000) for lr in lrs]
    lines = format_table(summarize([*trials, trial("radam", 0.1, 0, [0.8])])).splitlines()
    assert max(len(line) for line in lines) <= 100
    headers = [line for line in lines if line.startswith("optimizer")]
    assert len(headers) == 2 and "lr=0.0001" in headers[0] and "regret" in headers[1]


def test_no_warmup_table_when_the_grid_has_one_warmup() -> None:
    summary = summarize([trial("adam", 0.1, 0, [0.5]), trial("adam", 0.01, 0, [0.6])])
    assert not summary.varies_warmup and summary.warmup_tables == []


def test_any_spec_unknown_optimizers_follow_the_known_ones() -> None:
    trials = [
        trial("lion", 0.1, 0, [0.5]),
        trial("sgd", 0.1, 0, [0.6]),
        trial("radam", 0.1, 0, [0.7]),
    ]
    summary = summarize(trials)
    assert [o.optimizer for o in summary.optimizers] == ["radam", "sgd", "lion"]
    assert [o.label for o in summary.optimizers] == ["RAdam", "SGD", "lion"]


def test_empty_study() -> None:
    summary = summarize([], trials_total=12, status="queued")
    assert summary.partial and summary.trials_done == 0 and summary.trials_total == 12
    assert summary.cells == [] and summary.comparisons == []
    assert summary.verdict == "No finished trials yet (0 of 12 done)."
    assert "0 of 12 trials done" in format_table(summary)


def test_one_optimizer_has_nothing_to_compare() -> None:
    summary = summarize([trial("sgd", 0.1, 0, [0.5]), trial("sgd", 0.01, 0, [0.6])])
    assert summary.comparisons == []
    assert "Nothing to compare" in summary.verdict


def test_json_round_trip_has_no_nan() -> None:
    trials = [
        trial("adam", 0.1, 0, [0.5, 0.6]),
        trial("adam", 0.1, 1, [0.5, math.nan], status="diverged"),
        trial("radam", 0.1, 0, [0.4], status="running"),
    ]
    summary = summarize(trials, study_id="s1", name="tiny", status="running", trials_total=3)
    text = summary.to_json()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["trials_done"] == 2 and data["partial"] is True
    assert data["accuracy_unit"] == "percent"
    assert StudySummary.from_json(text) == summary
    assert StudySummary.from_dict(data) == summary


def test_table_has_optimizers_as_rows_learning_rates_as_columns_and_the_verdict() -> None:
    trials = [
        trial("radam", 0.1, 0, [0.9]),
        trial("radam", 0.01, 0, [0.89]),
        trial("adam", 0.1, 0, [0.2], status="diverged"),
    ]
    table = format_table(summarize(trials, study_id="abc", trials_total=3))
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("optimizer"))
    assert header.index("lr=0.01") < header.index("lr=0.1")
    radam = next(line for line in lines if line.startswith("RAdam"))
    adam = next(line for line in lines if line.startswith("Adam "))
    assert "90.0" in radam and "89.0" in radam
    assert "20.0 *1" in adam  # diverged seed marked
    assert "—" in adam  # lr=0.01 never ran for Adam
    assert "Verdict:" in table and "3 of 3 trials done (complete)" in table


def test_cells_csv_has_one_row_per_cell() -> None:
    trials = [trial("adam", 0.1, 0, [0.5]), trial("adam", 0.01, 0, [0.6])]
    rows = format_cells_csv(summarize(trials)).splitlines()
    assert rows[0].startswith("optimizer,lr,warmup,warmup_steps,n_seeds")
    assert len(rows) == 3
    assert rows[1].split(",")[:2] == ["adam", "0.01"]


def test_many_learning_rates_make_a_long_table() -> None:
    # An Optuna study samples lrs freely: 12 of them do not fit as columns.
    lrs = [10 ** (-4 + i / 3) for i in range(12)]
    trials = [trial("adam", lr, 0, [0.5 + i / 100]) for i, lr in enumerate(lrs)]
    table = format_table(summarize(trials))
    lines = table.splitlines()
    assert any(line.startswith("optimizer") and " lr " in f"{line} " for line in lines)
    assert sum(1 for line in lines if line.startswith("Adam ")) == 12 + 1  # cells + summary row
    assert "lr=" not in table
