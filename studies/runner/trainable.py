"""The function Tune runs for every trial, in Ray's workers, and the sessions through which a
trial or a pack reports and checkpoints its epochs (``studies.training`` imports no Ray).

Tune's workers import this module (by ``tune_trainable``'s name): nothing here imports MLflow,
which only the driver uses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from ray import tune

from studies.training.pack_state import PackState
from studies.training.trainables import pack_result, train_pack, train_trial
from studies.training.trial_state import TrialState

TrainableFn = Callable[[dict[str, Any]], None]


class TuneSession:
    """Reports and checkpoints a trial's epochs through Ray Tune (``studies.training`` has no
    Ray Tune import of its own)."""

    def report(self, metrics: dict[str, Any], state: TrialState) -> None:
        with tempfile.TemporaryDirectory(prefix="trial-state-") as tmp:
            state.save(tmp)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return TrialState.read(directory)


class TunePackSession:
    """Reports and checkpoints a pack's epochs through Ray Tune: one result per epoch holding
    every member's row and status (``studies.training.trainables.pack_result``), one checkpoint
    holding every member's state."""

    def report(self, rows: list[dict[str, Any] | None], state: PackState) -> None:
        with tempfile.TemporaryDirectory(prefix="pack-state-") as tmp:
            state.save(tmp)
            tune.report(pack_result(rows, state), checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return PackState.read(directory)


def tune_trainable(config: dict[str, Any]) -> None:
    """The function trainable handed to Tune: a pack (``config["pack"]``) or one trial."""
    if "pack" in config:
        train_pack(config, session=TunePackSession())
    else:
        train_trial(config, session=TuneSession())


def trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)  # short, unique; the default repeats the whole config
