"""The ``Tuner`` of a study, and resuming Tune's saved one.

A grid is one ``tune.grid_search`` over the spec's ``TrialConfig`` points (the spec decides
which optimizers cross which warmups), or over packs of them (``pack_size``); a sampled
study (``optuna``, ``random``) is ``search.FairSearch``: one search per optimizer and repeat,
the same budget for each. Each trial gets ``resources_per_trial``
(``tune.with_resources``); actors are reused and the dataset is cached per worker process;
``FailureConfig(max_failures)`` retries a crashed trial from its last checkpoint (one per
epoch, the two latest kept). An interrupted study's experiment state is restored with
``Tuner.restore`` (finished trials are not run again, interrupted ones continue from their
last epoch), unless it is unreadable (``restorable``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import JsonLoggerCallback

from studies import paths
from studies.runner.recording import RecordingCallback
from studies.runner.search import search_alg
from studies.runner.trainable import TrainableFn, trial_dirname, tune_trainable
from studies.spec import StudySpec
from studies.training.pack_plan import plan_packs


def with_resources(trainable_fn: TrainableFn, spec: StudySpec) -> Any:
    resources = spec.resources_per_trial
    return tune.with_resources(trainable_fn, {"cpu": resources.cpu, "gpu": resources.gpu})


def build_tuner(
    spec: StudySpec,
    study_id: str,
    callback: RecordingCallback,
    *,
    storage_path: Path,
    data_dir: str | None,
    skip_keys: frozenset[str] = frozenset(),
    trainable_fn: TrainableFn = tune_trainable,
    pack_size: int = 1,
) -> tune.Tuner:
    """A fresh Tuner for the study; grid points in ``skip_keys`` (already recorded) are left
    out. ``trainable_fn`` is the function Tune runs per trial (see ``run_study``); with
    ``pack_size`` > 1 a grid's points go in packs of at most that many, one Tune trial each
    (``studies.training.pack``)."""
    trainable = with_resources(trainable_fn, spec)
    constants: dict[str, Any] = {"spec": spec.to_dict(), "data_dir": data_dir}
    if spec.search.kind == "grid" and pack_size > 1:
        todo = [c for c in spec.trial_configs() if c.key not in skip_keys]
        packs = [[c.model_dump() for c in pack] for pack in plan_packs(todo, pack_size)]
        param_space: dict[str, Any] = {**constants, "pack": tune.grid_search(packs)}
        tune_config = tune.TuneConfig(
            metric="objective",
            mode="max",
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_dirname_creator=trial_dirname,
        )
    elif spec.search.kind == "grid":
        points = [c.model_dump() for c in spec.trial_configs() if c.key not in skip_keys]
        param_space = {**constants, "trial": tune.grid_search(points)}
        tune_config = tune.TuneConfig(
            metric="objective",
            mode="max",
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_dirname_creator=trial_dirname,
        )
    else:
        param_space = {}
        tune_config = tune.TuneConfig(
            metric="objective",
            mode="max",
            search_alg=search_alg(spec, study_id, constants),
            num_samples=spec.num_trials,
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_dirname_creator=trial_dirname,
        )
    run_config = tune.RunConfig(
        name=study_id,
        storage_path=str(storage_path),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # see TUNE_GLOBAL_CHECKPOINT_S
        # result.json only (what Tuner.restore reads back); no CSV or TensorBoard files
        callbacks=[callback, JsonLoggerCallback()],  # type: ignore[no-untyped-call]
        verbose=0,
        log_to_file=True,
    )
    return tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
    )


def restore_tuner(
    experiment_dir: Path,
    callback: RecordingCallback,
    spec: StudySpec,
    *,
    trainable_fn: TrainableFn = tune_trainable,
) -> tune.Tuner:
    """Tune's saved experiment, with this call's recording callback in place of the saved one
    (whose progress display and MLflow run ids do not survive pickling)."""
    trainable = with_resources(trainable_fn, spec)
    tuner = tune.Tuner.restore(
        str(experiment_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
    )
    # Tuner.restore takes no RunConfig; the restored one is reachable only here.
    run_config = tuner._local_tuner.get_run_config()  # type: ignore[union-attr]
    run_config.callbacks = [callback, JsonLoggerCallback()]  # type: ignore[no-untyped-call]
    return tuner


def restorable(experiment_dir: Path) -> bool:
    """Tune can restore the experiment: its state exists and the newest state file reads.

    A driver SIGKILLed early (before Tune first flushed its state, seconds in) leaves empty
    state files, and ``Tuner.restore`` then runs trials without their configs. Such a folder
    is moved aside (``<id>.unrestorable-<n>``) and the study is built afresh, skipping the
    trials the record has as done; a trial it had started continues its record from the
    epoch after the last one recorded (it trains again from scratch, its earlier epochs are
    not logged twice)."""
    if not tune.Tuner.can_restore(str(experiment_dir)):
        return False
    states = sorted(experiment_dir.glob("experiment_state-*.json"))
    try:
        json.loads(states[-1].read_text()) if states else None
        return bool(states)
    except (OSError, ValueError):
        n = len(list(experiment_dir.parent.glob(f"{experiment_dir.name}.unrestorable-*")))
        experiment_dir.rename(experiment_dir.with_name(f"{experiment_dir.name}.unrestorable-{n}"))
        return False


def experiment_dir(study_id: str, storage_path: str | os.PathLike[str] | None = None) -> Path:
    """Where Tune keeps a study's experiment state and checkpoints."""
    return (Path(storage_path) if storage_path is not None else paths.storage_path()) / study_id
