"""One trial, without Ray: it learns digits, it is reproducible, it resumes exactly, and a
diverging one stops at once and says so."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from studies.spec import StudySpec, TrialConfig
from studies.training.trainables import train_trial, trial_from_config
from studies.training.trial import EPOCH_KEYS, run_trial
from studies.training.trial_state import TrialState


def _spec(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "digits",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam", "adam", "sgd"],
        "learning_rates": [0.01],
        "epochs": 3,
        "batch_size": 64,
    }
    return StudySpec.parse(base | changes)


def test_radam_learns_digits_and_reports_every_epoch() -> None:
    history = run_trial(_spec(), TrialConfig(optimizer="radam", lr=0.01, seed=0), threads=1)
    assert [m["epoch"] for m in history] == [1, 2, 3]
    assert all(set(EPOCH_KEYS) <= set(m) for m in history)
    assert history[-1]["test_acc"] > 0.9  # chance is 0.1
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert not any(m["diverged"] for m in history)
    assert history[-1]["train_seconds"] > history[0]["train_seconds"] > 0
    assert history[-1]["node"]


def test_same_seed_same_curve_other_seed_other_curve() -> None:
    spec = _spec(epochs=2)
    trial = TrialConfig(optimizer="adam", lr=0.003, seed=1)
    first = run_trial(spec, trial, threads=1)
    again = run_trial(spec, trial, threads=1)
    other = run_trial(spec, trial.model_copy(update={"seed": 2}), threads=1)
    assert [m["test_loss"] for m in first] == [m["test_loss"] for m in again]
    assert [m["test_loss"] for m in first] != [m["test_loss"] for m in other]


def test_warmup_and_step_decay_set_the_learning_rate() -> None:
    # digits: 1,437 training images, batch 64 -> 23 iterations per epoch
    spec = _spec(
        epochs=3,
        lr_milestones=[2],
        optimizers=["adamw"],
        warmup={"kind": "linear", "steps": [1000]},
    )
    history = run_trial(
        spec, TrialConfig(optimizer="adamw", lr=0.01, warmup="linear", warmup_steps=1000), threads=1
    )
    lrs = [m["lr"] for m in history]
    assert lrs[0] < lrs[1] < 0.01 * 0.1  # still warming up (iteration 46 of 1000)
    assert lrs[2] < lrs[1]  # x0.1 from epoch index 2


def test_a_resumed_trial_continues_the_same_curve(tmp_path: Path) -> None:
    spec = _spec(epochs=3)
    trial = TrialConfig(optimizer="sgd", lr=0.05, seed=3)
    whole = run_trial(spec, trial, threads=1)

    saved: dict[int, Path] = {}

    def checkpoint(metrics: dict[str, Any], state: TrialState) -> None:
        directory = tmp_path / f"epoch{metrics['epoch']}"
        directory.mkdir()
        state.save(directory)
        saved[metrics["epoch"]] = directory

    first_part = run_trial(spec, trial, threads=1, on_epoch=checkpoint, epochs=1)
    rest = run_trial(spec, trial, threads=1, resume_from=TrialState.read(saved[1]))
    assert [m["epoch"] for m in first_part + rest] == [1, 2, 3]
    assert [m["test_loss"] for m in first_part + rest] == [m["test_loss"] for m in whole]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_diverging_trial_stops_at_once_and_says_so(optimizer: str) -> None:
    history = run_trial(
        _spec(epochs=3), TrialConfig(optimizer=optimizer, lr=10.0, seed=0), threads=1
    )
    assert len(history) == 1  # stopped in its first epoch
    last = history[-1]
    assert last["diverged"] is True
    assert math.isnan(last["test_acc"])  # not evaluated: the weights are garbage
    assert last["objective"] == 0.0  # no finite accuracy before it diverged


def test_a_diverging_trial_keeps_the_accuracy_it_had() -> None:
    # A fine first epoch, then the divergence threshold is crossed: the objective keeps the
    # last finite accuracy.
    spec = _spec(epochs=3, divergence_loss=1e-9)  # every batch "diverges" ...
    history = run_trial(spec, TrialConfig(optimizer="sgd", lr=0.05), threads=1)
    assert len(history) == 1 and history[0]["objective"] == 0.0
    spec = _spec(epochs=3, divergence_loss=None)
    history = run_trial(spec, TrialConfig(optimizer="adam", lr=10.0), threads=1)
    assert len(history) == 3  # without the threshold Adam at lr 10 "trains" on, dead
    assert max(m["test_acc"] for m in history) < 0.25


class _RecordingSession:
    def __init__(self, resume: dict[str, Any] | None = None) -> None:
        self.reports: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self._resume = resume

    def report(self, metrics: dict[str, Any], state: TrialState) -> None:
        self.reports.append(metrics)
        self.states.append(copy.deepcopy(state.state_dict()))  # the live tensors move on

    def restore(self) -> dict[str, Any] | None:
        return self._resume


def test_train_trial_reads_a_tune_config_and_resumes_from_the_session() -> None:
    spec = _spec(epochs=2)
    config = {
        "spec": spec.to_dict(),
        "trial": TrialConfig(optimizer="radam", lr=0.01).model_dump(),
        "data_dir": None,
    }
    first = _RecordingSession()
    train_trial(config, session=first)
    assert [m["epoch"] for m in first.reports] == [1, 2]
    resumed = _RecordingSession(resume=first.states[0])
    train_trial(config, session=resumed)
    assert [m["epoch"] for m in resumed.reports] == [2]
    assert resumed.reports[0]["test_loss"] == first.reports[1]["test_loss"]


def test_optuna_configs_pick_the_seed_by_repeat_index() -> None:
    spec = _spec(seeds=[5, 7], search={"kind": "optuna", "num_samples": 3})
    cfg = trial_from_config({"optimizer": "sgd", "lr": 0.02, "__trial_index__": 1}, spec)
    assert cfg == TrialConfig(optimizer="sgd", lr=0.02, seed=7)
    sampled = {"optimizer": "sgd", "lr": 0.02, "__trial_index__": 0, "repeat": 1, "sample": 4}
    cfg = trial_from_config(sampled, spec)
    assert (cfg.seed, cfg.repeat, cfg.sample) == (5, 1, 4)
    assert cfg.key == "sgd-lr0.02-none-s5-r1n4"


def test_the_spec_sets_augmentation_and_the_test_subset_without_reloading() -> None:
    import torch

    from studies.training.trial import get_dataset

    cpu = torch.device("cpu")
    whole = get_dataset(_spec(), data_dir=None, device=cpu)
    part = get_dataset(_spec(test_subset=100, augment=True), data_dir=None, device=cpu)
    assert part.num_test == 100 and whole.num_test > 100
    assert part.augment and not whole.augment
    assert part.train_x is whole.train_x  # the cached tensors, not a copy
    # and the other way round: a smaller test_subset first does not cut what a later spec gets
    small = get_dataset(_spec(test_subset=50, train_subset=200), data_dir=None, device=cpu)
    larger = get_dataset(_spec(test_subset=120, train_subset=200), data_dir=None, device=cpu)
    assert (small.num_test, larger.num_test) == (50, 120)
