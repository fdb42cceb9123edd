"""The runner on real Ray (one local session for the module) and real MLflow (SQLite in a tmp
dir): a grid study leaves a parent run and one nested run per trial with every epoch; a
diverging trial is data, not a failure; an interrupted study resumes without re-running the
trials that finished; an Optuna study repeats each sample over the seeds."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from studies import runner, tracking
from studies.errors import ClusterError, StudyStateError
from studies.runner import StudyProgress
from studies.spec import StudySpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    if ray.is_initialized():  # someone else's session in this process: not ours to stop
        yield
        return
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # One MLflow store for the module (creating a SQLite store takes seconds); each test
    # makes its own study in it.
    home = tmp_path_factory.mktemp("runner")
    return {
        "tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
        "storage_path": home / "ray_results",
    }


def _digits(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "digits-runner",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["adam", "sgd"],
        "learning_rates": {"adam": [0.003, 10.0], "sgd": [0.05]},
        "epochs": 2,
        "batch_size": 64,
    }
    return StudySpec.parse(base | changes)


def test_grid_study_records_every_trial_and_epoch_and_a_divergence(
    local_ray: None, where: dict[str, Any]
) -> None:
    seen: list[StudyProgress] = []
    spec = _digits()
    record = runner.run_spec(
        spec, progress=lambda p: seen.append(StudyProgress(**vars(p))), **where
    )
    assert record.status == "succeeded"
    assert record.name == "digits-runner"

    trials = {
        t.trial_id: t
        for t in tracking.load_trials(record.study_id, tracking_uri=where["tracking_uri"])
    }
    assert set(trials) == {c.key for c in spec.trial_configs()}
    assert len({t.run_id for t in trials.values()}) == 3  # one nested run per trial

    for key in ("adam-lr0.003-none-s0", "sgd-lr0.05-none-s0"):
        trial = trials[key]
        assert trial.status == "finished"
        for metric in ("train_loss", "test_loss", "test_acc", "lr"):
            assert len(trial.history[metric]) == spec.epochs, (key, metric)
        assert trial.final_acc is not None and trial.final_acc > 0.8
        assert trial.node and trial.train_seconds and trial.train_seconds > 0

    diverged = trials["adam-lr10-none-s0"]
    assert diverged.status == "diverged"
    assert len(diverged.history["train_loss"]) == 1  # stopped in its first epoch

    last = seen[-1]
    assert (last.finished, last.diverged, last.failed, last.running) == (2, 1, 0, 0)
    assert last.best_acc == max(
        trials[k].final_acc or 0 for k in trials if k != "adam-lr10-none-s0"
    )

    with pytest.raises(StudyStateError, match="already succeeded"):
        runner.run_study(record.study_id, **where)


def test_an_interrupted_study_resumes_without_rerunning_finished_trials(
    local_ray: None, where: dict[str, Any]
) -> None:
    spec = _digits(
        optimizers=["sgd"],
        learning_rates=[0.2, 0.1, 0.05, 0.02],
        max_concurrent_trials=1,
    )
    uri = where["tracking_uri"]
    interrupted = False

    def interrupt_after_two(progress: StudyProgress) -> None:
        nonlocal interrupted
        if progress.done >= 2 and not interrupted:
            interrupted = True
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; Tune saves and stops

    first = runner.run_spec(spec, progress=interrupt_after_two, **where)
    assert first.status == "cancelled"
    before = {t.trial_id: t for t in tracking.load_trials(first.study_id, tracking_uri=uri)}
    finished_before = {k for k, t in before.items() if t.status == "finished"}
    assert 2 <= len(finished_before) < 4

    with pytest.raises(StudyStateError, match="--resume"):
        runner.run_study(first.study_id, **where)

    progress: list[StudyProgress] = []
    second = runner.run_study(
        first.study_id,
        resume=True,
        progress=lambda p: progress.append(StudyProgress(**vars(p))),
        **where,
    )
    assert second.status == "succeeded"
    assert progress[-1].started == 4 - len(finished_before)  # only the unfinished ones ran
    assert progress[-1].done == 4

    after = {t.trial_id: t for t in tracking.load_trials(first.study_id, tracking_uri=uri)}
    assert set(after) == {c.key for c in spec.trial_configs()}
    for key, trial in after.items():
        assert trial.status == "finished"
        assert trial.history["test_acc"] and len(trial.history["test_acc"]) == spec.epochs, key
    for key in finished_before:  # untouched: the same run, the same numbers
        assert after[key].run_id == before[key].run_id
        assert after[key].history == before[key].history


def test_optuna_repeats_each_sample_over_the_seeds(
    local_ray: None, where: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROBUSTNESS_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    spec = _digits(
        optimizers=["radam", "sgd"],
        learning_rates=[0.001, 0.1],
        seeds=[0, 1],
        epochs=1,
        search={"kind": "optuna", "num_samples": 2},
    )
    record = runner.run_spec(spec, **where)
    assert record.status == "succeeded"
    trials = tracking.load_trials(record.study_id, tracking_uri=where["tracking_uri"])
    assert len(trials) == spec.num_trials == 4
    by_point: dict[tuple[str, float], set[int]] = {}
    for trial in trials:
        assert 0.001 <= trial.lr <= 0.1 and trial.optimizer in ("radam", "sgd")
        by_point.setdefault((trial.optimizer, trial.lr), set()).add(trial.seed)
    assert all(seeds == {0, 1} for seeds in by_point.values())  # each sample, every seed


def test_a_study_the_cluster_cannot_place_is_refused(
    local_ray: None, where: dict[str, Any]
) -> None:
    spec = _digits(resources_per_trial={"cpu": 1, "gpu": 0.5})
    with pytest.raises(ClusterError, match=r"resources_per_trial\.gpu=0"):
        runner.run_spec(spec, **where)
