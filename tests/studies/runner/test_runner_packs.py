"""Packed studies on real Ray and real MLflow (SQLite): one Tune trial per pack, a nested run
per member with its own curve and status, and a worker killed mid-pack resumes every member
from its last epoch."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from studies import tracking
from studies.runner import driver
from studies.runner.recording import StudyProgress
from studies.runner.trainable import TunePackSession
from studies.spec import StudySpec
from studies.training.trial import run_trial

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    if ray.is_initialized():
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


@pytest.fixture()
def where(tmp_path: Path) -> dict[str, Any]:
    return {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "storage_path": tmp_path / "ray_results",
    }


def _digits(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "digits-packs",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["adam", "sgd"],
        "learning_rates": {"adam": [0.003, 10.0], "sgd": [0.05, 0.02]},
        "epochs": 2,
        "batch_size": 64,
        "pack_size": 2,
    }
    return StudySpec.parse(base | changes)


def _tune_trials(storage: Path, study_id: str) -> list[list[int]]:
    """The epochs each Tune trial of the study reported (its result.json)."""
    return [
        [json.loads(line)["epoch"] for line in path.read_text().splitlines()]
        for path in sorted((storage / study_id).glob("*/result.json"))
    ]


def test_a_packed_grid_records_every_member_as_its_own_trial(
    local_ray: None, where: dict[str, Any]
) -> None:
    spec = _digits()
    seen: list[StudyProgress] = []
    record = driver.run_spec(
        spec, progress=lambda p: seen.append(StudyProgress(**vars(p))), **where
    )
    assert record.status == "succeeded"
    assert len(_tune_trials(where["storage_path"], record.study_id)) == 2  # 4 points, 2 packs

    trials = {
        t.trial_id: t
        for t in tracking.store_for(where["tracking_uri"]).load_trials(record.study_id)
    }
    assert set(trials) == {c.key for c in spec.trial_configs()}
    assert len({t.run_id for t in trials.values()}) == 4  # a nested run per member
    diverged = trials.pop("adam-lr10-none-s0")  # packed with adam at 0.003: that one goes on
    assert diverged.status == "diverged" and len(diverged.history["train_loss"]) == 1
    for cfg in spec.trial_configs():
        if cfg.key not in trials:
            continue
        trial = trials[cfg.key]
        assert trial.status == "finished"
        assert trial.node and trial.train_seconds and trial.train_seconds > 0
        alone = run_trial(spec, cfg, threads=1)
        for metric in ("train_loss", "test_loss", "test_acc", "lr"):
            assert trial.history[metric] == pytest.approx([m[metric] for m in alone], rel=1e-4)
    last = seen[-1]
    assert (last.finished, last.diverged, last.failed, last.running) == (3, 1, 0, 0)
    assert last.started == 4
    assert last.best_acc == max(t.final_acc or 0 for t in trials.values())


def _crash_once(workdir: Path, *, after_epoch: int) -> Callable[[dict[str, Any]], None]:
    """The runner's pack trainable, wrapped so that its worker dies (``os._exit``) on its first
    attempt once epoch ``after_epoch`` is reported and checkpointed; each reported epoch is
    noted in ``workdir/epochs.log`` as ``attempt pid epoch``."""
    from studies.training.trainables import train_pack

    class CrashOnceSession(TunePackSession):
        def __init__(self, attempt: int) -> None:
            self.attempt = attempt

        def report(self, rows: list[dict[str, Any] | None], state: Any) -> None:
            super().report(rows, state)
            with (workdir / "epochs.log").open("a") as log:
                log.write(f"{self.attempt} {os.getpid()} {state.epoch}\n")
            if self.attempt == 1 and state.epoch == after_epoch:
                os._exit(1)

    def trainable(config: dict[str, Any]) -> None:
        try:
            os.close(os.open(workdir / "crashed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            attempt = 1
        except FileExistsError:
            attempt = 2
        train_pack(config, session=CrashOnceSession(attempt))

    return trainable


def test_a_pack_whose_worker_dies_resumes_every_member_from_its_last_epoch(
    local_ray: None, where: dict[str, Any], tmp_path: Path
) -> None:
    spec = _digits(
        optimizers=["sgd", "radam"],
        learning_rates=[0.05],
        epochs=4,
        train_subset=256,
        test_subset=200,
        pack_size=2,
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
    runs: dict[int, list[tuple[int, int]]] = {}
    for line in (tmp_path / "epochs.log").read_text().splitlines():
        attempt, pid, epoch = map(int, line.split())
        runs.setdefault(attempt, []).append((pid, epoch))
    assert [epoch for _, epoch in runs[1]] == [1, 2]
    assert [epoch for _, epoch in runs[2]] == [3, 4]  # the retry started after the checkpoint
    assert {pid for pid, _ in runs[1]}.isdisjoint(pid for pid, _ in runs[2])
    assert _tune_trials(where["storage_path"], created.study_id) == [[1, 2, 3, 4]]

    trials = {t.trial_id: t for t in tracking.store_for(uri).load_trials(created.study_id)}
    assert set(trials) == {c.key for c in spec.trial_configs()}
    for cfg in spec.trial_configs():
        trial = trials[cfg.key]
        assert trial.status == "finished"
        whole = run_trial(spec, cfg, threads=1)  # every member's state was restored
        for metric in ("train_loss", "test_loss", "test_acc"):
            assert trial.history[metric] == pytest.approx([m[metric] for m in whole], rel=1e-4)
    last = seen[-1]
    assert (last.finished, last.failed, last.running, last.started) == (2, 0, 0, 2)
