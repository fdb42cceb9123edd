"""Recording, in the driver: a Tune ``Callback`` that writes every trial to the study's store
(a nested run per trial, or per member of a pack) and keeps the progress counts.

- A nested run per trial, started when the trial starts; one ``log_epoch`` per reported
  epoch (a pack's members: one ``log_epochs`` for all), the end status
  (finished/diverged/failed) and the node.
- A resumed study never records an epoch twice nor reopens a trial the record has as
  finished: the record's epochs and finished trials are read first (``count_recorded``) and
  skipped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from ray import tune

from studies import tracking
from studies.results import epoch_metrics
from studies.spec import StudySpec, TrialConfig, trial_params
from studies.status import COUNTED_TRIAL
from studies.training.trainables import trial_from_config


@dataclasses.dataclass
class StudyProgress:
    """Counts a progress display needs; ``best_acc`` is a fraction (last-epoch test_acc)."""

    study_id: str
    total: int
    finished: int = 0
    diverged: int = 0
    failed: int = 0
    running: int = 0
    started: int = 0  # trials started by this call (a resumed study skips the finished ones)
    best_acc: float | None = None
    best_trial: str | None = None
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.finished + self.diverged + self.failed


ProgressFn = Callable[[StudyProgress], None]


class RecordingCallback(tune.Callback):
    """Writes every trial to MLflow through ``studies.tracking`` and keeps the progress counts.

    It is pickled with Tune's experiment state; the progress display is not (it is attached
    again when a study resumes).
    """

    def __init__(self, study_id: str, spec: StudySpec, *, tracking_uri: str) -> None:
        self.study_id = study_id
        self.spec_json = spec.to_json()
        self.tracking_uri = tracking_uri
        self._setup_runtime(spec)

    def _setup_runtime(self, spec: StudySpec) -> None:
        self.spec = spec
        self.progress = StudyProgress(self.study_id, spec.num_trials)
        self.display: ProgressFn | None = None
        self.run_ids: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self.keys: dict[str, str] = {}  # Tune trial id -> our trial key
        self.last_epoch: dict[str, int] = {}
        self.diverged: set[str] = set()
        self.ended: set[str] = set()
        # a resumed study: what the record already holds, by our trial key
        self.recorded_epochs: dict[str, int] = {}
        self.recorded_done: set[str] = set()
        self.replayed: set[str] = set()  # Tune trials of a key already recorded as done
        # Packs: each member has its own nested run, keyed by its grid point's key.
        self.packs: set[str] = set()  # Tune trial ids of packs started here
        self.member_runs: dict[str, str] = {}  # member key -> MLflow run id
        self.member_last_epoch: dict[str, int] = {}
        self.member_last_row: dict[str, dict[str, Any]] = {}
        self.members_ended: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "spec_json": self.spec_json,
            "tracking_uri": self.tracking_uri,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_runtime(StudySpec.from_json_cached(self.spec_json))

    def count_recorded(self) -> None:
        """Start the counts from what MLflow already holds (a resumed study). Failed trials
        are not counted: a resumed study runs them again."""
        for record in self.store.load_trials(self.study_id):
            self.recorded_epochs[record.trial_id] = record.epochs_done
            if record.status in COUNTED_TRIAL:
                self.recorded_done.add(record.trial_id)
                setattr(self.progress, record.status, getattr(self.progress, record.status) + 1)
                self._offer_best(record.trial_id, record.final(self.spec.measured.name))
                self.members_ended.add(record.trial_id)  # a restored pack does not redo it

    @property
    def logged(self) -> tuple[str, ...]:
        """The per-epoch metrics logged: ``EPOCH_METRICS`` and the workload's metric."""
        return epoch_metrics(self.spec.measured.name)

    @property
    def store(self) -> tracking.StudyStore:
        return tracking.store_for(self.tracking_uri)

    def _offer_best(self, key: str, acc: float | None) -> None:
        if acc is None or not math.isfinite(acc):
            return
        if self.progress.best_acc is None or self.spec.measured.better(acc, self.progress.best_acc):
            self.progress.best_acc, self.progress.best_trial = acc, key

    def _show(self) -> None:
        if self.display is not None:
            self.display(self.progress)

    def _key(self, trial: Any) -> tuple[str, TrialConfig]:
        cfg = trial_from_config(trial.config, self.spec)
        # a grid point's key names it; a sampled one's names its repeat and sample too
        unique = "trial" in trial.config or cfg.sample is not None
        key = cfg.key if unique else f"{cfg.key}-{trial.trial_id}"
        return key, cfg

    # Tune's hooks (all in the driver).

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if "pack" in trial.config:
            self._start_pack(trial)
            return
        # Tune calls this again when it retries a crashed trial (FailureConfig): the run is
        # reopened, but the trial was counted when it first started and is still running
        retried = trial.trial_id in self.run_ids or trial.trial_id in self.replayed
        key, cfg = self._key(trial)
        self.keys[trial.trial_id] = key
        if key in self.recorded_done:
            # Tune's saved state predates the trial's end (its driver died in between): the
            # record is complete, so Tune's re-run of it is not recorded
            self.replayed.add(trial.trial_id)
            return
        self.last_epoch.setdefault(trial.trial_id, self.recorded_epochs.get(key, 0))
        self.run_ids[trial.trial_id] = self.store.start_trial(
            self.study_id, key, trial_params(self.spec, cfg)
        )
        if not retried:
            self.progress.running += 1
            self.progress.started += 1
        self._show()

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if "members" in result:
            self._pack_result(result)
            return
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or "epoch" not in result:
            return
        epoch = int(result["epoch"])
        if epoch <= self.last_epoch.get(trial.trial_id, 0):
            return  # a retried trial reporting an epoch again
        self.last_epoch[trial.trial_id] = epoch
        # NaN kept: a diverged epoch's test metrics were not measured (tracking stores NaN)
        metrics = {name: float(result[name]) for name in self.logged if name in result}
        self.store.log_epoch(run_id, epoch, metrics)
        if result.get("diverged"):
            self.diverged.add(trial.trial_id)
        self._offer_best(self.keys[trial.trial_id], metrics.get(self.spec.measured.name))
        self._show()

    # Packs: one Tune trial, a nested run per member.

    def _start_pack(self, trial: Any) -> None:
        # A retried pack (FailureConfig) reopens its members' runs; they were counted once.
        retried = trial.trial_id in self.packs
        self.packs.add(trial.trial_id)
        opened = 0
        for raw in trial.config["pack"]:
            cfg = TrialConfig.model_validate(raw)
            if cfg.key in self.members_ended:
                continue
            self.member_last_epoch.setdefault(cfg.key, self.recorded_epochs.get(cfg.key, 0))
            self.member_runs[cfg.key] = self.store.start_trial(
                self.study_id, cfg.key, trial_params(self.spec, cfg)
            )
            opened += 1
        if not retried:
            self.progress.running += opened
            self.progress.started += opened
        self._show()

    def _pack_result(self, result: dict[str, Any]) -> None:
        # every member's epoch in one write (one transaction on a SQL store): the pack waits
        # in tune.report while this runs, so per-member writes would cost it K round trips
        rows: list[tuple[str, int, dict[str, float]]] = []
        ended: list[tuple[str, str]] = []
        for entry in result["members"]:
            key = str(entry["key"])
            run_id = self.member_runs.get(key)
            if run_id is None or key in self.members_ended:
                continue
            row = entry.get("row")
            if row is not None and int(row["epoch"]) > self.member_last_epoch.get(key, 0):
                epoch = int(row["epoch"])
                self.member_last_epoch[key] = epoch
                self.member_last_row[key] = row
                metrics = {name: float(row[name]) for name in self.logged if name in row}
                rows.append((run_id, epoch, metrics))
                self._offer_best(key, metrics.get(self.spec.measured.name))
            if entry["status"] != "running":
                ended.append((key, str(entry["status"])))
        self.store.log_epochs(rows)
        for key, status in ended:
            self._end_member(key, status)
        self._show()

    def _end_member(self, key: str, status: str) -> None:
        if key in self.members_ended or key not in self.member_runs:
            return
        self.members_ended.add(key)
        last = self.member_last_row.get(key, {})
        self.store.end_trial(
            self.member_runs[key],
            status,
            node=last.get("node"),
            train_seconds=last.get("train_seconds"),
        )
        self.progress.running = max(0, self.progress.running - 1)
        setattr(self.progress, status, getattr(self.progress, status) + 1)

    def _end_pack(self, trial: Any, status: str) -> None:
        """The pack's trial ended: members still open end with ``status``."""
        for raw in trial.config["pack"]:
            self._end_member(TrialConfig.model_validate(raw).key, status)
        self._show()

    def _end(self, trial: Any, status: str) -> None:
        if "pack" in trial.config:
            self._end_pack(trial, status)
            return
        if trial.trial_id in self.ended or trial.trial_id in self.replayed:
            return
        self.ended.add(trial.trial_id)
        last = trial.last_result or {}
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is not None:
            self.store.end_trial(
                run_id,
                status,
                node=last.get("node"),
                train_seconds=last.get("train_seconds"),
            )
        self.progress.running = max(0, self.progress.running - 1)
        setattr(self.progress, status, getattr(self.progress, status) + 1)
        self._show()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # a pack's members have ended with their own statuses; one still open did not get
        # to its last epoch, so it is not finished
        status = "failed" if "pack" in trial.config else None
        self._end(trial, status or ("diverged" if trial.trial_id in self.diverged else "finished"))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._end(trial, "failed")
