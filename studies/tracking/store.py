"""``StudyStore``: the one object that owns a study's records (the way Optuna's ``storages/``
puts a ``BaseStorage`` in front of its backends), the contract every backend keeps;
``mlflow_store.MlflowStudyStore`` is its MLflow implementation, one per tracking URI
(``store_for``).

Contract (every implementation; ``tests/deploy/test_store_contract.py`` checks it against
SQLite and against a real ``mlflow server`` on Postgres):

* Studies: ``create_study`` makes a ``queued`` record readable at once; ``get_study`` /
  ``list_studies`` (newest first) / ``count_studies`` (bounded, one query) read it;
  ``set_study_status`` changes it, writing the trials snapshot first when the study ends;
  ``record_restart`` records a resubmission of its driver (counted in ``restarts``, with the
  reason, unless ``counted=False``) and returns its attempt number; ``mark_suspended`` marks a
  study whose driver a graceful stop took down (its next resubmission is not counted).
* Trials: ``start_trial`` opens (or, for a resumed study, reopens: never duplicates) a trial's
  record; ``log_epoch`` writes one epoch's metrics (a step written again keeps its latest
  value), ``log_epochs`` several runs' epochs at once with the same result; ``end_trial``
  closes it; ``settle_open_trials`` gives the trials a dead driver left ``running`` a status.
* ``load_trials``: every trial with full histories, ordered by trial id; a finished study's
  from its snapshot.
* Artifacts of the parent run: ``log_artifacts``, ``list_artifacts``, ``download_artifact``
  (``ArtifactNotFoundError`` when absent).
* Errors: every backend failure reaches callers as ``TrackingError``; an unknown study as
  ``StudyNotFoundError``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from studies.results import StudyRecord, TrialRecord
from studies.status import StudyStatus, TrialStatus
from studies.tracking.connection import (
    DEFAULT_EXPERIMENT,
)


class StudyStore(abc.ABC):
    """Where studies and their trials are recorded. See the module for the contract."""

    @abc.abstractmethod
    def create_study(
        self,
        spec: Mapping[str, Any],
        *,
        study_id: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        num_trials: int | None = None,
        check_unique: bool = True,
        details: bool = True,
        launcher: str | None = None,
    ) -> StudyRecord: ...

    @abc.abstractmethod
    def write_study_details(self, study_id: str) -> None: ...

    @abc.abstractmethod
    def get_study(self, study_id: str) -> StudyRecord: ...

    @abc.abstractmethod
    def load_spec(self, study_id: str) -> dict[str, object]: ...

    @abc.abstractmethod
    def list_studies(
        self,
        *,
        status: StudyStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
        experiment: str | None = None,
    ) -> list[StudyRecord]: ...

    @abc.abstractmethod
    def count_studies(self, *, statuses: Sequence[StudyStatus | str], limit: int) -> int: ...

    @abc.abstractmethod
    def set_study_status(
        self,
        study_id: str,
        status: StudyStatus | str,
        *,
        error: str | None = None,
        snapshot: bool = True,
    ) -> None: ...

    @abc.abstractmethod
    def record_restart(self, study_id: str, *, reason: str, counted: bool = True) -> int: ...

    @abc.abstractmethod
    def mark_suspended(self, study_id: str) -> None: ...

    @abc.abstractmethod
    def set_study_tags(self, study_id: str, tags: Mapping[str, str]) -> None: ...

    @abc.abstractmethod
    def delete_study(self, study_id: str) -> None: ...

    @abc.abstractmethod
    def start_trial(self, study_id: str, trial_id: str, params: Mapping[str, Any]) -> str: ...

    @abc.abstractmethod
    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def log_epochs(self, rows: Sequence[tuple[str, int, Mapping[str, float]]]) -> None:
        """Several runs' epochs, ``(run id, epoch, metrics)`` each, as ``log_epoch`` would
        write them one by one (a backend may write them at once)."""
        for run_id, epoch, metrics in rows:
            self.log_epoch(run_id, epoch, metrics)

    @abc.abstractmethod
    def log_history(
        self, run_id: str, history: Mapping[str, Sequence[float]], *, first_epoch: int = 1
    ) -> None: ...

    @abc.abstractmethod
    def end_trial(
        self,
        run_id: str,
        status: TrialStatus | str,
        *,
        node: str | None = None,
        train_seconds: float | None = None,
    ) -> None: ...

    @abc.abstractmethod
    def settle_open_trials(self, study_id: str, status: TrialStatus | str) -> list[str]: ...

    @abc.abstractmethod
    def load_trials(self, study_id: str) -> list[TrialRecord]: ...

    @abc.abstractmethod
    def snapshot_trials(self, study_id: str) -> list[TrialRecord]: ...

    @abc.abstractmethod
    def log_artifacts(
        self, study_id: str, paths: Iterable[str | Path], *, artifact_path: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    def list_artifacts(self, study_id: str, *, path: str | None = None) -> list[str]: ...

    @abc.abstractmethod
    def download_artifact(self, study_id: str, name: str) -> bytes: ...
