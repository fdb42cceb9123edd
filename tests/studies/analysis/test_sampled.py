"""A sampled study's report from its records: summary, table, figures, CSV (real SQLite
MLflow; the trials' curves are synthetic, the training is not under test here)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from studies import tracking
from studies.analysis import figures, report
from studies.analysis.sampled import summarize_sampled
from studies.analysis.tables import format_table
from studies.results import TrialRecord
from studies.spec import StudySpec, TrialConfig, trial_params
from studies.status import TrialStatus

SPEC = {
    "name": "sampled-report",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["radam", "adamw", "sgd"],
    "learning_rates": [0.0001, 0.1],
    "warmup": {"kinds": ["linear"], "steps": [10, 1000], "optimizers": ["adamw"]},
    "seeds": [0, 1],
    "epochs": 2,
    "search": {"kind": "random", "num_samples": 5, "repeats": 2},
}


def _acc(optimizer: str, lr: float, seed: int) -> float:
    """A peaked surface over log lr; SGD's 3 points lower."""
    peak = {"radam": -2.5, "adamw": -2.7, "sgd": -1.5}[optimizer]
    return 0.9 - 0.05 * (math.log10(lr) - peak) ** 2 - 0.03 * (optimizer == "sgd") + 0.002 * seed


def _configs(spec: StudySpec) -> list[TrialConfig]:
    rng = np.random.default_rng(0)
    out = []
    for opt in spec.optimizers:
        for r in range(spec.search.repeats):
            for s in range(spec.search.num_samples):
                lr = float(10 ** rng.uniform(-4, -1))
                steps = int(rng.integers(10, 1000)) if opt == "adamw" else 0
                for seed in spec.seeds:
                    out.append(
                        TrialConfig(
                            optimizer=opt,  # type: ignore[arg-type]
                            lr=lr,
                            warmup="linear" if steps else "none",
                            warmup_steps=steps,
                            seed=seed,
                            repeat=r,
                            sample=s,
                        )
                    )
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    spec = StudySpec.parse(SPEC)
    store = tracking.store_for(uri)
    record = store.create_study(spec.model_dump(mode="json"))
    store.set_study_status(record.study_id, "running")
    for cfg in _configs(spec):
        run_id = store.start_trial(record.study_id, cfg.key, trial_params(spec, cfg))
        acc = _acc(cfg.optimizer, cfg.lr, cfg.seed)
        for epoch in (1, 2):
            store.log_epoch(run_id, epoch, {"test_acc": acc - 0.01 * (2 - epoch)})
        store.end_trial(run_id, "finished", node="test", train_seconds=0.1)
    out = tmp_path_factory.mktemp("report")
    report.finalize_study(record.study_id, tracking_uri=uri, out_dir=out)
    store.set_study_status(record.study_id, "succeeded")
    return uri, record.study_id, out


def test_the_report_has_a_row_and_a_search_per_optimizer(
    finished: tuple[str, str, Path],
) -> None:
    uri, study_id, _ = finished
    summary = report.load_summary(study_id, tracking_uri=uri)
    assert summary.search == "random" and summary.sampled is not None
    assert summary.comparisons == [] and summary.warmup_tables == []
    sampled = summary.sampled
    assert [o.optimizer for o in sampled.optimizers] == ["radam", "adamw", "sgd"]
    for opt in sampled.optimizers:
        assert opt.samples == 10 and opt.repeats == 2  # 5 samples x 2 repeats, seeds averaged
        assert len(opt.curve_mean_pct) == 5 and len(opt.expected_max_pct) == 5
        curve = [v for v in opt.curve_mean_pct if v is not None]
        assert curve == sorted(curve)  # best so far never falls
        assert opt.expected_max_pct[-1] <= (opt.best_pct or 0) + 1e-9
        best = max(p.score_pct or -1 for p in opt.points)
        assert opt.best_pct == pytest.approx(best)
        assert (opt.best_warmup == "linear") == (opt.optimizer == "adamw")
    assert len(sampled.comparisons) == 3
    assert "2 repeats" in sampled.verdict and "4 repeats per optimizer" in sampled.verdict
    table = format_table(summary)
    assert "lr=" not in table and "E[best]@5" in table
    rows = [line for line in table.splitlines() if line.split()[:1] in (["RAdam"], ["AdamW"])]
    assert len(rows) == 2  # one row per optimizer, not one per sampled warmup length


def test_the_files_are_the_sampled_figures_and_the_csv_names_repeat_and_sample(
    finished: tuple[str, str, Path],
) -> None:
    uri, study_id, out = finished
    names = {p.name for p in out.iterdir()}
    assert {"tuning_curve.png", "tuning_curve.svg", "lr_samples.png", "lr_samples.svg"} <= names
    assert "figure6.png" not in names and "warmup.png" not in names
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 5 * 2
    assert {(r["repeat"], r["sample"]) for r in rows} == {
        (str(r), str(s)) for r in range(2) for s in range(5)
    }
    summary = report.load_summary(study_id, tracking_uri=uri)
    assert figures.figure_names(summary) == ["tuning_curve", "lr_samples"]
    assert figures.render(summary, "figure6") is None


def _trial(opt: str, repeat: int, sample: int, acc: float) -> TrialRecord:
    return TrialRecord(
        trial_id=f"{opt}-{repeat}-{sample}",
        optimizer=opt,
        lr=0.01,
        warmup="none",
        warmup_steps=0,
        seed=0,
        status=TrialStatus("finished"),
        history={"test_acc": [acc]},
        repeat=repeat,
        sample=sample,
    )


def test_tpe_has_no_closed_form_and_lower_is_better_flips_the_best() -> None:
    trials = [_trial("sgd", 0, s, a) for s, a in enumerate([0.5, 0.7, 0.6])]
    tpe = summarize_sampled(trials, kind="optuna", num_samples=3, repeats=1)
    (sgd,) = tpe.optimizers
    assert sgd.expected_max_pct == [] and sgd.best_pct == pytest.approx(70.0)
    assert sgd.curve_mean_pct == pytest.approx([50.0, 70.0, 70.0])
    assert sgd.area_pct == pytest.approx(190.0 / 3)
    lower = summarize_sampled(
        trials, kind="random", num_samples=3, repeats=1, higher_is_better=False
    )
    (sgd,) = lower.optimizers
    assert sgd.best_pct == pytest.approx(50.0)
    assert sgd.curve_mean_pct == pytest.approx([50.0, 50.0, 50.0])
    assert sgd.expected_max_pct[0] == pytest.approx(60.0)  # k = 1: the mean
    assert sgd.expected_max_pct[-1] == pytest.approx(50.0)  # k = N: the best (lowest)
