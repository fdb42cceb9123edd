"""The runner on real Ray (one local session for the module) and real MLflow (SQLite in a tmp
dir): a grid study leaves a parent run and one nested run per trial with every epoch; a
diverging trial is data, not a failure; an interrupted study resumes without re-running the
trials that finished; a trial whose worker crashes is retried from its last checkpoint; an Optuna
study repeats each sample over the seeds."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from mlflow.tracking import MlflowClient

from studies import tracking
from studies.errors import ClusterError, StudyStateError
from studies.runner import driver
from studies.runner.recording import StudyProgress
from studies.runner.trainable import TuneSession
from studies.spec import StudySpec, TrialConfig
from studies.training.trainables import train_trial
from studies.training.trial import run_trial

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
    record = driver.run_spec(
        spec, progress=lambda p: seen.append(StudyProgress(**vars(p))), **where
    )
    assert record.status == "succeeded"
    assert record.name == "digits-runner"

    trials = {
        t.trial_id: t
        for t in tracking.store_for(where["tracking_uri"]).load_trials(record.study_id)
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
        driver.run_study(record.study_id, **where)


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

    first = driver.run_spec(spec, progress=interrupt_after_two, **where)
    assert first.status == "cancelled"
    before = {t.trial_id: t for t in tracking.store_for(uri).load_trials(first.study_id)}
    finished_before = {k for k, t in before.items() if t.status == "finished"}
    assert 2 <= len(finished_before) < 4

    with pytest.raises(StudyStateError, match="--resume"):
        driver.run_study(first.study_id, **where)

    progress: list[StudyProgress] = []
    second = driver.run_study(
        first.study_id,
        resume=True,
        progress=lambda p: progress.append(StudyProgress(**vars(p))),
        **where,
    )
    assert second.status == "succeeded"
    assert progress[-1].started == 4 - len(finished_before)  # only the unfinished ones ran
    assert progress[-1].done == 4

    after = {t.trial_id: t for t in tracking.store_for(uri).load_trials(first.study_id)}
    assert set(after) == {c.key for c in spec.trial_configs()}
    for key, trial in after.items():
        assert trial.status == "finished"
        assert trial.history["test_acc"] and len(trial.history["test_acc"]) == spec.epochs, key
    for key in finished_before:  # untouched: the same run, the same numbers
        assert after[key].run_id == before[key].run_id
        assert after[key].history == before[key].history


def _crash_once(workdir: Path, *, after_epoch: int) -> Callable[[dict[str, Any]], None]:
    """The runner's real trainable, wrapped: each reported epoch is noted in
    ``workdir/epochs.log`` as ``attempt pid epoch``, and on its first attempt (no
    ``workdir/crashed`` yet) the worker process dies (``os._exit``) once epoch ``after_epoch``
    is reported and checkpointed. Defined in a function so that cloudpickle sends it to Ray's
    workers by value (they cannot import this test module)."""

    class CrashOnceSession(TuneSession):
        def __init__(self, attempt: int) -> None:
            self.attempt = attempt

        def report(self, metrics: dict[str, Any], state: Any) -> None:
            super().report(metrics, state)  # Tune has the result and its checkpoint
            with (workdir / "epochs.log").open("a") as log:
                log.write(f"{self.attempt} {os.getpid()} {metrics['epoch']}\n")
            if self.attempt == 1 and metrics["epoch"] == after_epoch:
                os._exit(1)  # the worker dies mid-trial, as a killed or OOMed process would

    def trainable(config: dict[str, Any]) -> None:
        try:  # atomic: only the first attempt creates the marker
            os.close(os.open(workdir / "crashed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            attempt = 1
        except FileExistsError:
            attempt = 2
        train_trial(config, session=CrashOnceSession(attempt))

    return trainable


def test_a_crashed_trial_is_retried_from_its_last_checkpoint(
    local_ray: None, where: dict[str, Any], tmp_path: Path
) -> None:
    spec = _digits(
        optimizers=["sgd"],
        learning_rates=[0.05],
        epochs=4,
        train_subset=256,
        test_subset=200,
        max_failures=1,
    )
    uri = where["tracking_uri"]
    created = tracking.store_for(uri).create_study(spec.to_dict(), num_trials=spec.num_trials)
    seen: list[StudyProgress] = []
    record = driver.run_study(
        created.study_id,
        progress=lambda p: seen.append(StudyProgress(**vars(p))),
        trainable_fn=_crash_once(tmp_path, after_epoch=2),
        **where,
    )
    assert record.status == "succeeded"

    # The worker really died after epoch 2, and a new one (another process) finished the
    # trial: it began at epoch 3, the epoch after the last checkpoint, and ran nothing twice.
    runs: dict[int, list[tuple[int, int]]] = {}
    for line in (tmp_path / "epochs.log").read_text().splitlines():
        attempt, pid, epoch = map(int, line.split())
        runs.setdefault(attempt, []).append((pid, epoch))
    assert sorted(runs) == [1, 2]
    assert [epoch for _, epoch in runs[1]] == [1, 2]
    assert [epoch for _, epoch in runs[2]] == [3, 4]
    assert {pid for pid, _ in runs[1]}.isdisjoint(pid for pid, _ in runs[2])

    # Tune's own record of the trial's results (result.json, appended to by the retry): each
    # epoch once, in order.
    (results,) = (where["storage_path"] / created.study_id).glob("*/result.json")
    reported = [json.loads(line)["epoch"] for line in results.read_text().splitlines()]
    assert reported == [1, 2, 3, 4]

    # MLflow: one nested run for the trial, finished, one value per epoch at steps 1..4; the
    # curve is the one an uninterrupted run of the trial draws (the state was restored, not
    # only the epoch counter).
    (trial,) = tracking.store_for(uri).load_trials(created.study_id)
    assert trial.trial_id == "sgd-lr0.05-none-s0"
    assert trial.status == "finished"
    assert trial.run_id is not None
    client = MlflowClient(uri)
    for metric in ("train_loss", "test_loss", "test_acc", "lr"):
        steps = [m.step for m in client.get_metric_history(trial.run_id, metric)]
        assert sorted(steps) == [1, 2, 3, 4], metric
    whole = run_trial(spec, TrialConfig(optimizer="sgd", lr=0.05, seed=0), threads=1)
    for metric in ("train_loss", "test_loss", "test_acc"):
        assert trial.history[metric] == pytest.approx([m[metric] for m in whole], rel=1e-5)

    last = seen[-1]
    assert (last.finished, last.diverged, last.failed) == (1, 0, 0)
    assert (last.running, last.started) == (0, 1)  # the retry is the same trial, not a second


def test_a_sampled_study_gives_every_optimizer_the_same_budget(
    local_ray: None, where: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TPE over three optimizers, two repeats: each optimizer gets its own searches, the
    same number of samples, each sample on every seed; the repeat and sample index are on
    every trial and its nested MLflow run (issue 26: one categorical TPE left RAdam out)."""
    monkeypatch.setenv("ROBUSTNESS_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    spec = _digits(
        optimizers=["radam", "adamw", "sgd"],
        learning_rates=[0.001, 0.1],
        warmup={"kinds": ["linear"], "steps": [10, 100], "optimizers": ["adamw"]},
        seeds=[0, 1],
        epochs=1,
        search={"kind": "optuna", "num_samples": 2, "repeats": 2},
    )
    record = driver.run_spec(spec, **where)
    assert record.status == "succeeded"
    trials = tracking.store_for(where["tracking_uri"]).load_trials(record.study_id)
    assert len(trials) == spec.num_trials == 3 * 2 * 2 * 2
    samples: dict[str, dict[tuple[int, int], set[int]]] = {}
    for trial in trials:
        assert 0.001 <= trial.lr <= 0.1
        if trial.optimizer == "adamw":
            assert trial.warmup == "linear" and 10 <= trial.warmup_steps <= 100
        else:
            assert (trial.warmup, trial.warmup_steps) == ("none", 0)
        assert trial.repeat is not None and trial.sample is not None
        samples.setdefault(trial.optimizer, {}).setdefault((trial.repeat, trial.sample), set()).add(
            trial.seed
        )
    counts = {opt: len(points) for opt, points in samples.items()}
    assert counts == {"radam": 4, "adamw": 4, "sgd": 4}  # no optimizer fewer than another
    for points in samples.values():
        assert set(points) == {(r, s) for r in range(2) for s in range(2)}
        assert all(seeds == {0, 1} for seeds in points.values())  # each sample, every seed
    params = MlflowClient(where["tracking_uri"]).get_run(trials[0].run_id or "").data.params
    assert (params["repeat"], params["sample"]) == (str(trials[0].repeat), str(trials[0].sample))


def test_a_study_the_cluster_cannot_place_is_refused(
    local_ray: None, where: dict[str, Any]
) -> None:
    spec = _digits(resources_per_trial={"cpu": 1, "gpu": 0.5})
    with pytest.raises(ClusterError, match=r"resources_per_trial\.gpu=0"):
        driver.run_spec(spec, **where)
