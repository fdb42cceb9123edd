"""Summaries follow the study's metric: accuracy studies give exactly the numbers they gave
before (a summary frozen before the change), and a lower-is-better metric is summarised in its
own direction (regret, share within the threshold, expected best, verdict)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from studies.analysis.summarize import summarize
from studies.analysis.summary import StudySummary
from studies.analysis.tables import format_cells_csv, format_table
from studies.metrics import ACCURACY, Metric
from studies.results import TrialRecord

FIXTURES = Path(__file__).parent / "fixtures"
FROZEN = FIXTURES / "accuracy_study.json"


def accuracy_trials() -> list[TrialRecord]:
    """The frozen study's trials, from the script that froze it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "freeze_accuracy_study", FIXTURES / "freeze_accuracy_study.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trials: list[TrialRecord] = module.accuracy_trials()
    return trials


NATS = Metric(
    name="val_loss",
    label="validation loss",
    unit="nats/char",
    direction="lower",
    failed_value=math.log(65),
    threshold=0.05,
)


def test_an_accuracy_study_summarises_exactly_as_before() -> None:
    frozen = json.loads(FROZEN.read_text())
    summary = summarize(accuracy_trials(), study_id="frozen", name="frozen", no_accuracy_pct=10.0)
    now = summary.to_dict()
    assert now.pop("metric") == ACCURACY.model_dump()
    assert (now.pop("search"), now.pop("sampled")) == ("grid", None)  # issue 26's, for grids
    assert now == frozen["summary"]  # every number, bit for bit (JSON floats round-trip)
    assert format_table(summary) == frozen["table"]
    assert format_cells_csv(summary) == frozen["csv"]
    assert StudySummary.from_dict(frozen["summary"]).metric == ACCURACY  # old summary.json


def _loss_trial(
    optimizer: str, lr: float, seed: int, losses: list[float], **kw: str
) -> TrialRecord:
    return TrialRecord(
        trial_id=f"{optimizer}-{lr}-{seed}",
        optimizer=optimizer,
        lr=lr,
        warmup="none",
        warmup_steps=0,
        seed=seed,
        status=kw.get("status", "finished"),  # type: ignore[arg-type]
        history={"val_loss": losses},
    )


def test_a_lower_is_better_metric_is_summarised_in_its_direction() -> None:
    # final losses per lr: adam 1.50, 1.52, 2.00; radam 1.60, 1.61, 1.62 (one seed each)
    trials = [
        _loss_trial("adam", 0.1, 0, [3.0, 1.50]),
        _loss_trial("adam", 0.01, 0, [3.0, 1.52]),
        _loss_trial("adam", 0.001, 0, [3.0, 2.00]),
        _loss_trial("radam", 0.1, 0, [3.0, 1.60]),
        _loss_trial("radam", 0.01, 0, [3.0, 1.61]),
        _loss_trial("radam", 0.001, 0, [3.0, 1.62]),
    ]
    summary = summarize(trials, metric=NATS)
    adam = next(o for o in summary.optimizers if o.optimizer == "adam")
    radam = next(o for o in summary.optimizers if o.optimizer == "radam")
    assert adam.best_acc_pct == pytest.approx(1.50) and adam.best_lr == 0.1
    assert adam.worst_acc_pct == pytest.approx(2.00)
    assert adam.spread_pct == pytest.approx(0.50)
    assert adam.mean_regret_pct == pytest.approx((0 + 0.02 + 0.50) / 3)
    assert adam.share_within_1pt == pytest.approx(2 / 3)  # within 0.05 nats of 1.50
    assert radam.mean_regret_pct == pytest.approx((0 + 0.01 + 0.02) / 3)
    assert radam.share_within_1pt == 1.0
    # expected best at k=1 is the mean, at k=N the best (the minimum)
    assert adam.expected_max_pct[0] == pytest.approx((1.50 + 1.52 + 2.00) / 3)
    assert adam.expected_max_pct[-1] == pytest.approx(1.50)
    assert adam.expected_max_pct == sorted(adam.expected_max_pct, reverse=True)
    cell = next(c for c in summary.cells if (c.optimizer, c.lr) == ("adam", 0.1))
    assert cell.best_acc_mean_pct == pytest.approx(1.50)  # the lowest over epochs
    assert "nats/char" in summary.verdict
    assert summary.metric == NATS


def test_a_run_without_a_finite_value_counts_at_the_metrics_failed_level() -> None:
    trials = [
        _loss_trial("adam", 0.1, 0, [math.nan], status="diverged"),
        _loss_trial("adam", 0.01, 0, [2.0, 1.5]),
    ]
    summary = summarize(trials, metric=NATS)
    cell = next(c for c in summary.cells if c.lr == 0.1)
    assert cell.final_acc_mean_pct == pytest.approx(math.log(65))
    adam = summary.optimizers[0]
    assert adam.best_lr == 0.01 and adam.worst_acc_pct == pytest.approx(math.log(65))


def test_tables_and_csv_name_the_metric_and_its_unit() -> None:
    trials = [_loss_trial("adam", lr, 0, [2.0, 1.5 + lr]) for lr in (0.1, 0.01)]
    summary = summarize(trials, metric=NATS)
    table = format_table(summary)
    assert "validation loss, nats/char" in table and "accuracy" not in table
    csv_head = format_cells_csv(summary).splitlines()[0]
    assert "final_val_loss_mean" in csv_head and "acc" not in csv_head


def test_every_figure_labels_its_axes_with_the_metric() -> None:
    from studies.analysis.figures import expected_max_figure, figure6, lr_sensitivity

    trials = [
        _loss_trial(opt, lr, seed, [3.0, 1.5 + lr + 0.01 * seed])
        for opt in ("adam", "radam")
        for lr in (0.1, 0.01)
        for seed in (0, 1)
    ]
    summary = summarize(trials, metric=NATS)
    labels: list[str] = []
    for fig in (figure6(summary), lr_sensitivity(summary), expected_max_figure(summary)):
        labels += [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
        labels.append(fig.texts[0].get_text() if fig.texts else "")
        labels += [ax.get_title() for ax in fig.axes]
    text = " | ".join(labels)
    assert "validation loss (nats/char)" in text
    assert "final validation loss (nats/char)" in text
    assert "expected best final validation loss (nats/char)" in text
    assert "accuracy" not in text.replace("Expected best", "")
